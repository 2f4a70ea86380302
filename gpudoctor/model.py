"""The result model: what checks return and what renderers show.

Plain frozen dataclasses and enums only. Nothing here imports Rich, Docker or NVML, and nothing
here decides anything about a host: checks decide, renderers render.
"""

from __future__ import annotations

import enum
from dataclasses import field
from typing import Any, Mapping

from .frozen import frozen


class Status(str, enum.Enum):
    """Outcome of one result, ordered by badness (docs/design.md "Results")."""

    PASS = "pass"
    SKIP = "skip"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"

    @property
    def badness(self) -> int:
        return _BADNESS[self]

    @property
    def is_problem(self) -> bool:
        """fail and error make the host "not ready"."""
        return self in (Status.FAIL, Status.ERROR)


_BADNESS = {Status.PASS: 0, Status.SKIP: 1, Status.WARN: 2, Status.FAIL: 3, Status.ERROR: 4}


def worst(statuses: "list[Status] | tuple[Status, ...]") -> Status:
    return max(statuses, key=lambda s: s.badness) if statuses else Status.SKIP


class Layer(str, enum.Enum):
    """The chain from hardware to container, bottom up. Declaration order is chain order."""

    PLATFORM = "platform"
    PCI = "pci"
    KERNEL = "kernel"
    DEVICES = "devices"
    NVML = "nvml"
    TOOLKIT = "toolkit"
    CDI = "cdi"
    DOCKER = "docker"
    CONTAINERS = "containers"

    @property
    def rank(self) -> int:
        return list(Layer).index(self)

    @property
    def label(self) -> str:
        return _LAYER_LABELS[self]


_LAYER_LABELS = {
    Layer.PLATFORM: "Platform",
    Layer.PCI: "PCI hardware",
    Layer.KERNEL: "Kernel driver",
    Layer.DEVICES: "Device nodes",
    Layer.NVML: "NVML (driver userspace)",
    Layer.TOOLKIT: "NVIDIA Container Toolkit",
    Layer.CDI: "CDI specs",
    Layer.DOCKER: "Docker daemon",
    Layer.CONTAINERS: "Probe containers",
}


@frozen
class Fix:
    """What to do: one or two imperative sentences, literal commands, and where the rule comes from."""

    summary: str
    commands: tuple[str, ...] = ()
    link: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "commands": list(self.commands), "link": self.link}


@frozen
class Result:
    """One finding of one check.

    `summary` states what was *observed*; `details` are extra lines shown with -v; `evidence` is
    machine-readable data for the JSON report; `subject` names the thing the finding is about.
    """

    status: Status
    summary: str
    details: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    subject: str | None = None
    fix: Fix | None = None
    blocked_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "summary": self.summary,
            "details": list(self.details),
            "evidence": dict(self.evidence),
            "subject": self.subject,
            "fix": self.fix.to_dict() if self.fix else None,
            "blocked_by": self.blocked_by,
        }


# Small constructors so checks read like prose.
def passed(summary: str, **kw: Any) -> Result:
    return Result(Status.PASS, summary, **_norm(kw))


def skipped(summary: str, **kw: Any) -> Result:
    return Result(Status.SKIP, summary, **_norm(kw))


def warned(summary: str, **kw: Any) -> Result:
    return Result(Status.WARN, summary, **_norm(kw))


def failed(summary: str, fix: Fix, **kw: Any) -> Result:
    return Result(Status.FAIL, summary, fix=fix, **_norm(kw))


def errored(summary: str, **kw: Any) -> Result:
    return Result(Status.ERROR, summary, **_norm(kw))


def _norm(kw: dict[str, Any]) -> dict[str, Any]:
    if "details" in kw:
        kw["details"] = tuple(kw["details"])
    return kw


@frozen
class CheckInfo:
    """What a check is, independent of any run (used by `gpudoctor list` and `explain`)."""

    id: str
    title: str
    layer: Layer
    needs: tuple[str, ...]
    after: tuple[str, ...]
    source: str
    doc: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "layer": self.layer.value,
            "needs": list(self.needs),
            "after": list(self.after),
            "source": self.source,
            "doc": self.doc,
        }


# Evidence key of a result about gpudoctor's own set-up rather than the host (engine: plugin load errors).
OUTSIDE_HOST = "outside_host"


@frozen
class CheckOutcome:
    """A check and the results it produced in one run."""

    check: CheckInfo
    results: tuple[Result, ...]
    duration_s: float = 0.0

    @property
    def status(self) -> Status:
        return worst([r.status for r in self.results])

    @property
    def outside_host(self) -> bool:
        """A finding about gpudoctor's own set-up (a plugin that failed to load), not about the host."""
        return bool(self.results) and all(r.evidence.get(OUTSIDE_HOST) for r in self.results)

    @property
    def blocked_by(self) -> str | None:
        if self.results and all(r.blocked_by for r in self.results):
            return self.results[0].blocked_by
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.check.to_dict(),
            "status": self.status.value,
            "duration_s": round(self.duration_s, 4),
            "results": [r.to_dict() for r in self.results],
        }


@frozen
class Verdict:
    """The closing line: ready or not, and if not, the lowest broken layer and its fix."""

    ready: bool
    headline: str
    root_cause: str | None = None
    layer: Layer | None = None
    fix: Fix | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    # Lines a check asked to be repeated under the verdict (evidence key "verdict_note"),
    # e.g. which GPU request form to use on this host.
    notes: tuple[str, ...] = ()
    # A run limited by --only/--skip: the layers (labels) with checks that did not run. Such a run never
    # calls the host ready on their behalf.
    partial: bool = False
    unchecked: tuple[str, ...] = ()
    # Problems outside the host's chain (a plugin that failed to load): shown as their own rows, never the
    # root cause of the host.
    outside: tuple[str, ...] = ()
    # What the verdict covers, in words (gpudoctor/scope.py): every layer of one machine, or, with a remote
    # daemon, that daemon and its containers only.
    scope: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "scope": self.scope,
            "partial": self.partial,
            "unchecked": list(self.unchecked),
            "outside": list(self.outside),
            "notes": list(self.notes),
            "headline": self.headline,
            "root_cause": self.root_cause,
            "layer": self.layer.value if self.layer else None,
            "fix": self.fix.to_dict() if self.fix else None,
            "counts": dict(self.counts),
        }


REPORT_SCHEMA = "gpudoctor.report/v1"
# README "Exit codes": 0 ready, 1 not ready, 2 usage error, 3 internal failure, and 4 for a partial run
# (--only/--skip) that found nothing broken in what it checked: not "ready", since layers went unchecked.
EXIT_PARTIAL = 4


@frozen
class Report:
    outcomes: tuple[CheckOutcome, ...]
    verdict: Verdict
    tool_version: str
    created: str
    host: Mapping[str, Any] = field(default_factory=dict)
    schema: str = REPORT_SCHEMA
    # Wall-clock seconds: "total_s" for the run, "facts_s" per fact (gathering, probes included, is where the
    # time goes; checks themselves take microseconds).
    timings: Mapping[str, Any] = field(default_factory=dict)

    def exit_code(self, strict: bool = False) -> int:
        """0 ready, 1 not ready (any fail/error; any warn with --strict), 4 partial. See README "Exit codes"."""
        # A plugin that failed to load is its own error row, outside the host's verdict: it fails only --strict.
        statuses = [o.status for o in self.outcomes if not o.outside_host]
        if any(s.is_problem for s in statuses):
            return 1
        if strict and any(o.status is not Status.PASS and o.outside_host for o in self.outcomes):
            return 1
        if strict and Status.WARN in statuses:
            return 1
        if self.verdict.partial:
            return EXIT_PARTIAL
        return 0

    def check_seconds(self, outcome: CheckOutcome) -> float:
        """A check's real time: its own run plus the slowest fact it waited for."""
        facts = self.timings.get("facts_s") or {}
        waited = max((float(facts.get(n, 0.0)) for n in outcome.check.needs), default=0.0)
        return waited + outcome.duration_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "tool_version": self.tool_version,
            "created": self.created,
            "host": dict(self.host),
            "verdict": self.verdict.to_dict(),
            "checks": [o.to_dict() for o in self.outcomes],
            "timings": dict(self.timings),
        }
