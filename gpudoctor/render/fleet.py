"""`gpudoctor merge` output: one table of hosts × layers with each host's root cause, or a JSON summary.
Everything shown is read from the Fleet (gpudoctor/fleet.py), which reads it from the hosts' own reports."""

from __future__ import annotations

import json

from ..fleet import Fleet
from ..model import Status

FLEET_SCHEMA = "gpudoctor.fleet/v1"

CELLS = {Status.PASS: "ok", Status.SKIP: "-", Status.WARN: "warn", Status.FAIL: "FAIL", Status.ERROR: "ERROR"}


def render_fleet_text(fleet: Fleet) -> str:
    header = ["host", *fleet.layers, "root cause"]
    rows = []
    for h in fleet.hosts:
        cause = "ready" if h.ready else f"{h.root_cause or 'unknown'} ({h.layer or '?'})"
        rows.append([h.name, *(CELLS[h.layers[layer]] if layer in h.layers else "" for layer in fleet.layers), cause])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.append("")
    lines.append(
        f"{len(fleet.hosts)} host(s): {len(fleet.ready)} ready, {len(fleet.not_ready)} not ready"
        + (f", {len(fleet.unreadable)} unreadable input(s)" if fleet.unreadable else "")
    )
    for group in fleet.by_root_cause():
        lines.append(f"  {group.root_cause} ({group.layer or '?'}): {len(group.hosts)} host(s): {', '.join(group.hosts)}")
        if group.fix:
            lines.append(f"    fix: {group.fix}")
    for bad in fleet.unreadable:
        lines.append(f"  unreadable {bad.source}: {bad.problem}")
    return "\n".join(lines) + "\n"


def render_fleet_json(fleet: Fleet) -> str:
    data = {
        "schema": FLEET_SCHEMA,
        "hosts": len(fleet.hosts),
        "ready": [h.name for h in fleet.ready],
        "not_ready": [h.name for h in fleet.not_ready],
        "by_root_cause": [
            {"root_cause": g.root_cause, "layer": g.layer, "fix": g.fix, "count": len(g.hosts), "hosts": list(g.hosts)}
            for g in fleet.by_root_cause()
        ],
        "broken_at": {layer: list(names) for layer, names in fleet.broken_at().items()},
        "host_rows": [
            {
                "host": h.name,
                "source": h.source,
                "ready": h.ready,
                "root_cause": h.root_cause,
                "layer": h.layer,
                "headline": h.headline,
                "layers": {layer: status.value for layer, status in h.layers.items()},
                "tool_version": h.tool_version,
                "created": h.created,
            }
            for h in fleet.hosts
        ],
        "unreadable": [{"source": u.source, "problem": u.problem} for u in fleet.unreadable],
    }
    return json.dumps(data, indent=2) + "\n"
