"""The scenario library (tests/sim/scenarios.py) through the real `gpudoctor check`.

Each scenario builds a simulated host, starts a private dockerd wired to the stand-in toolkit, and
runs `gpudoctor check --root <tree> --format json` as a subprocess (DOCKER_HOST = the private
daemon, PYTHONPATH = the fake NVML): probe containers really start on a real Docker engine. The
verdict's root cause and fix must be the ones the scenario names. Scenarios with identical beds
share one daemon; a few beds run concurrently (WORKERS), and each is closed when its scenarios are done.
The beds run on the system engine (Debian's 20.10), for which the library's verdicts are written; what
Docker 29 does differently is in tests/test_sim_bed.py and tests/test_toolkit_real.py (both engines).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from tests.sim.bed import SimBed, bed_or_skip
from tests.sim.scenarios import SCENARIOS, Scenario

# Scenarios grouped by bed (first-appearance order): each bed is built once, its scenarios run on it.
GROUPS: dict[str, list[Scenario]] = {}
for _s in SCENARIOS:
    GROUPS.setdefault(_s.bed_key, []).append(_s)
ORDERED = [s for group in GROUPS.values() for s in group]
# Beds run concurrently: most of a scenario's time is dockerd/containerd/runc waiting, not CPU.
WORKERS = max(1, min(3, (os.cpu_count() or 1) + 1))


@dataclass
class Outcome:
    report: dict[str, Any] | None = None
    error: BaseException | None = None
    leftover_containers: list[str] | None = None


def _run_group(scenarios: list[Scenario], workdir: Any) -> dict[str, Outcome]:
    """Build the group's bed, run each scenario's `gpudoctor check` on it, close the bed.
    Never raises: a failure is kept for the scenarios it concerns."""
    out: dict[str, Outcome] = {}
    bed = None
    try:
        first = scenarios[0]
        bed = SimBed.create(workdir, first.host, first.toolkit, first.daemon, host_changes=first.host_changes)
        if first.after_start is not None:
            first.after_start(bed)
        for s in scenarios:
            try:
                if s.image_env:
                    bed.import_image(s.image, changes=[f"ENV {e}" for e in s.image_env])
                report = bed.check_json(*s.gpudoctor_args())
                out[s.id] = Outcome(report, leftover_containers=bed.dockerd.containers())
            except Exception as e:  # noqa: BLE001  (re-raised by the scenario's test)
                out[s.id] = Outcome(error=e)
    except Exception as e:  # noqa: BLE001  (the bed itself failed: every scenario on it reports it)
        for s in scenarios:
            out.setdefault(s.id, Outcome(error=e))
    finally:
        if bed is not None:
            try:
                bed.close()
            except Exception as e:  # noqa: BLE001
                for s in scenarios:
                    out.setdefault(s.id, Outcome(error=e))
    return out


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, Outcome]:
    """Every selected scenario's report, computed once, WORKERS beds at a time."""
    bed_or_skip()
    wanted = {
        item.callspec.params["scenario"].id
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_scenario" and hasattr(item, "callspec")
    }
    groups = [[s for s in g if s.id in wanted] for g in GROUPS.values()]
    groups = [g for g in groups if g]
    results: dict[str, Outcome] = {}
    # Temp dirs are made here, in the main thread: pytest's TempPathFactory is not thread-safe.
    workdirs = [tmp_path_factory.mktemp(g[0].id) for g in groups]
    with ThreadPoolExecutor(WORKERS) as pool:
        for done in pool.map(_run_group, groups, workdirs):
            results.update(done)
    return results


def _texts(check: dict[str, Any]) -> str:
    """Every result's summary (prefixed with its subject, as the text report shows it) and details."""
    lines = []
    for r in check["results"]:
        lines.append(f"{r['subject']}: {r['summary']}" if r.get("subject") else r["summary"])
        lines.extend(r.get("details") or [])
    return "\n".join(lines)


def _describe(report: dict[str, Any]) -> str:
    bad = [
        f"  {c['status']:5} {c['id']}: {c['results'][0]['summary'][:300] if c['results'] else ''}"
        for c in report["checks"]
        if c["status"] in ("fail", "warn", "error")
    ]
    return f"verdict: {report['verdict']['headline']}\n" + "\n".join(bad)


@pytest.mark.docker
@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(s, id=s.id, marks=[pytest.mark.xfail(strict=False, reason=s.xfail)] if s.xfail else [])
        for s in ORDERED
    ],
)
def test_scenario(outcomes, scenario: Scenario):
    outcome = outcomes[scenario.id]
    if outcome.error is not None:
        raise outcome.error
    report = outcome.report
    assert report is not None
    verdict = report["verdict"]
    why = _describe(report)
    assert verdict["root_cause"] == scenario.root_cause, why
    assert verdict["ready"] is (scenario.root_cause is None), why
    if scenario.fix is not None:
        assert verdict["fix"] is not None, why
        assert scenario.fix in json.dumps(verdict["fix"], ensure_ascii=False), json.dumps(verdict["fix"], indent=1)
    checks = {c["id"]: c for c in report["checks"]}
    for check_id, want in scenario.checks.items():
        status, text = (want, None) if isinstance(want, str) else want
        got = checks[check_id]
        assert got["status"] == status, f"{check_id}: {got['status']} != {status}\n{_texts(got)}\n{why}"
        if text is not None:
            assert text in _texts(got), f"{check_id}: {text!r} not in\n{_texts(got)}"
    # No scenario may crash a check: an error row is a gpudoctor bug, not a host problem.
    errors = [c["id"] for c in report["checks"] if c["status"] == "error"]
    assert not errors, why
    # Every probe container was removed.
    assert outcome.leftover_containers == []


def test_library_covers_enough_failure_modes():
    ids = [s.id for s in SCENARIOS]
    assert len(ids) == len(set(ids))
    broken = [s for s in SCENARIOS if s.root_cause is not None]
    modes = Counter(s.failure_mode.split()[0] for s in broken)
    assert len(broken) >= 15 and len(modes) >= 12, modes


def test_expected_check_ids_exist():
    from gpudoctor.checks import BUILTIN_CHECKS

    known = {c.id for c in BUILTIN_CHECKS}
    for s in SCENARIOS:
        assert s.root_cause is None or s.root_cause in known, s.id
        assert set(s.checks) <= known, (s.id, set(s.checks) - known)


@pytest.mark.docker
def test_eight_gpus_probe_each_per_gpu_form_with_two_containers(outcomes):
    """Issue 12: on the 8-GPU host, device=I/UUID and MIG take GPU 0 (or the first MIG device) alone and all in one
    request, and the verdict says so, so that nobody reads the results as one container per GPU."""
    outcome = outcomes.get("healthy-8gpu-mig")
    if outcome is None:
        pytest.skip("healthy-8gpu-mig was not selected")
    if outcome.error is not None:
        raise outcome.error
    report = outcome.report
    checks = {c["id"]: c for c in report["checks"]}
    rows = checks["containers.summary"]["results"][0]["evidence"]["table"]["rows"]
    per_form = Counter(r["form"].split(":")[0] for r in rows)
    assert per_form["gpus-device-index"] == per_form["gpus-device-uuid"] == per_form["mig"] == 2, per_form
    combined = [r["evidence"] for r in checks["containers.gpus-device"]["results"] if r["evidence"].get("asked_indices") == list(range(8))]
    assert len(combined) == 2 and all(e["seen_indices"] == list(range(8)) for e in combined)
    notes = " ".join(report["verdict"]["notes"])
    assert "not one per GPU" in notes and "--gpus device=I: GPU 0 alone, and GPUs 0–7 in one request" in notes
