"""The scenario library (tests/sim/scenarios.py) through the real `gpudoctor check`.

Each scenario builds a simulated host, starts a private dockerd wired to the stand-in toolkit, and
runs `gpudoctor check --root <tree> --format json` as a subprocess (DOCKER_HOST = the private
daemon, PYTHONPATH = the fake NVML): probe containers really start on a real Docker engine. The
verdict's root cause and fix must be the ones the scenario names. Scenarios with identical beds
share one daemon; one bed is alive at a time (they run in bed order).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tests.sim.bed import SimBed, bed_or_skip
from tests.sim.scenarios import SCENARIOS, Scenario

# Run scenarios grouped by bed, in first-appearance order, so each bed is built once.
_ORDER = {key: i for i, key in enumerate(dict.fromkeys(s.bed_key for s in SCENARIOS))}
ORDERED = sorted(SCENARIOS, key=lambda s: _ORDER[s.bed_key])


class _Beds:
    """Builds the bed a scenario needs, reusing the current one when the key matches."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.factory = tmp_path_factory
        self.key: str | None = None
        self.bed: SimBed | None = None

    def get(self, scenario: Scenario) -> SimBed:
        if self.key != scenario.bed_key:
            self.close()
            bed = SimBed.create(
                self.factory.mktemp(scenario.id), scenario.host, scenario.toolkit, scenario.daemon, host_changes=scenario.host_changes
            )
            self.bed, self.key = bed, scenario.bed_key
            if scenario.after_start is not None:
                scenario.after_start(bed)
        assert self.bed is not None
        if scenario.image_env:
            self.bed.import_image(scenario.image, changes=[f"ENV {e}" for e in scenario.image_env])
        return self.bed

    def close(self) -> None:
        if self.bed is not None:
            self.bed.close()
        self.bed, self.key = None, None


@pytest.fixture(scope="module")
def beds(tmp_path_factory):
    bed_or_skip()
    b = _Beds(tmp_path_factory)
    try:
        yield b
    finally:
        b.close()


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
def test_scenario(beds, scenario: Scenario):
    bed = beds.get(scenario)
    report = bed.check_json(*scenario.gpudoctor_args())
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
    assert bed.dockerd.containers() == []


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
