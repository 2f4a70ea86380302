"""The report as Prometheus text exposition format, for node_exporter's textfile collector.

Every value here is read from the Report: readiness and the root cause from its verdict, each check's status
from its outcome, each request form's verdict from the probe results' evidence ("form", "verdict"). Nothing is
judged again. A check's status is written as a state set (one series per status, 1 for the one it has), so an
alert can say `gpudoctor_check_status{status="fail"} == 1` and a status change never leaves a stale series.

Format: https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
Textfile collector (write to a temporary file, then rename it into the directory):
https://github.com/prometheus/node_exporter#textfile-collector
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Mapping

from ..model import Report, Status

PREFIX = "gpudoctor"


def _escape_label(value: str) -> str:
    # Label values escape backslash, double quote and line feed (exposition format, "Text format details").
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    # HELP text escapes backslash and line feed only.
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class _Family:
    """One metric family: HELP and TYPE once, then its samples (the format wants them together)."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = f"{PREFIX}_{name}"
        self.kind = kind
        self.help = help_text
        self.samples: list[str] = []

    def add(self, value: float, labels: Mapping[str, str] | None = None) -> None:
        if labels:
            inner = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items())
            self.samples.append(f"{self.name}{{{inner}}} {_number(value)}")
        else:
            self.samples.append(f"{self.name} {_number(value)}")

    def lines(self) -> Iterable[str]:
        if not self.samples:
            return []
        return [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}", *self.samples]


def _created_seconds(created: str) -> float | None:
    try:
        stamp = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None
    return stamp.timestamp()


def render_prometheus(report: Report) -> str:
    verdict = report.verdict
    build = _Family("build_info", "gauge", "The gpudoctor version that judged this host (value is always 1).")
    build.add(1, {"version": report.tool_version, "schema": report.schema})

    ready = _Family("ready", "gauge", "1 when containers on this host can use its NVIDIA GPUs, else 0.")
    ready.add(1 if verdict.ready else 0)

    root = _Family(
        "root_cause_info", "gauge", "The lowest broken check and its layer, when the host is not ready (value 1)."
    )
    if verdict.root_cause:
        root.add(1, {"check": verdict.root_cause, "layer": verdict.layer.value if verdict.layer else ""})

    counts = _Family("results", "gauge", "Number of checks with each status in this run.")
    for status in Status:
        counts.add(int(verdict.counts.get(status.value, 0)), {"status": status.value})

    check_status = _Family(
        "check_status", "gauge", "Status of each check, as a state set: 1 for the status it has, 0 for the others."
    )
    check_duration = _Family("check_duration_seconds", "gauge", "Time each check took to judge its facts.")
    forms = _Family(
        "request_form_verdict",
        "gauge",
        "Each GPU request form probed in a container and its verdict (works, fails, mismatch, degraded, not-run); value 1.",
    )
    seen_forms: set[tuple[str, str]] = set()
    for outcome in report.outcomes:
        info = outcome.check
        for status in Status:
            labels = {"check": info.id, "layer": info.layer.value, "status": status.value}
            check_status.add(1 if outcome.status == status else 0, labels)
        check_duration.add(round(outcome.duration_s, 6), {"check": info.id, "layer": info.layer.value})
        for result in outcome.results:
            form, form_verdict = result.evidence.get("form"), result.evidence.get("verdict")
            # A form's verdict is the probe result that carries one; a later note about the same form
            # (a revealed cause) carries no verdict and is not a second sample. A per-GPU form id is probed twice
            # on a multi-GPU host (`--gpus device=0`, then `"device=0,1,…"`), so the request names the series with the form.
            if not isinstance(form, str) or not isinstance(form_verdict, str):
                continue
            request = str(result.evidence.get("request") or result.subject or form)
            if (form, request) in seen_forms:
                continue
            seen_forms.add((form, request))
            forms.add(1, {"form": form, "request": request, "check": info.id, "verdict": form_verdict})

    duration = _Family("run_duration_seconds", "gauge", "Wall time of the run: gathering facts, probes and checks.")
    total = report.timings.get("total_s") if report.timings else None
    if total is not None:
        duration.add(round(float(total), 6))
    created = _Family(
        "report_created_timestamp_seconds", "gauge", "When the facts were read (Unix time; for a replay, when recorded)."
    )
    stamp = _created_seconds(report.created)
    if stamp is not None:
        created.add(stamp)

    families = (build, ready, root, counts, check_status, check_duration, forms, duration, created)
    return "\n".join(line for family in families for line in family.lines()) + "\n"
