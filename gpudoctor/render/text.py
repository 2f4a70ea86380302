"""The report for people: the answer first, then what is wrong, then one line per layer.

Order (issue 11 #8): the verdict and its fix; the checks that failed, errored or warned, each with its fix (the
verdict's fix is not printed twice); one line per layer that passed or was blocked. `-v` adds every check of
every layer with its details and evidence. Prose wraps to the terminal's width with its indent kept; commands
never wrap (a command broken over two lines cannot be pasted).

Host strings (paths, error texts, GPU names) are never interpolated into Rich markup: every piece
is a `rich.text.Text` with an explicit style, so a "[bold]" inside an error message stays text.
"""

from __future__ import annotations

import json
from typing import IO, Any

from ..model import CheckOutcome, Fix, Layer, Report, Result, Status

MARKS: dict[Status, tuple[str, str]] = {
    Status.PASS: ("✓", "green"),
    Status.SKIP: ("-", "dim"),
    Status.WARN: ("!", "yellow"),
    Status.FAIL: ("✗", "bold red"),
    Status.ERROR: ("E", "bold magenta"),
}


def verdict_line(report: Report, code: int, output: str | None = None) -> str:
    """The one line a CI log shows whatever the format (stderr): the verdict, the exit code, where the report is."""
    where = f"; report in {output}" if output else ""
    return f"gpudoctor: {report.verdict.headline} (exit {code}{where})"


def _text(content: str, style: str = "") -> Any:
    from rich.text import Text

    return Text(content, style=style)


def _line(*parts: tuple[str, str]) -> Any:
    from rich.text import Text

    text = Text()
    for content, style in parts:
        text.append(content, style=style)
    return text


def _indented(renderable: Any, indent: int) -> Any:
    """Wrapped text keeps its indent on every line."""
    from rich.padding import Padding

    return Padding(renderable, (0, 0, 0, indent), expand=False)


class _Unbroken:
    """A line printed as it is, never wrapped or cropped: a command or a link must stay pasteable."""

    def __init__(self, text: Any) -> None:
        self.text = text


def _command(cmd: str, indent: int) -> _Unbroken:
    return _Unbroken(_line((" " * indent + "$ ", "dim"), (cmd, "cyan")))


def _print(console: Any, line: Any) -> None:
    if isinstance(line, _Unbroken):
        console.print(line.text, soft_wrap=True)
    else:
        console.print(line)


def _table(table: dict[str, Any], indent: int) -> Any:
    """A check's evidence table (e.g. request form × expected × seen × verdict), cells as plain text."""
    from rich.table import Table
    from rich.text import Text

    grid = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    columns = list(table.get("columns") or [])
    for col in columns:
        grid.add_column(str(col))
    for row in table.get("rows") or []:
        grid.add_row(*(Text(str(row.get(col, ""))) for col in columns))
    return _indented(grid, indent)


def _fix_lines(fix: Fix, indent: int) -> list[Any]:
    lines = [_indented(_line(("fix: ", "bold cyan"), (fix.summary, "")), indent)]
    lines += [_command(cmd, indent + 2) for cmd in fix.commands]
    if fix.link:
        lines.append(_Unbroken(_line((" " * (indent + 2) + "see ", "dim"), (fix.link, "underline blue"))))
    return lines


def _evidence_lines(result: Result, indent: int) -> list[Any]:
    lines = []
    for key, value in result.evidence.items():
        if key == "table":
            continue
        shown = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
        lines.append(_indented(_line((f"{key}: ", "dim"), (shown, "dim")), indent))
    return lines


def _result_lines(result: Result, verbose: bool, indent: int, root_fix: Fix | None) -> list[Any]:
    mark, style = MARKS[result.status]
    head = _line((f"{mark} ", style), (f"{result.subject}: " if result.subject else "", ""), (result.summary, ""))
    lines = [_indented(head, indent)]
    if verbose or result.status.is_problem:
        lines += [_indented(_text(d, "dim"), indent + 2) for d in result.details]
    if verbose:
        lines += _evidence_lines(result, indent + 2)
    table = result.evidence.get("table")
    if table and table.get("rows"):
        lines.append(_table(table, indent + 2))
    if result.fix and result.status in (Status.WARN, Status.FAIL, Status.ERROR):
        if root_fix is not None and result.fix == root_fix:
            lines.append(_indented(_text("fix: the verdict's fix, above", "dim"), indent + 2))
        else:
            lines += _fix_lines(result.fix, indent + 2)
    return lines


def _check_lines(outcome: CheckOutcome, verbose: bool, root_fix: Fix | None, indent: int = 2) -> list[Any]:
    mark, style = MARKS[outcome.status]
    lines = [_indented(_line((f"{mark} ", style), (outcome.check.title, style if outcome.status.is_problem else ""),
                             (f"  [{outcome.check.id}]", "dim")), indent)]
    for r in outcome.results:
        if verbose or r.status is not Status.PASS:
            lines += _result_lines(r, verbose, indent + 4, root_fix)
    return lines


def _layer_summary(layer: Layer, outcomes: list[CheckOutcome]) -> Any:
    """One line for a layer: passed, blocked (by what), skipped, or how many checks had problems."""
    statuses = [o.status for o in outcomes]
    problems = sum(s.is_problem for s in statuses)
    warns = statuses.count(Status.WARN)
    blocked = sorted({o.blocked_by for o in outcomes if o.blocked_by})
    passed = statuses.count(Status.PASS)
    n = len(outcomes)
    if outcomes and all(r.evidence.get("not_judged") for o in outcomes for r in o.results):
        return _indented(_line(("- ", "dim"), (f"{layer.label}: ", ""), ("not judged (read on this machine, not the "
                                                                         "daemon's host)", "dim")), 2)
    if problems:
        mark, style, what = *MARKS[Status.FAIL], f"{problems} of {n} check{'s' if n != 1 else ''} failed"
    elif blocked and len(blocked) and all(o.blocked_by or o.status is Status.SKIP for o in outcomes):
        mark, style, what = *MARKS[Status.SKIP], f"blocked by {', '.join(blocked)}"
    elif warns:
        mark, style, what = *MARKS[Status.WARN], f"{warns} warning{'s' if warns != 1 else ''}, {passed} passed"
    elif passed:
        n_blocked = sum(1 for o in outcomes if o.blocked_by)
        skips = statuses.count(Status.SKIP) - n_blocked
        what = f"{passed} passed" + (f", {n_blocked} blocked by {', '.join(blocked)}" if n_blocked else "")
        mark, style, what = *MARKS[Status.PASS], what + (f", {skips} skipped" if skips else "")
    else:
        mark, style, what = *MARKS[Status.SKIP], "skipped"
        if blocked:
            what = f"blocked by {', '.join(blocked)}"
    return _indented(_line((f"{mark} ", style), (f"{layer.label}: ", ""), (what, "dim")), 2)


def render_text(report: Report, file: IO[str], verbose: bool = False, color: bool = True, width: int | None = None) -> None:
    import io

    from rich.console import Console

    # Rendered into a buffer, then written with trailing blanks trimmed (Rich pads wrapped lines to the width).
    # The width is the terminal's (Rich asks it, or $COLUMNS); measured on the real stream, not the buffer.
    if width is None:
        width = Console(file=file, force_terminal=color if color else None).width
    buffer = io.StringIO()
    console = Console(file=buffer, no_color=not color, highlight=False, width=width, emoji=False,
                      force_terminal=color if color else None, force_jupyter=False)
    host = report.host
    title = f"gpudoctor {report.tool_version}"
    where = ", ".join(
        str(v) for v in (host.get("hostname"), host.get("kernel"),
                         f"root {host['root']}" if host.get("root") not in (None, "/") else None,
                         f"replay of {host['replay']}" if host.get("replay") else None) if v
    )
    console.print(_line((title, "bold"), (f"  {where}" if where else "", "dim")))
    read = host.get("layers_read") or {}
    if read.get("remote"):
        # Which layers were read where (gpudoctor/scope.py): never one machine's layers taken for the other's.
        console.print(_indented(_text(f"host layers: {read.get('host_layers')}; Docker and probes: "
                                      f"{read.get('docker_and_probes')}", "dim"), 2))

    v = report.verdict
    if v.ready:
        console.print(_line(("✓ ", "bold green"), (v.headline, "bold green")))
    elif v.partial and not v.root_cause:
        console.print(_line(("- ", "bold yellow"), (v.headline, "bold yellow")))
    else:
        console.print(_line(("✗ ", "bold red"), (v.headline, "bold red")))
        if v.root_cause:
            console.print(_indented(_line(("root cause: ", "dim"), (v.root_cause, "bold")), 2))
        if v.fix:
            for line in _fix_lines(v.fix, 2):
                _print(console, line)
        if v.partial and v.unchecked and not read.get("remote"):
            console.print(_indented(_text("not checked (--only/--skip): " + ", ".join(v.unchecked), "dim"), 2))
    for note in v.notes:
        console.print(_indented(_text(note), 2))
    for problem in v.outside:
        console.print(_indented(_line(("E ", "bold magenta"), ("not about this host: ", "bold"), (problem, "")), 2))

    root_fix = v.fix
    problems = [o for o in report.outcomes
                if o.status in (Status.FAIL, Status.ERROR, Status.WARN)]
    if problems and not verbose:
        console.print()
        failing = sum(o.status.is_problem for o in problems)
        heading = f"Problems ({failing} failed, {len(problems) - failing} warned)" if failing else f"Warnings ({len(problems)})"
        console.print(_text(heading, "bold underline"))
        for o in problems:
            for line in _check_lines(o, verbose, root_fix):
                _print(console, line)

    console.print()
    console.print(_text("Checks by layer" if verbose else "Layers", "bold underline"))
    by_layer: dict[Layer, list[CheckOutcome]] = {}
    for o in report.outcomes:
        by_layer.setdefault(o.check.layer, []).append(o)
    for layer in sorted({*by_layer, *(lay for lay in Layer if lay.label in v.unchecked)}, key=lambda lay: lay.rank):
        outcomes = by_layer.get(layer, [])
        if not outcomes:
            console.print(_indented(_line(("? ", "yellow"), (f"{layer.label}: ", ""), ("not checked (--only/--skip)", "dim")), 2))
            continue
        console.print(_layer_summary(layer, outcomes))
        if verbose:
            for o in outcomes:
                for line in _check_lines(o, True, root_fix, indent=4):
                    _print(console, line)
    counts = ", ".join(f"{n} {k}" for k, n in v.counts.items() if n)
    total = report.timings.get("total_s")
    console.print(_line((f"  {counts}" + (f" in {total:.1f}s" if isinstance(total, (int, float)) else ""), "dim")))
    file.write("".join(line.rstrip(" ") + "\n" for line in buffer.getvalue().splitlines()))
    file.flush()
