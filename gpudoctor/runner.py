"""One run of gpudoctor: pick the host (live, recording or replay), gather, judge, report.

Kept apart from cli.py so that the CLI only parses options and renders, and so that tests can run
whole checks in-process.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from typing import Any, Mapping

from . import __version__
from .facts.host import BundleError, Host, LiveHost, RecordingHost, ReplayHost
from .facts.registry import FactOptions, FactSet
from .model import Report


@dataclass(frozen=True)
class RunRequest:
    root: str = "/"
    replay: str | None = None
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckRun:
    report: Report | None
    facts: FactSet | None
    problem: str | None = None  # set when there is no trustworthy report (bad bundle, unrecorded answers)
    usage: bool = False  # the problem is the user's request, not the tool (exit 2, not 3)


@dataclass(frozen=True)
class FactsRun:
    facts_json: str
    answers: int = 0
    problem: str | None = None


def _open_host(request: RunRequest, recording: bool = False) -> tuple[Host, dict[str, Any]]:
    """The host and the options to use: a replay reuses the options it was recorded with, so that
    it asks exactly the questions the recording answered."""
    if request.replay:
        host = ReplayHost.load(request.replay)
        options = dict(host.meta.get("options") or {})
        return host, options
    host = RecordingHost(request.root) if recording else LiveHost(request.root)
    return host, dict(request.options)


def run_check(request: RunRequest, progress: bool = False) -> CheckRun:
    from .engine import all_checks, run, select

    try:
        host, options = _open_host(request)
    except BundleError as e:
        return CheckRun(None, None, f"cannot replay: {e}")
    checks = select(all_checks(), request.only, request.skip)
    if not checks:
        return CheckRun(None, None, "no check matches the --only/--skip selection (see `gpudoctor list`)", usage=True)
    status_cm = _progress(progress)
    started = time.monotonic()
    with status_cm:
        report, facts = run(host, checks, FactOptions(options))
    report = replace(report, duration_s=time.monotonic() - started)
    if isinstance(host, ReplayHost):
        problem = _replay_problem(request, host, facts)
        if problem:
            return CheckRun(None, facts, problem)
        report = _with_host_info(report, {"replay": request.replay})
    return CheckRun(report, facts)


def _replay_problem(request: RunRequest, host: ReplayHost, facts: FactSet) -> str | None:
    """Why a replay cannot be trusted: answers of the wrong shape, or answers it lacks. Either way
    there is no report, rather than a verdict invented from a crash (exit 3, cli.py)."""
    from .engine import not_recorded

    bad = [e for e in facts.errors.values() if e.kind == "bad-answer"]
    if bad:
        listing = "\n  ".join(f"fact {e.name!r}: {e.message}" for e in bad[:10])
        return f"cannot replay {request.replay}: {len(bad)} fact(s) could not use its answers:\n  {listing}"
    missing = not_recorded(facts)
    if missing:
        listing = "\n  ".join(missing[:10])
        return (
            f"cannot replay {request.replay}: it was recorded by gpudoctor {host.tool_version} and lacks "
            f"{len(missing)} answer(s) this version needs:\n  {listing}"
        )
    return None


def _with_host_info(report: Report, extra: Mapping[str, Any]) -> Report:
    return replace(report, host={**report.host, **extra})


def _progress(enabled: bool) -> Any:
    import contextlib

    if not enabled:
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status("gathering facts and running probes…", spinner="dots")


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def run_facts(request: RunRequest, record: str | None = None) -> FactsRun:
    from .engine import all_checks, facts_to_gather
    from .facts.registry import gather

    try:
        host, options = _open_host(request, recording=bool(record))
    except BundleError as e:
        return FactsRun("", 0, f"cannot replay: {e}")
    names = facts_to_gather(all_checks())
    facts = gather(host, names, FactOptions(options))
    if isinstance(host, ReplayHost):
        problem = _replay_problem(request, host, facts)
        if problem:
            return FactsRun("", 0, problem)
    data = {
        "tool_version": __version__,
        "facts": {name: to_jsonable(facts.values[name]) for name in names if name in facts.values},
        "errors": {name: to_jsonable(err) for name, err in facts.errors.items()},
    }
    answers = 0
    if record and isinstance(host, RecordingHost):
        bundle = host.bundle(__version__, meta={"options": options})
        answers = len(bundle["answers"])
        try:
            with open(record, "w", encoding="utf-8") as f:
                json.dump(bundle, f, indent=1, sort_keys=True)
                f.write("\n")
        except OSError as e:
            return FactsRun("", 0, f"cannot write {record}: {e.strerror or e}")
    return FactsRun(json.dumps(data, indent=2) + "\n", answers)
