"""One run of gpudoctor: pick the host (live, recording or replay), gather, judge, report.

Kept apart from cli.py so that the CLI only parses options and renders, and so that tests can run
whole checks in-process.
"""

from __future__ import annotations

import json
from collections import Counter
import os
import time
from dataclasses import asdict, field, is_dataclass, replace
from typing import Any, Mapping, Sequence

from . import __version__
from .frozen import frozen
from .facts.host import BundleError, Host, LiveHost, RecordingHost, ReplayHost
from .facts.registry import FactOptions, FactSet, Gathering, loaded_facts, registered_facts
from .model import Report, Status, Verdict


@frozen
class RunRequest:
    root: str = "/"
    replay: str | None = None
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@frozen
class CheckRun:
    report: Report | None
    facts: FactSet | None
    problem: str | None = None  # set when there is no trustworthy report (bad bundle, unrecorded answers)
    usage: bool = False  # the problem is the user's request, not the tool (exit 2, not 3)


@frozen
class FactsRun:
    facts_json: str
    answers: int = 0
    problem: str | None = None


def _open_host(request: RunRequest, recording: bool = False) -> tuple[Host, dict[str, Any]]:
    """The host and the options to use: a replay reuses the options it was recorded with, so that
    it asks exactly the questions the recording answered."""
    if request.replay:
        replayed = ReplayHost.load(request.replay)
        options = dict(replayed.meta.get("options") or {})
        return replayed, options
    host = RecordingHost(request.root) if recording else LiveHost(request.root)
    return host, dict(request.options)


def _selection_problem(every: tuple[Any, ...], request: RunRequest) -> str | None:
    """An --only or --skip naming no check is a typo, not a wish: a usage error either way."""
    from .engine import select

    for flag, prefixes in (("--only", request.only), ("--skip", request.skip)):
        unknown = [p for p in prefixes if not select(every, (p,), ())]
        if unknown:
            return f"{flag} {', '.join(unknown)}: no check matches this id or id prefix (see `gpudoctor list`)"
    return None


def root_problem(root: str) -> str | None:
    """--root must name a directory: reading a missing tree would blame the kernel driver for a typo."""
    if root in ("", "/"):
        return None
    if not os.path.exists(root):
        return f"--root {root}: no such directory"
    if not os.path.isdir(root):
        return f"--root {root}: not a directory"
    return None


# How long a run waits for its probe containers to be under way before it loads the other fact modules and its
# checks (CPU work that would otherwise delay the probes' own preparation); past it, they load anyway.
EARLY_WAIT_S = 3.0


def _start_early(host: Host, options: Mapping[str, Any], request: RunRequest) -> Gathering | None:
    """Start gathering before the checks are loaded, when the run's facts are known without them.

    An unfiltered run gathers every built-in fact (the built-in checks need each; tests/test_engine.py holds them
    to it; plugins may add facts, started once they are loaded): the probe containers first of all, as soon as
    their own fact modules are loaded (facts/probe_chain.py), then, once the containers are on their way, every
    other fact, and the checks load while those wait on the machine. A run narrowed by --only/--skip needs what
    its checks need, and starts nothing it may not need (no probe containers for `--only nvml`)."""
    if request.only or request.skip:
        return None
    from .facts import probe_chain  # registers the facts the probes wait on

    gathering = Gathering(host, FactOptions(options), loaded_facts(), load_rest=registered_facts)
    gathering.start(probe_chain.FACTS)
    # Loading the other fact modules is CPU work that would hold up the facts the probes wait on (the daemon's
    # answers, the device nodes: threads of this process): the probes first, then the rest.
    gathering.wait_under_way("probes", EARLY_WAIT_S)
    gathering.start(gathering.load_more())
    return gathering


def run_check(request: RunRequest, progress: bool = False) -> CheckRun:
    if not request.replay:
        problem = root_problem(request.root)
        if problem:
            return CheckRun(None, None, problem, usage=True)
    try:
        host, options = _open_host(request)
    except BundleError as e:
        return CheckRun(None, None, f"cannot replay: {e}")
    started = time.monotonic()
    with _progress(progress):
        gathering = _start_early(host, options, request)
        from .engine import all_checks, run, select

        every = all_checks()
        problem = _selection_problem(every, request)
        if problem:
            return CheckRun(None, None, problem, usage=True)
        checks = select(every, request.only, request.skip)
        if not checks:
            return CheckRun(None, None, "no check matches the --only/--skip selection (see `gpudoctor list`)", usage=True)
        report, facts = run(host, checks, FactOptions(options), gathering)
    report = replace(report, timings={"total_s": round(time.monotonic() - started, 4),
                                      "facts_s": {k: round(v, 4) for k, v in facts.durations.items()}})
    report = _with_host_info(report, _stack_info(facts))
    if len(checks) < len(every):
        report = replace(report, verdict=partial_verdict(report.verdict, checks, every))
    if isinstance(host, ReplayHost):
        problem = _replay_problem(request, host, facts)
        if problem:
            return CheckRun(None, facts, problem)
        report = _with_host_info(report, {"replay": request.replay})
    return CheckRun(report, facts)


def partial_verdict(verdict: Verdict, ran: Sequence[Any], every: Sequence[Any]) -> Verdict:
    """A run limited by --only/--skip judges only what it looked at (issue 11 #3): it names the layers it did
    not check, and when nothing it checked is broken it says "Partial", never "Ready" (exit 4)."""
    ran_ids = {c.id for c in ran}
    left_out = [c for c in every if c.id not in ran_ids]
    ran_of_layer = Counter(c.info.layer for c in ran)
    # A layer of which some checks ran is not "not checked": it is named with how much of it was.
    unchecked = tuple(dict.fromkeys(c.info.layer.label for c in sorted(left_out, key=lambda c: c.info.layer.rank)
                                    if c.info.layer not in ran_of_layer))
    not_checked = "not checked: " + ", ".join(unchecked) if unchecked else "some checks were left out"
    if not verdict.ready:
        return replace(verdict, partial=True, unchecked=unchecked)
    of_layer = Counter(c.info.layer for c in every)
    done = tuple(
        layer.label + ("" if ran_of_layer[layer] == of_layer[layer] else f" ({ran_of_layer[layer]} of {of_layer[layer]} checks)")
        for layer in sorted(ran_of_layer, key=lambda layer: layer.rank))
    headline = f"Partial: nothing broken in {', '.join(done)}; {not_checked}"
    warn = verdict.counts.get(Status.WARN.value, 0)
    if warn:
        headline += f" ({warn} warning{'s' if warn != 1 else ''})"
    note = "This run was limited by --only/--skip: it does not say whether the host is ready; run `gpudoctor check`."
    return replace(verdict, ready=False, headline=headline, partial=True, unchecked=unchecked,
                   notes=(*verdict.notes, note))


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


def _stack_info(facts: FactSet) -> dict[str, Any]:
    """Versions a CI report names (JUnit properties): the Docker engine, where it answers, and the driver."""
    info: dict[str, Any] = {}
    docker = facts.values.get("docker")
    if docker is not None:
        info["engine"] = getattr(docker, "server_version", None)
        info["docker_endpoint"] = getattr(docker, "endpoint", None)
    nvml = facts.values.get("nvml")
    if nvml is not None:
        info["driver"] = getattr(nvml, "driver_version", None)
    return {k: v for k, v in info.items() if v}


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
