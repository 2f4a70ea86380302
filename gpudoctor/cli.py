"""The `gpudoctor` command.

Import-light on purpose: `gpudoctor --help` must not import docker or pynvml (Typer brings Rich for
its help; nothing more). Everything heavy is imported inside the command functions.

Exit codes (README "Exit codes"): 0 ready, 1 not ready, 2 usage error, 3 internal failure,
128+N interrupted by signal N (SIGINT 130, SIGTERM 143, SIGHUP 129) after removing its probes.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, List, Optional

import typer

from . import __version__

EXIT_READY, EXIT_NOT_READY, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

app = typer.Typer(
    name="gpudoctor",
    help="Can containers on this host use its NVIDIA GPUs? If not, which layer is broken and what fixes it.",
    add_completion=False,
    no_args_is_help=False,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

# -- shared options -----------------------------------------------------------------------------
FormatOpt = Annotated[
    str, typer.Option("--format", "-f", envvar="GPUDOCTOR_FORMAT", help="Output format: text, json or junit.")
]
OutputOpt = Annotated[
    Optional[str], typer.Option("--output", "-o", envvar="GPUDOCTOR_OUTPUT", help="Write the report to this file.")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show details and every passing result.")]
StrictOpt = Annotated[
    bool, typer.Option("--strict", envvar="GPUDOCTOR_STRICT", help="Exit 1 on warnings too (for CI gates).")
]
NoColorOpt = Annotated[
    bool, typer.Option("--no-color", envvar="NO_COLOR", help="No colours (also when NO_COLOR is set).")
]
RootOpt = Annotated[
    str,
    typer.Option("--root", envvar="GPUDOCTOR_ROOT", help="Read the host under this directory (e.g. /host from a container)."),
]
ReplayOpt = Annotated[
    Optional[str], typer.Option("--replay", help="Judge a recorded support bundle instead of this machine.")
]
OnlyOpt = Annotated[
    Optional[List[str]], typer.Option("--only", help="Run only checks with this id or id prefix (repeatable).")
]
SkipOpt = Annotated[Optional[List[str]], typer.Option("--skip", help="Skip checks with this id or prefix (repeatable).")]
ImageOpt = Annotated[
    Optional[str],
    typer.Option("--image", envvar="GPUDOCTOR_IMAGE", help="Probe image (your own image is the best probe)."),
]
FormsOpt = Annotated[
    Optional[str], typer.Option("--forms", envvar="GPUDOCTOR_FORMS", help="Comma-separated request-form ids to probe.")
]
AllFormsOpt = Annotated[bool, typer.Option("--all-forms", help="Probe every request form, not just the default set.")]
PullOpt = Annotated[bool, typer.Option("--pull", help="Pull the probe image if it is not present.")]
NoProbesOpt = Annotated[
    bool, typer.Option("--no-probes", envvar="GPUDOCTOR_NO_PROBES", help="Do not start probe containers.")
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


def _probe_options(
    image: str | None, forms: str | None, all_forms: bool, pull: bool, no_probes: bool,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> dict:
    if not timeout >= MIN_TIMEOUT_S:  # also refuses NaN
        raise _fail(f"--timeout must be at least {MIN_TIMEOUT_S:g} seconds, not {timeout:g}", EXIT_USAGE)
    chosen = [f.strip() for f in forms.split(",") if f.strip()] if forms else None
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
        "deadline_s": timeout,
    }


def _fail(message: str, code: int) -> "typer.Exit":
    typer.echo(f"gpudoctor: {message}", err=True)
    return typer.Exit(code)


def _check_format(fmt: str) -> None:
    from .render import FORMATS

    if fmt not in FORMATS:
        raise _fail(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})", EXIT_USAGE)


def _emit(text: str, output: str | None) -> None:
    if output and output != "-":
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


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
    fmt: FormatOpt = "text",
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
    timeout: TimeoutOpt = DEFAULT_TIMEOUT_S,
) -> None:
    """Check every layer from PCI to probe containers; exit 0 ready, 1 not ready."""
    _check_format(fmt)
    from .runner import RunRequest, run_check

    request = RunRequest(
        root=root,
        replay=replay,
        only=tuple(only or ()),
        skip=tuple(skip or ()),
        options=_probe_options(image, forms, all_forms, pull, no_probes, timeout),
    )
    outcome = run_check(request, progress=sys.stderr.isatty() and fmt == "text")
    if outcome.problem:
        raise _fail(outcome.problem, EXIT_USAGE if outcome.usage else EXIT_INTERNAL)
    report = outcome.report
    assert report is not None
    if fmt == "json":
        from .render.json_report import render_json

        _emit(render_json(report), output)
    elif fmt == "junit":
        from .render.junit import render_junit

        _emit(render_junit(report, strict=strict), output)
    else:
        from .render.text import render_text

        if output and output != "-":
            with open(output, "w", encoding="utf-8") as f:
                render_text(report, f, verbose=verbose, color=False)
        else:
            render_text(report, sys.stdout, verbose=verbose, color=_color_wanted(no_color, output))
    raise typer.Exit(report.exit_code(strict=strict))


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
    timeout: TimeoutOpt = DEFAULT_TIMEOUT_S,
) -> None:
    """Print the facts gathered from the host as JSON, or record them into a support bundle."""
    from .runner import RunRequest, run_facts

    request = RunRequest(
        root=root, replay=replay, options=_probe_options(image, forms, all_forms, pull, no_probes, timeout)
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
def list_checks(fmt: FormatOpt = "text") -> None:
    """List every check: id, layer, title and where it comes from (built-in or plugin)."""
    import json

    from .engine import all_checks

    checks = all_checks()
    if fmt == "json":
        _emit(json.dumps([c.info.to_dict() for c in checks], indent=2) + "\n", None)
        return
    width = max(len(c.id) for c in checks) if checks else 10
    for c in checks:
        typer.echo(f"{c.id:<{width}}  {c.info.layer.value:<10}  {c.info.source:<8}  {c.info.title}")


@app.command()
def explain(
    inputs: Annotated[
        List[str],
        typer.Argument(
            help="A --gpus value, a docker run command, a Docker SDK snippet, a Compose file or YAML, "
            "an NVIDIA_VISIBLE_DEVICES value, or a check id."
        ),
    ],
    kind: Annotated[
        Optional[str],
        typer.Option("--kind", help="Force the input kind: gpus, docker-run, sdk, compose, visible-devices, check."),
    ] = None,
    fmt: FormatOpt = "text",
    output: OutputOpt = None,
    replay: ReplayOpt = None,
    root: RootOpt = "/",
    no_host: Annotated[bool, typer.Option("--no-host", help="Explain in general terms; read nothing from this host.")] = False,
    no_color: NoColorOpt = False,
) -> None:
    """Explain what a GPU request really asks Docker for, its pitfalls, and the correct spelling."""
    if fmt not in ("text", "json"):
        raise _fail(f"unknown format {fmt!r} (choose from text, json)", EXIT_USAGE)
    from .explain.command import explain_command

    code = explain_command(
        list(inputs),
        kind=kind,
        fmt=fmt,
        output=output,
        replay=replay,
        root=root,
        use_host=not no_host,
        no_color=not _color_wanted(no_color, output),
    )
    raise typer.Exit(code)


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


def _default_to_check(argv: list[str]) -> list[str]:
    """`gpudoctor [check options]` is `gpudoctor check [check options]`."""
    if not argv:
        return ["check"]
    first = argv[0]
    if first.startswith("-") and first not in ("-h", "--help", "--version"):
        return ["check", *argv]
    return argv


def main() -> None:
    """Console-script entry point. Click maps usage errors to exit 2; anything unexpected is exit 3,
    printed as one line, never a traceback."""
    argv = _default_to_check(sys.argv[1:])
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
        sys.exit(128 + e.signum)
    sys.exit(code)


def _run_app(argv: list[str]) -> int | str | None:
    """The app's exit code (Click always ends with SystemExit); an unexpected exception is exit 3."""
    try:
        app(args=argv, prog_name="gpudoctor")
    except SystemExit as e:
        return e.code
    except Exception as e:
        typer.echo(f"gpudoctor: internal error: {type(e).__name__}: {e}", err=True)
        return EXIT_INTERNAL
    return 0
