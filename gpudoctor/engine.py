"""Runs checks over gathered facts and assembles the immutable report.

Rules (docs/design.md "Results"):
* a check whose `after` check failed (or was itself blocked) is skipped "blocked by <root id>";
* a check that needs a fact that could not be gathered, or that raises, is an `error` row;
* the verdict names the lowest failing layer and its fix.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import __version__
from .frozen import frozen
from .checking import Check, as_results, check
from .facts.host import Host
from .facts.registry import FactOptions, FactSet, Gathering, gather
from .scope import Scope, not_judged, scope_of, scoped_verdict
from .model import OUTSIDE_HOST, CheckInfo, CheckOutcome, Fix, Layer, Report, Result, Status, Verdict, errored, skipped

PLUGIN_GROUP = "gpudoctor.checks"


@frozen
class LoadedChecks:
    checks: tuple[Check, ...]


def builtin_checks() -> tuple[Check, ...]:
    from .checks import BUILTIN_CHECKS

    return tuple(c.with_source("builtin") for c in BUILTIN_CHECKS)


def _plugin_error_check(name: str, message: str) -> Check:
    @check(f"plugin.{name}", f"Plugin {name} loads", layer=Layer.PLATFORM)
    def broken() -> Result:
        return errored(f"plugin {name!r} failed to load: {message}", evidence={OUTSIDE_HOST: True})

    return broken.with_source(f"plugin:{name}")


def plugin_checks(builtin_ids: set[str], entry_points: Callable[[], Iterable[Any]] | None = None) -> tuple[Check, ...]:
    """Checks from the `gpudoctor.checks` entry-point group. A broken plugin becomes an error row;
    a plugin check whose id collides with a built-in one loses and becomes a skip row."""
    if entry_points is None:
        from .plugins import entry_points as _eps

        def entry_points() -> Iterable[Any]:
            return _eps(PLUGIN_GROUP)

    found: list[Check] = []
    for ep in entry_points():
        try:
            obj = ep.load()
            items = getattr(obj, "CHECKS", obj)
            items = [items] if isinstance(items, Check) else list(items)
            for item in items:
                if not isinstance(item, Check):
                    raise TypeError(f"{type(item).__name__} is not a gpudoctor Check")
        except Exception as e:  # a plugin must never crash the tool
            found.append(_plugin_error_check(ep.name, f"{type(e).__name__}: {e}"))
            continue
        for item in items:
            if item.id in builtin_ids or any(c.id == item.id for c in found):
                found.append(_collision_check(ep.name, item.id))
            else:
                found.append(item.with_source(f"plugin:{ep.name}"))
    return tuple(found)


def _collision_check(plugin: str, check_id: str) -> Check:
    @check(f"plugin.{plugin}.{check_id}", f"Plugin {plugin} check ids are unique", layer=Layer.PLATFORM)
    def collided() -> Result:
        return skipped(f"plugin {plugin!r} defines check {check_id!r}, which already exists; the plugin's check is ignored")

    return collided.with_source(f"plugin:{plugin}")


def all_checks(with_plugins: bool = True) -> tuple[Check, ...]:
    if not with_plugins:
        return builtin_checks()
    # Finding the plugins reads every installed distribution's entry_points.txt (gpudoctor/plugins.py): on a slow
    # filesystem with a big environment that is as long as importing the built-in checks, so both go on at once.
    import threading

    from .plugins import entry_points

    declared: list[list[Any]] = []
    failures: list[BaseException] = []

    def find() -> None:
        try:
            declared.append(list(entry_points(PLUGIN_GROUP)))
        except Exception as e:  # a plugin must never crash the tool, nor can listing them
            failures.append(e)

    finder = threading.Thread(target=find, daemon=True, name="plugins")
    finder.start()
    builtins = builtin_checks()
    finder.join()
    if failures:
        return builtins + (_plugin_error_check("entry-points", f"the plugins could not be listed: {failures[0]!r}"),)
    plugins = plugin_checks({c.id for c in builtins}, entry_points=lambda: declared[0] if declared else [])
    return builtins + plugins


def select(checks: Sequence[Check], only: Sequence[str] = (), skip: Sequence[str] = ()) -> tuple[Check, ...]:
    """Filter by id prefix (`--only docker` keeps docker.*)."""

    def matches(cid: str, prefixes: Sequence[str]) -> bool:
        return any(cid == p or cid.startswith(p.rstrip(".") + ".") for p in prefixes)

    return tuple(c for c in checks if (not only or matches(c.id, only)) and not matches(c.id, skip))


def needed_facts(checks: Sequence[Check]) -> list[str]:
    return list(dict.fromkeys(name for c in checks for name in c.info.needs))


def facts_to_gather(checks: Sequence[Check]) -> list[str]:
    """What a run reads: what the checks need, plus host_identity, which names the machine in the report."""
    return list(dict.fromkeys(["host_identity", *needed_facts(checks)]))


def run_checks(checks: Sequence[Check], facts: FactSet, scope: Scope | None = None) -> tuple[CheckOutcome, ...]:
    """`scope`: with a remote daemon, this machine's host layers are shown but not judged (gpudoctor/scope.py), so
    they neither block the daemon's checks nor become its root cause."""
    outcomes: dict[str, CheckOutcome] = {}
    for chk in checks:
        outcome = _run_one(chk, facts, outcomes)
        outcomes[chk.id] = not_judged(outcome, scope) if scope is not None else outcome
    return promote_explained(tuple(outcomes.values()))


def promote_explained(outcomes: Sequence[CheckOutcome]) -> tuple[CheckOutcome, ...]:
    """Root-cause rule (issue 9): a failure explained by a lower layer's condition makes that layer fail.

    A failing result may name, in `evidence["explained_by"]`, the check that owns the condition behind it (a probe
    refused with the words of a toolkit version skew names `toolkit.versions`). When that check only warned, its
    condition is shown to break containers: it fails, with its own fix, and so becomes the root cause that the
    verdict names. A check that passed is not overruled: then the failure stays the root cause itself.
    """
    by_id = {o.check.id: o for o in outcomes}
    because: dict[str, list[str]] = {}
    for o in outcomes:
        for r in o.results:
            target = r.evidence.get("explained_by")
            if r.status is Status.FAIL and isinstance(target, str) and target != o.check.id:
                because.setdefault(target, []).append(f"{o.check.id}: {r.subject or r.summary}")
    promoted = {}
    for target, who in because.items():
        warned_o = by_id.get(target)
        if warned_o is None or warned_o.status is not Status.WARN:
            continue
        note = "fails, not just warns: containers fail because of it (" + "; ".join(dict.fromkeys(who)) + ")"
        results = tuple(
            replace(r, status=Status.FAIL, details=(*r.details, note),
                    evidence={**r.evidence, "promoted_by": list(dict.fromkeys(who))})
            if r.status is Status.WARN else r
            for r in warned_o.results
        )
        promoted[target] = replace(warned_o, results=results)
    return tuple(promoted.get(o.check.id, o) for o in outcomes)


def _blocker(chk: Check, outcomes: Mapping[str, CheckOutcome]) -> str | None:
    for dep in chk.info.after:
        prior = outcomes.get(dep)
        if prior is None:
            continue
        if prior.blocked_by:
            return prior.blocked_by
        if prior.status.is_problem:
            return prior.check.id
    return None


def _run_one(chk: Check, facts: FactSet, outcomes: Mapping[str, CheckOutcome]) -> CheckOutcome:
    started = time.monotonic()
    blocker = _blocker(chk, outcomes)
    if blocker:
        return CheckOutcome(chk.info, (skipped(f"blocked by {blocker}", blocked_by=blocker),))
    missing = [facts.errors[n] for n in chk.info.needs if n in facts.errors]
    if missing:
        results: tuple[Result, ...] = tuple(
            errored(
                f"could not gather fact {e.name!r}: {e.message}",
                evidence={"fact": e.name, "kind": e.kind},
                details=tuple(e.trace.splitlines()[-3:]) if e.trace else (),
            )
            for e in missing
        )
        return CheckOutcome(chk.info, results, time.monotonic() - started)
    try:
        kwargs = {n: facts.values[n] for n in chk.info.needs}
        results = as_results(chk.fn(**kwargs))
    except Exception as e:  # a crashing check is an error row, never a traceback
        tb = traceback.format_exc().splitlines()
        results = (errored(f"check crashed: {type(e).__name__}: {e}", details=tuple(tb[-4:])),)
    return CheckOutcome(chk.info, results, time.monotonic() - started)


def verdict(outcomes: Sequence[CheckOutcome]) -> Verdict:
    counts: dict[str, int] = {s.value: 0 for s in Status}
    for o in outcomes:
        counts[o.status.value] += 1
    roots = [o for o in outcomes if o.status.is_problem and not o.blocked_by and not o.outside_host]
    outside = tuple(r.summary for o in outcomes if o.outside_host for r in o.results)
    notes = tuple(
        str(r.evidence["verdict_note"]) for o in outcomes for r in o.results if r.evidence.get("verdict_note")
    )
    if not roots:
        warn = counts[Status.WARN.value]
        headline = "Ready: no layer checked is broken"
        if warn:
            headline += f" ({warn} warning{'s' if warn != 1 else ''})"
        return Verdict(True, headline, counts=counts, notes=notes, outside=outside)
    root = min(roots, key=lambda o: o.check.layer.rank)
    bad = next(r for r in root.results if r.status.is_problem)
    fix: Fix | None = bad.fix
    headline = f"Not ready: {root.check.layer.label} — {bad.summary}"
    return Verdict(False, headline, root.check.id, root.check.layer, fix, counts, notes, outside=outside)


def build_report(outcomes: Sequence[CheckOutcome], host: Host, extra: Mapping[str, Any] | None = None) -> Report:
    info: dict[str, Any] = {"kind": host.kind, "root": host.root, **(extra or {})}
    try:
        info["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(host.now()))
    except Exception:
        info["created"] = None
    return Report(
        outcomes=tuple(outcomes),
        verdict=verdict(outcomes),
        tool_version=__version__,
        created=info.pop("created") or "",
        host=info,
    )


def run(
    host: Host,
    checks: Sequence[Check] | None = None,
    options: FactOptions | None = None,
    gathering: Gathering | None = None,
) -> tuple[Report, FactSet]:
    """Gather what the checks need (in `gathering`, when the run already started some), judge, and report."""
    checks = tuple(checks) if checks is not None else all_checks()
    names = facts_to_gather(checks)
    facts = gathering.collect(names) if gathering is not None else gather(host, names, options)
    scope = scope_of(facts.values)
    outcomes = run_checks(checks, facts, scope)
    extra: dict[str, Any] = {}
    summary = facts.values.get("host_identity")
    if summary is not None:
        extra = {"hostname": getattr(summary, "hostname", None), "kernel": getattr(summary, "kernel", None)}
    if "docker" in facts.values:
        extra["layers_read"] = scope.where
    report = build_report(outcomes, host, extra)
    return replace(report, verdict=scoped_verdict(report.verdict, scope)), facts


def not_recorded(facts: FactSet) -> list[str]:
    """Facts a replay could not reproduce: the bundle lacked answers they need."""
    return [e.message for e in facts.errors.values() if e.kind == "not-recorded"]


def check_infos(checks: Sequence[Check]) -> tuple[CheckInfo, ...]:
    return tuple(c.info for c in checks)
