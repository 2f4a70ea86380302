"""Many hosts' JSON reports (`gpudoctor check --format json`) read into one fleet summary, for `gpudoctor merge`.

Nothing is judged again: each host's readiness, root cause and fix are its own report's verdict; a layer's
status is the worst status of that layer's checks in the report (the rule a check's status follows, model.worst).
Reading is bounded: files are read as regular files up to `MAX_REPORT_BYTES` (facts/bounded.py), and input that is
not a `gpudoctor.report/v1` object is listed as unreadable with the reason, never dropped in silence.
"""

from __future__ import annotations

import json
from dataclasses import field
from typing import Any, Iterable, Mapping

from .frozen import frozen
from .model import REPORT_SCHEMA, Layer, Status, worst

# A report of a host with 8 GPUs and every form probed is about 300 KB; 64 MiB leaves room and stops a runaway.
MAX_REPORT_BYTES = 64 << 20
# Reports piped on stdin, all together (a fleet of thousands of hosts).
MAX_STDIN_BYTES = 1 << 30


@frozen
class HostRow:
    """One host as its report says it: readiness, root cause and the worst status per layer."""

    name: str
    source: str
    ready: bool
    root_cause: str | None
    layer: str | None
    headline: str
    fix: str | None
    layers: Mapping[str, Status]
    tool_version: str
    created: str

    @property
    def broken_layers(self) -> tuple[str, ...]:
        return tuple(name for name, status in self.layers.items() if status.is_problem)


@frozen
class Unreadable:
    source: str
    problem: str


@frozen
class RootCauseGroup:
    root_cause: str
    layer: str | None
    fix: str | None
    hosts: tuple[str, ...]


@frozen
class Fleet:
    hosts: tuple[HostRow, ...]
    unreadable: tuple[Unreadable, ...] = ()
    layers: tuple[str, ...] = field(default_factory=lambda: tuple(layer.value for layer in Layer))

    @property
    def ready(self) -> tuple[HostRow, ...]:
        return tuple(h for h in self.hosts if h.ready)

    @property
    def not_ready(self) -> tuple[HostRow, ...]:
        return tuple(h for h in self.hosts if not h.ready)

    def by_root_cause(self) -> tuple[RootCauseGroup, ...]:
        """Not-ready hosts grouped by root cause, the largest group first (then chain order, lowest layer first)."""
        groups: dict[str, list[HostRow]] = {}
        for h in self.not_ready:
            groups.setdefault(h.root_cause or "unknown", []).append(h)
        order = {name: i for i, name in enumerate(self.layers)}
        ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), order.get(kv[1][0].layer or "", 99), kv[0]))
        return tuple(
            RootCauseGroup(cause, rows[0].layer, rows[0].fix, tuple(r.name for r in rows)) for cause, rows in ranked
        )

    def broken_at(self) -> dict[str, tuple[str, ...]]:
        """Layer → the hosts with a failing or erroring check in it (a host broken at two layers is under both)."""
        out: dict[str, tuple[str, ...]] = {}
        for layer in self.layers:
            names = tuple(h.name for h in self.hosts if layer in h.broken_layers)
            if names:
                out[layer] = names
        return out

    @property
    def exit_code(self) -> int:
        """0 when every host is ready and every input was a report; 1 otherwise (a Job or CI gate)."""
        return 0 if self.hosts and not self.unreadable and not self.not_ready else 1


# -- reading -------------------------------------------------------------------------------------
def split_documents(text: str) -> list[tuple[Any, str | None]]:
    """JSON values one after another: one per line, or pretty-printed and concatenated (`cat *.json`).
    Each is (value, None), or (None, problem) for text that does not parse; parsing stops at the first
    such text, since where the next document starts is then unknown."""
    decoder = json.JSONDecoder()
    out: list[tuple[Any, str | None]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            return out
        try:
            value, i = decoder.raw_decode(text, i)
        except RecursionError:
            out.append((None, "nested too deeply to be a gpudoctor report"))
            return out
        except json.JSONDecodeError as e:
            out.append((None, f"not JSON: {e.msg} at line {e.lineno} column {e.colno}"))
            return out
        out.append((value, None))


def _host_name(report: Mapping[str, Any]) -> str:
    host = report.get("host")
    name = host.get("hostname") if isinstance(host, Mapping) else None
    return str(name) if name else "unknown-host"


def _why_not_a_report(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"not a gpudoctor report (a JSON {type(value).__name__}, not an object)"
    if value.get("schema") != REPORT_SCHEMA:
        return f"not a gpudoctor report (schema {value.get('schema')!r}, expected {REPORT_SCHEMA!r})"
    if not isinstance(value.get("verdict"), dict) or not isinstance(value.get("checks"), list):
        return "not a gpudoctor report (no verdict or checks)"
    return None


def _layers(checks: list[Any]) -> dict[str, Status]:
    statuses: dict[str, list[Status]] = {}
    for c in checks:
        if not isinstance(c, dict):
            continue
        try:
            status = Status(c.get("status"))
        except ValueError:
            continue
        statuses.setdefault(str(c.get("layer")), []).append(status)
    return {layer: worst(s) for layer, s in statuses.items()}


def _row(report: dict[str, Any], name: str, source: str) -> HostRow:
    verdict = report["verdict"]
    fix = verdict.get("fix")
    return HostRow(
        name=name,
        source=source,
        ready=bool(verdict.get("ready")),
        root_cause=verdict.get("root_cause"),
        layer=verdict.get("layer"),
        headline=str(verdict.get("headline") or ""),
        fix=str(fix.get("summary")) if isinstance(fix, dict) and fix.get("summary") else None,
        layers=_layers(report["checks"]),
        tool_version=str(report.get("tool_version") or ""),
        created=str(report.get("created") or ""),
    )


def _source_of(report: Mapping[str, Any], where: str) -> str:
    """Where a report came from: the file (or stdin item); for a replay, the bundle it replayed."""
    host = report.get("host")
    replay = host.get("replay") if isinstance(host, Mapping) else None
    return f"{where} (replay of {replay})" if replay else where


def _labels(report: Mapping[str, Any], where: str) -> list[str]:
    """Short names for where a report came from, shortest first: a replayed bundle's folder, then that folder
    with its parent (`real-h200-docker29-toolkit/cdi-runtime`); else the file's name without .json."""
    import os

    host = report.get("host")
    replay = host.get("replay") if isinstance(host, Mapping) else None
    if replay:
        parts = [p for p in os.path.dirname(str(replay)).split("/") if p not in ("", ".")]
        return ["/".join(parts[-n:]) for n in (1, 2, 3) if len(parts) >= n] or [str(replay)]
    base = os.path.basename(where)
    return [base[: -len(".json")] if base.endswith(".json") else base]


def build_fleet(documents: Iterable[tuple[str, Any, str | None]]) -> Fleet:
    """(where, value, problem) triples → the fleet. Host names are the reports' hostnames; where two reports
    name the same host, each gets the shortest label of where it came from that tells them apart (its bundle's
    folder, its file's name), or its full source where none does."""
    reports: list[tuple[str, dict[str, Any]]] = []
    unreadable: list[Unreadable] = []
    for where, value, problem in documents:
        problem = problem or _why_not_a_report(value)
        if problem:
            unreadable.append(Unreadable(where, problem))
        else:
            reports.append((where, value))
    names = [_host_name(r) for _, r in reports]
    labels = [_labels(r, w) for w, r in reports]
    rows = []
    for i, ((where, report), name) in enumerate(zip(reports, names)):
        source = _source_of(report, where)
        twins = [j for j, other in enumerate(names) if other == name and j != i]
        shown = name
        if twins:
            shown = f"{name} [{source}]"
            for label in labels[i]:
                if all(label not in labels[j] for j in twins):
                    shown = f"{name} [{label}]"
                    break
        rows.append(_row(report, shown, source))
    known = [layer.value for layer in Layer]
    extra = sorted({layer for r in rows for layer in r.layers} - set(known))  # a newer gpudoctor's layers
    return Fleet(tuple(rows), tuple(unreadable), tuple(known + extra))


def read_inputs(paths: list[str], stdin: Any) -> Fleet:
    """The fleet from report files; `-` reads many reports from stdin (one per line, or concatenated)."""
    from .facts.bounded import read_regular

    documents: list[tuple[str, Any, str | None]] = []
    for path in paths:
        if path == "-":
            text = stdin.read(MAX_STDIN_BYTES + 1)
            if len(text) > MAX_STDIN_BYTES:
                documents.append(("stdin", None, f"more than {MAX_STDIN_BYTES} bytes on stdin"))
                continue
            documents += [(f"stdin#{i + 1}", v, p) for i, (v, p) in enumerate(split_documents(text))]
            continue
        try:
            text = read_regular(path, MAX_REPORT_BYTES).decode("utf-8", errors="replace")
        except OSError as e:
            documents.append((path, None, f"cannot read: {e.strerror or e}"))
            continue
        parsed = split_documents(text)
        if not parsed:
            documents.append((path, None, "empty"))
        elif len(parsed) == 1:
            documents.append((path, *parsed[0]))
        else:
            documents += [(f"{path}#{i + 1}", v, p) for i, (v, p) in enumerate(parsed)]
    return build_fleet(documents)
