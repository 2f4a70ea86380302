"""The `gpudoctor` command.

Import-light on purpose: `gpudoctor --help` must not import docker or pynvml (Typer brings Rich for
its help; nothing more). Everything heavy is imported inside the command functions.

Exit codes (README "Exit codes"): 0 ready, 1 not ready, 2 usage error, 3 internal failure,
4 partial (a run limited by --only/--skip found nothing broken in what it checked, but did not check every layer).
128+N interrupted by signal N (SIGINT 130, SIGTERM 143, SIGHUP 129) after removing its probes.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, List, NoReturn, Optional

import enum

import typer
import typer.core

from . import __version__
from .entry import default_to_check

EXIT_READY, EXIT_NOT_READY, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

app = typer.Typer(
    name="gpudoctor",
    help="Can containers on this host use its NVIDIA GPUs? If not, which layer is broken and what fixes it.",
    add_completion=True,  # --install-completion / --show-completion; Typer imports its completion code anyway
    no_args_is_help=False,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

# -- shared options -----------------------------------------------------------------------------
# Metavars name what a value is (FILE, ID), instead of Typer's `<str>` / `<list[str]>`.
# Choices are Enums: Typer then refuses other values (a usage error, exit 2) and lists the choices in help.
class ReportFormat(str, enum.Enum):
    text = "text"
    json = "json"
    junit = "junit"
    prometheus = "prometheus"


class TextOrJson(str, enum.Enum):
    text = "text"
    json = "json"


class ExplainKind(str, enum.Enum):
    gpus = "gpus"
    docker_run = "docker-run"
    sdk = "sdk"
    compose = "compose"
    visible_devices = "visible-devices"
    check = "check"


FormatOpt = Annotated[
    ReportFormat, typer.Option("--format", "-f", envvar="GPUDOCTOR_FORMAT", help="Output format.")
]
ListFormatOpt = Annotated[TextOrJson, typer.Option("--format", "-f", envvar="GPUDOCTOR_FORMAT", help="Output format.")]
OutputOpt = Annotated[
    Optional[str],
    typer.Option("--output", "-o", envvar="GPUDOCTOR_OUTPUT", metavar="FILE", help="Write the report to this file."),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show every check and its evidence.")]
# Boolean switches that also come from the environment are read by _env_flag, not by Click: Click's BOOL
# refuses spellings people use (GPUDOCTOR_STRICT=enabled) and any NO_COLOR value but 1/true (no-color.org:
# "when present and not an empty string ... regardless of its value").
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Exit 1 on warnings too (for CI gates). [env var: GPUDOCTOR_STRICT]")
]
NoColorOpt = Annotated[bool, typer.Option("--no-color", help="No colours (also when NO_COLOR is set to anything).")]
RootOpt = Annotated[
    str,
    typer.Option("--root", envvar="GPUDOCTOR_ROOT", metavar="DIR",
                 help="Read the host under this directory (e.g. /host from a container)."),
]
ReplayOpt = Annotated[
    Optional[str],
    typer.Option("--replay", metavar="BUNDLE", help="Judge a recorded support bundle instead of this machine."),
]
OnlyOpt = Annotated[
    Optional[List[str]],
    typer.Option("--only", metavar="ID", help="Run only checks with this id or id prefix (repeatable)."),
]
SkipOpt = Annotated[
    Optional[List[str]], typer.Option("--skip", metavar="ID", help="Skip checks with this id or prefix (repeatable).")
]
ImageOpt = Annotated[
    Optional[str],
    typer.Option("--image", envvar="GPUDOCTOR_IMAGE", metavar="IMAGE",
                 help="Probe image (your own image is the best probe)."),
]
FormsOpt = Annotated[
    Optional[str],
    typer.Option("--forms", envvar="GPUDOCTOR_FORMS", metavar="IDS", help="Comma-separated request-form ids to probe."),
]
AllFormsOpt = Annotated[bool, typer.Option("--all-forms", help="Probe every request form, not just the default set.")]
PullOpt = Annotated[
    bool,
    typer.Option("--pull", help="Pull the probe image if it is not present (without --image: the nvidia/cuda base image "
                 "published for the driver's CUDA version)."),
]
NoProbesOpt = Annotated[
    bool, typer.Option("--no-probes", help="Do not start probe containers. [env var: GPUDOCTOR_NO_PROBES]")
]
CommandOpt = Annotated[
    Optional[str],
    typer.Option("--command", envvar="GPUDOCTOR_COMMAND", metavar="COMMAND",
                 help="Run this command in --image under the request form that works best, and judge its exit code."),
]
# The whole run's deadline (facts/registry.py `deadline_s`): what is not finished by then is reported as
# such (unfinished probes: not-run, their containers removed) instead of hanging on a stuck daemon or runtime.
DEFAULT_TIMEOUT_S = 120.0
MIN_TIMEOUT_S = 20.0  # the probes leave facts/probes.py DEADLINE_MARGIN_S (12 s) to cleanup and judging
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        envvar="GPUDOCTOR_TIMEOUT",
        help=f"Deadline for the whole run in seconds (default {DEFAULT_TIMEOUT_S:g}; at least {MIN_TIMEOUT_S:g}): "
        "probes not finished by then are reported as not run and removed.",
    ),
]

_TRUE = ("1", "true", "yes", "y", "on", "enabled", "enable")
_FALSE = ("", "0", "false", "no", "n", "off", "disabled", "disable")


def _env_flag(name: str, given: bool) -> bool:
    """A switch given on the command line, else from the environment (the usual truthy/falsy spellings)."""
    if given:
        return True
    raw = os.environ.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _fail(f"{name}={raw!r} is not a yes/no value (use 1/true/yes/on or 0/false/no/off)", EXIT_USAGE)


def _check_output(output: str | None) -> None:
    """Refuse an --output that cannot be written before any work is done (not after the whole check ran)."""
    if not output or output == "-":
        return
    if os.path.isdir(output):
        raise _fail(f"--output {output}: is a directory", EXIT_USAGE)
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise _fail(f"--output {output}: directory {parent} does not exist", EXIT_USAGE)
    if not os.access(parent, os.W_OK) or (os.path.exists(output) and not os.access(output, os.W_OK)):
        raise _fail(f"--output {output}: not writable", EXIT_USAGE)


def _probe_options(
    image: str | None,
    forms: str | None,
    all_forms: bool,
    pull: bool,
    no_probes: bool,
    command: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    if not timeout >= MIN_TIMEOUT_S:  # also refuses NaN
        raise _fail(f"--timeout must be at least {MIN_TIMEOUT_S:g} seconds, not {timeout:g}", EXIT_USAGE)
    chosen = [f.strip() for f in forms.split(",") if f.strip()] if forms else None
    if command is not None:
        _check_command(command, image, no_probes)
    if chosen:
        from .probes.forms import FORM_IDS  # light: the catalogue imports no docker

        unknown = [f for f in chosen if f not in FORM_IDS]
        if unknown:
            raise _fail(f"unknown request form(s) {', '.join(unknown)} (known: {', '.join(FORM_IDS)})", EXIT_USAGE)
    return {
        "probe_image": image,
        "probe_forms": chosen,
        "probe_all_forms": all_forms,
        "probe_pull": pull,
        "probes": not no_probes,
        "workload_command": command,
        "deadline_s": timeout,
    }


def _check_command(command: str, image: str | None, no_probes: bool) -> None:
    """--command runs the user's program in the user's image (never in gpudoctor's own), in a container."""
    import shlex

    if not image:
        raise _fail("--command needs --image: the command runs in your image", EXIT_USAGE)
    if no_probes:
        raise _fail("--command starts a container; it cannot be combined with --no-probes", EXIT_USAGE)
    try:
        words = shlex.split(command)
    except ValueError as e:
        raise _fail(f"--command: {e} in {command!r}", EXIT_USAGE) from None
    if not words:
        raise _fail("--command is empty", EXIT_USAGE)


def _fail(message: str, code: int) -> "typer.Exit":
    typer.echo(f"gpudoctor: {message}", err=True)
    return typer.Exit(code)


def _emit(text: str, output: str | None) -> None:
    if output and output != "-":
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_closed()  # `gpudoctor list | head -1`: the reader had enough; not an error


def _color_wanted(no_color: bool, output: str | None) -> bool:
    if no_color or os.environ.get("NO_COLOR"):
        return False
    return (output in (None, "-")) and sys.stdout.isatty()


@app.callback()
def main_callback(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Diagnose NVIDIA GPUs in Docker containers. Without a command, runs `check`."""
    if version:
        typer.echo(f"gpudoctor {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        ctx.invoke(check)


@app.command()
def check(
    fmt: FormatOpt = ReportFormat.text,
    output: OutputOpt = None,
    verbose: VerboseOpt = False,
    strict: StrictOpt = False,
    no_color: NoColorOpt = False,
    root: RootOpt = "/",
    replay: ReplayOpt = None,
    only: OnlyOpt = None,
    skip: SkipOpt = None,
    image: ImageOpt = None,
    forms: FormsOpt = None,
    all_forms: AllFormsOpt = False,
    pull: PullOpt = False,
    no_probes: NoProbesOpt = False,
    command: CommandOpt = None,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT_S,
) -> None:
    """Check every layer from PCI to probe containers; exit 0 ready, 1 not ready, 4 partial (--only/--skip)."""
    strict = _env_flag("GPUDOCTOR_STRICT", strict)
    no_probes = _env_flag("GPUDOCTOR_NO_PROBES", no_probes)
    _check_output(output)
    from .runner import RunRequest, run_check

    request = RunRequest(
        root=root,
        replay=replay,
        only=tuple(only or ()),
        skip=tuple(skip or ()),
        options=_probe_options(image, forms, all_forms, pull, no_probes, command, timeout),
    )
    fmt = fmt.value  # type: ignore[assignment]  # the Enum's plain string from here on
    outcome = run_check(request, progress=sys.stderr.isatty() and fmt == "text")
    if outcome.problem:
        raise _fail(outcome.problem, EXIT_USAGE if outcome.usage else EXIT_INTERNAL)
    report = outcome.report
    assert report is not None
    to_file = bool(output and output != "-")
    if fmt == "json":
        from .render.json_report import render_json

        _emit(render_json(report), output)
    elif fmt == "junit":
        from .render.junit import render_junit

        _emit(render_junit(report, strict=strict), output)
    elif fmt == "prometheus":
        from .render.prometheus import render_prometheus

        _emit(render_prometheus(report), output)
    else:
        from .render.text import render_text

        if to_file:
            assert output is not None
            with open(output, "w", encoding="utf-8") as f:
                render_text(report, f, verbose=verbose, color=False, width=100)
        else:
            render_text(report, sys.stdout, verbose=verbose, color=_color_wanted(no_color, output))
    code = report.exit_code(strict=strict)
    if fmt != "text" or to_file:
        # A CI log shows the answer even when the report went to a file or is machine-readable; the text
        # report on a terminal already starts with this line.
        from .render.text import verdict_line

        typer.echo(verdict_line(report, code, output if to_file else None), err=True)
    raise typer.Exit(code)


@app.command()
def facts(
    record: Annotated[
        Optional[str], typer.Option("--record", help="Write a support bundle (every answer the host gave) to this file.")
    ] = None,
    root: RootOpt = "/",
    replay: ReplayOpt = None,
    output: OutputOpt = None,
    image: ImageOpt = None,
    forms: FormsOpt = None,
    all_forms: AllFormsOpt = False,
    pull: PullOpt = False,
    no_probes: NoProbesOpt = False,
    command: CommandOpt = None,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT_S,
) -> None:
    """Print the facts gathered from the host as JSON, or record them into a support bundle."""
    no_probes = _env_flag("GPUDOCTOR_NO_PROBES", no_probes)
    _check_output(output)
    _check_output(record)
    from .runner import RunRequest, run_facts

    request = RunRequest(
        root=root, replay=replay, options=_probe_options(image, forms, all_forms, pull, no_probes, command, timeout)
    )
    result = run_facts(request, record=record)
    if result.problem:
        raise _fail(result.problem, EXIT_INTERNAL)
    if record:
        typer.echo(f"gpudoctor: recorded {result.answers} answers into {record}", err=True)
        if output:
            _emit(result.facts_json, output)
    else:
        _emit(result.facts_json, output)


@app.command(name="list")
def list_checks(fmt: ListFormatOpt = TextOrJson.text) -> None:
    """List every check: id, layer, title and where it comes from (built-in or plugin)."""
    import json

    from .engine import all_checks

    checks = all_checks()
    if fmt.value == "json":
        _emit(json.dumps([c.info.to_dict() for c in checks], indent=2) + "\n", None)
        return
    width = max(len(c.id) for c in checks) if checks else 10
    _emit("".join(f"{c.id:<{width}}  {c.info.layer.value:<10}  {c.info.source:<8}  {c.info.title}\n" for c in checks),
          None)


class _ExplainCommand(typer.core.TyperCommand):
    """`explain` takes its inputs as users paste them: `'--gpus "device=0,1"'`, `--gpus=all`,
    `docker run --gpus all IMG` need no `--`.

    Click would read a leading `--gpus` as an (unknown) option of explain. So, before Click parses: explain's
    own options (and their values) at the front are explain's; the first token that is not one of them starts
    the inputs, and a `--` is put there. After it, only explain's long options (`--format json`, `--run`, ...;
    no docker run option has these names) are still explain's; short ones (-f, -o, -h) belong to the input
    (docker run has -h and -v). A `--` the user typed keeps its meaning: everything after it is input.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _explain_argv(args, self.get_params(ctx)))


def _explain_argv(args: list[str], params: list[Any]) -> list[str]:
    takes_value: dict[str, bool] = {}
    for p in params:
        if isinstance(p, typer.core.TyperOption):
            for name in (*p.opts, *p.secondary_opts):
                takes_value[name] = not p.is_flag and p.nargs != 0

    def own(tok: str, long_only: bool) -> tuple[bool, bool]:
        """(is one of explain's options, the next token is its value)"""
        name = tok.split("=", 1)[0] if tok.startswith("--") else tok
        if name not in takes_value or (long_only and not name.startswith("--")):
            return False, False
        return True, takes_value[name] and "=" not in tok

    head: list[str] = []
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            return args
        is_own, has_value = own(tok, long_only=False)
        if not is_own:
            break
        head += args[i:i + 2] if has_value else [tok]
        i += 2 if has_value else 1
    tail: list[str] = []
    inputs: list[str] = []
    rest = args[i:]
    j = 0
    while j < len(rest):
        tok = rest[j]
        if tok == "--":
            inputs += rest[j + 1:]
            break
        is_own, has_value = own(tok, long_only=True)
        if is_own:
            tail += rest[j:j + 2] if has_value else [tok]
            j += 2 if has_value else 1
            continue
        inputs.append(tok)
        j += 1
    return [*head, *tail, "--", *inputs] if inputs else [*head, *tail]


@app.command(cls=_ExplainCommand)
def explain(
    inputs: Annotated[
        List[str],
        typer.Argument(
            metavar="INPUT...",
            help="A --gpus value, a docker run command, a Docker SDK snippet, a Compose file or YAML, "
            "an NVIDIA_VISIBLE_DEVICES value, or a check id. Paste it as it is: "
            "gpudoctor explain '--gpus \"device=0,1\"', gpudoctor explain docker run --gpus all IMAGE.",
        ),
    ],
    kind: Annotated[
        Optional[str],
        # A string, not a choice: explain also takes the kinds' aliases (cmdline, env, yaml; explain/detect.py).
        typer.Option("--kind", metavar="KIND",
                     help="Force the input kind: " + ", ".join(k.value for k in ExplainKind) + "."),
    ] = None,
    fmt: ListFormatOpt = TextOrJson.text,
    output: OutputOpt = None,
    replay: ReplayOpt = None,
    root: RootOpt = "/",
    no_host: Annotated[bool, typer.Option("--no-host", help="Explain in general terms; read nothing from this host.")] = False,
    no_color: NoColorOpt = False,
    run: Annotated[bool, typer.Option("--run", help="Also run the request's GPU part on this host in a hardened probe "
                                      "and compare what the container saw with the host and with the prediction.")] = False,
    image: ImageOpt = None,
    command: Annotated[Optional[str], typer.Option("--command", metavar="COMMAND",
                                                   help="With --run: the command to run (default: the probe script).")] = None,
) -> None:
    """Explain what a GPU request really asks Docker for, its pitfalls, and the correct spelling."""
    if run and (replay or no_host):
        raise _fail("--run needs this host's daemon: it cannot be combined with --replay or --no-host", EXIT_USAGE)
    _check_output(output)
    import shlex

    from .explain.command import explain_command

    code = explain_command(
        list(inputs),
        kind=kind,
        fmt=fmt.value,
        output=output,
        replay=replay,
        root=root,
        use_host=not no_host,
        no_color=not _color_wanted(no_color, output),
        run=run,
        image=image,
        command=shlex.split(command) if command else None,
    )
    raise typer.Exit(code)


@app.command()
def merge(
    reports: Annotated[
        List[str], typer.Argument(help="JSON reports (`gpudoctor check --format json`); `-` reads many from stdin.")
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output format: text (a table) or json (a summary).")] = "text",
    output: OutputOpt = None,
) -> None:
    """Many hosts' reports in one table of hosts × layers with each host's root cause; exit 0 when all are ready."""
    if fmt not in ("text", "json"):
        raise _fail(f"unknown format {fmt!r} (choose from text, json)", EXIT_USAGE)
    from .fleet import read_inputs
    from .render.fleet import render_fleet_json, render_fleet_text

    fleet = read_inputs(list(reports), sys.stdin)
    for bad in fleet.unreadable:
        typer.echo(f"gpudoctor: {bad.source}: {bad.problem}", err=True)
    if not fleet.hosts:
        raise _fail("no report to merge", EXIT_USAGE)
    _emit(render_fleet_json(fleet) if fmt == "json" else render_fleet_text(fleet), output)
    raise typer.Exit(fleet.exit_code)


class _Interrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP, raised in the main thread. A BaseException that is not a
    KeyboardInterrupt, so that neither Click (which turns KeyboardInterrupt into "Aborted!", exit 1)
    nor Typer catches it on the way to main()."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# SIGTERM: CI timeouts, `timeout`, systemd, `docker stop`; SIGHUP: a closed terminal or SSH session.
_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
_noted: list[int] = []


def _on_signals(handler: object) -> None:
    import signal

    for name in _SIGNALS:
        sig = getattr(signal, name, None)
        # A signal ignored from the start stays ignored (`nohup` ignores SIGHUP, a shell's `cmd &` SIGINT).
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, handler)  # type: ignore[arg-type]


def _interrupt(signum: int, _frame: object) -> None:
    # Switch to noting before raising: a second signal (a second Ctrl-C, or `timeout`, which signals
    # the command and then its whole process group) must never interrupt the cleanup below.
    _on_signals(_note_signal)
    raise _Interrupted(signum)


def _note_signal(signum: int, _frame: object) -> None:
    if not _noted:  # os.write, not print: a handler may run in the middle of another write to stderr
        _noted.append(signum)
        os.write(2, b"gpudoctor: still removing probe containers (a few seconds at most)\n")


def _close_probes(reason: str, interrupted: bool) -> None:
    """Remove this process's probe containers, further signals only noted. After an interruption the
    runner is imported even if no probe has started yet, so that none starts after this point."""
    _on_signals(_note_signal)
    runner = sys.modules.get("gpudoctor.probes.runner")
    if runner is None and interrupted:
        from .probes import runner  # light: the docker SDK is imported only to talk to the daemon
    if runner is None:
        return
    result = runner.interrupt(reason)
    if result["reaper"]:
        why = "; ".join(result["errors"][:1]) or "the Docker daemon did not confirm it"
        typer.echo(
            f"gpudoctor: not every probe container could be removed yet ({why}); a background process "
            f"removes them as soon as the daemon lets it (label {runner.RUN_LABEL})",
            err=True,
        )


def _stdout_closed() -> None:
    """The reader of stdout went away (`gpudoctor list | head -1`): not an error. Point stdout at /dev/null so
    that the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _flush_or_closed() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_closed()
    except (OSError, ValueError):
        pass


def main() -> None:
    """Console-script entry point. Click maps usage errors to exit 2; anything unexpected is exit 3,
    printed as one line, never a traceback."""
    argv = default_to_check(sys.argv[1:])
    # SIGINT, SIGTERM and SIGHUP end the run through Python, which removes every probe container the
    # run created (gpudoctor/probes/runner.py `interrupt`) before exiting 128 + the signal number.
    _on_signals(_interrupt)
    try:
        code = _run_app(argv)
        _close_probes("gpudoctor exited", interrupted=False)
    except _Interrupted as e:  # wherever it came, even while a normal exit was under way
        import signal

        name = signal.Signals(e.signum).name
        typer.echo(f"gpudoctor: interrupted ({name}); removing probe containers", err=True)
        _close_probes(f"interrupted by {name}", interrupted=True)
        # Nothing is left to clean up: a further signal must not turn exit 128+N into a death by signal
        # (Python gives the default handlers back while it shuts down).
        _on_signals(signal.SIG_IGN)
        _exit_now(128 + e.signum)
    _exit_now(code)


def _exit_now(code: int | str | None) -> NoReturn:
    """Exit as `sys.exit(code)` would, less the interpreter's teardown.

    The atexit handlers run (the probe runner's last removal and the early NVML worker's are among them) and the
    streams are flushed, as at any exit; what is skipped is freeing every module and object one by one, which
    took 60 ms on the CPU machine and 20 ms on the GPU machine (benchmarks/check_speed.py) and is of no use to
    anyone once the answer is out. The threads left are daemon threads (the facts', the probes'), which an exit
    ends either way."""
    import atexit

    if isinstance(code, str):  # SystemExit("message"): printed, exit 1
        typer.echo(code, err=True)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, a closed stream: nothing more to say
            pass
    os._exit(code or 0)


def _app_for(argv: list[str]) -> typer.Typer:
    """The app, narrowed to the one command the command line names.

    Before it runs anything, Typer turns every registered command into a Click command (reading each signature and
    evaluating its annotations): 13 ms on the CI machine, 8 of them for commands the run will not use. Help for the
    whole app, shell completion, and a command line that names no command (a typo gets its "No such command") get
    every command; `gpudoctor check --help` and a bad option read exactly as with the whole app (tests/test_cli.py)."""
    if not argv or argv[0].startswith("-") or "_GPUDOCTOR_COMPLETE" in os.environ:
        return app
    import copy

    from typer.main import get_command_name

    chosen = [c for c in app.registered_commands
              if (c.name or (get_command_name(c.callback.__name__) if c.callback else None)) == argv[0]]
    if not chosen:
        return app
    narrowed = copy.copy(app)
    narrowed.registered_commands = chosen
    return narrowed


def _run_app(argv: list[str]) -> int | str | None:
    """The app's exit code (Click always ends with SystemExit); an unexpected exception is exit 3."""
    try:
        _app_for(argv)(args=argv, prog_name="gpudoctor")
    except BrokenPipeError:
        _stdout_closed()
        return 0
    except SystemExit as e:
        _flush_or_closed()
        return e.code
    except Exception as e:
        typer.echo(f"gpudoctor: internal error: {type(e).__name__}: {e}", err=True)
        return EXIT_INTERNAL
    return 0
