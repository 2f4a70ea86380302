"""The report for people: grouped by layer, doctor-style marks, fixes under problems, a verdict.

Host strings (paths, error texts, GPU names) are never interpolated into Rich markup: every piece
is a `rich.text.Text` with an explicit style, so a "[bold]" inside an error message stays text.
"""

from __future__ import annotations

from typing import IO, Any

from ..model import CheckOutcome, Fix, Layer, Report, Result, Status

MARKS: dict[Status, tuple[str, str]] = {
    Status.PASS: ("✓", "green"),
    Status.SKIP: ("-", "dim"),
    Status.WARN: ("!", "yellow"),
    Status.FAIL: ("✗", "bold red"),
    Status.ERROR: ("E", "bold magenta"),
}


def _line(*parts: tuple[str, str]) -> Any:
    from rich.text import Text

    text = Text()
    for content, style in parts:
        text.append(content, style=style)
    return text


def _table(table: dict) -> Any:
    """A check's evidence table (e.g. request form × expected × seen × verdict), cells as plain text."""
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    grid = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    columns = list(table.get("columns") or [])
    for col in columns:
        grid.add_column(str(col))
    for row in table.get("rows") or []:
        grid.add_row(*(Text(str(row.get(col, ""))) for col in columns))
    return Padding(grid, (0, 0, 0, 6))


def _fix_lines(fix: Fix, indent: str) -> list[Any]:
    lines = [_line((f"{indent}fix: ", "bold cyan"), (fix.summary, ""))]
    lines += [_line((f"{indent}  $ ", "dim"), (cmd, "cyan")) for cmd in fix.commands]
    if fix.link:
        lines.append(_line((f"{indent}  see ", "dim"), (fix.link, "underline blue")))
    return lines


def _result_lines(outcome: CheckOutcome, result: Result, verbose: bool, single: bool) -> list[Any]:
    mark, style = MARKS[result.status]
    lines = []
    if single:
        lines.append(_line((f"  {mark} ", style), (outcome.check.title, style if result.status.is_problem else ""), (f"  [{outcome.check.id}]", "dim")))
        lines.append(_line(("      ", ""), (result.summary, "dim" if result.status in (Status.PASS, Status.SKIP) else "")))
    elif result.subject:
        lines.append(_line((f"      {mark} ", style), (result.subject + ": ", ""), (result.summary, "")))
    else:
        lines.append(_line((f"      {mark} ", style), (result.summary, "")))
    if verbose:
        lines += [_line(("        ", ""), (d, "dim")) for d in result.details]
    table = result.evidence.get("table")
    if table and table.get("rows"):
        lines.append(_table(table))
    if result.fix and result.status in (Status.WARN, Status.FAIL, Status.ERROR):
        lines += _fix_lines(result.fix, "      " if single else "        ")
    return lines


def _outcome_lines(outcome: CheckOutcome, verbose: bool) -> list[Any]:
    results = outcome.results
    if len(results) == 1:
        return _result_lines(outcome, results[0], verbose, single=True)
    mark, style = MARKS[outcome.status]
    lines = [_line((f"  {mark} ", style), (outcome.check.title, ""), (f"  [{outcome.check.id}]", "dim"))]
    for r in results:
        if verbose or r.status != Status.PASS or len(results) <= 8:
            lines += _result_lines(outcome, r, verbose, single=False)
    return lines


def render_text(report: Report, file: IO[str], verbose: bool = False, color: bool = True, width: int | None = None) -> None:
    from rich.console import Console

    console = Console(file=file, no_color=not color, highlight=False, soft_wrap=True, width=width, emoji=False,
                      force_terminal=color if color else None)
    host = report.host
    title = f"gpudoctor {report.tool_version}"
    where = ", ".join(
        str(v) for v in (host.get("hostname"), host.get("kernel"),
                         f"root {host['root']}" if host.get("root") not in (None, "/") else None,
                         f"replay of {host['replay']}" if host.get("replay") else None) if v
    )
    console.print(_line((title, "bold"), (f"  {where}" if where else "", "dim")))
    current: Layer | None = None
    for outcome in report.outcomes:
        if outcome.check.layer != current:
            current = outcome.check.layer
            console.print()
            console.print(_line((current.label, "bold underline")))
        if not verbose and outcome.blocked_by and outcome.status == Status.SKIP:
            mark, style = MARKS[Status.SKIP]
            console.print(_line((f"  {mark} ", style), (outcome.check.title, "dim"),
                                (f"  (blocked by {outcome.blocked_by})", "dim")))
            continue
        for line in _outcome_lines(outcome, verbose):
            console.print(line)
    console.print()
    v = report.verdict
    counts = ", ".join(f"{n} {k}" for k, n in v.counts.items() if n)
    if v.ready:
        console.print(_line(("✓ ", "bold green"), (v.headline, "bold green")))
    else:
        console.print(_line(("✗ ", "bold red"), (v.headline, "bold red")))
        if v.root_cause:
            console.print(_line(("  root cause: ", "dim"), (v.root_cause, "bold")))
        if v.fix:
            for line in _fix_lines(v.fix, "  "):
                console.print(line)
    for note in v.notes:
        console.print(_line(("  ", ""), (note, "")))
    console.print(_line((f"  {counts}", "dim")))
