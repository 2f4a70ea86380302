"""The `gpudoctor` command.

Import-light on purpose: `gpudoctor --help` must not import docker or pynvml (Typer brings Rich for
its help; nothing more). Everything heavy is imported inside the command functions.

Exit codes (README "Exit codes"): 0 ready, 1 not ready, 2 usage error, 3 internal failure.
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
    str, typer.Option("--format", "-f", envvar="GPUDOCTOR_FORMAT", help="Output format: text, json, junit or prometheus.")
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


def _probe_options(image: str | None, forms: str | None, all_forms: bool, pull: bool, no_probes: bool) -> dict:
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
) -> None:
    """Check every layer from PCI to probe containers; exit 0 ready, 1 not ready."""
    _check_format(fmt)
    from .runner import RunRequest, run_check

    request = RunRequest(
        root=root,
        replay=replay,
        only=tuple(only or ()),
        skip=tuple(skip or ()),
        options=_probe_options(image, forms, all_forms, pull, no_probes),
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
    elif fmt == "prometheus":
        from .render.prometheus import render_prometheus

        _emit(render_prometheus(report), output)
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
) -> None:
    """Print the facts gathered from the host as JSON, or record them into a support bundle."""
    from .runner import RunRequest, run_facts

    request = RunRequest(root=root, replay=replay, options=_probe_options(image, forms, all_forms, pull, no_probes))
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
    run: Annotated[bool, typer.Option("--run", help="Also run the request's GPU part on this host in a hardened probe "
                                      "and compare what the container saw with the host and with the prediction.")] = False,
    image: ImageOpt = None,
    command: Annotated[Optional[str], typer.Option("--command", help="With --run: the command to run (default: the probe script).")] = None,
) -> None:
    """Explain what a GPU request really asks Docker for, its pitfalls, and the correct spelling."""
    if fmt not in ("text", "json"):
        raise _fail(f"unknown format {fmt!r} (choose from text, json)", EXIT_USAGE)
    if run and (replay or no_host):
        raise _fail("--run needs this host's daemon: it cannot be combined with --replay or --no-host", EXIT_USAGE)
    import shlex

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


def _remove_probes() -> None:
    """Remove probe containers still running (only if the probe runner was ever imported)."""
    runner = sys.modules.get("gpudoctor.probes.runner")
    if runner is not None:
        runner.remove_live()


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
    # SIGTERM (CI timeouts, `timeout`, systemd) exits through Python so that atexit removes any
    # probe container still running (gpudoctor/probes/runner.py); Ctrl-C does the same.
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        app(args=argv, prog_name="gpudoctor")
    except KeyboardInterrupt:
        typer.echo("gpudoctor: interrupted; removing probe containers", err=True)
        _remove_probes()
        sys.exit(130)
    except SystemExit:
        _remove_probes()
        raise
    except Exception as e:
        typer.echo(f"gpudoctor: internal error: {type(e).__name__}: {e}", err=True)
        sys.exit(EXIT_INTERNAL)
