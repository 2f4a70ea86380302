"""`--format prometheus` read back by the Prometheus project's own text-format parser (prometheus_client), on
the real recorded bundles: every sample must say what the JSON report of the same replay says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import run_cli

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLES = [
    FIXTURES / "real-h100-host" / "bundle.json",
    FIXTURES / "real-h200-docker29-toolkit" / "cdi-runtime" / "bundle.json",  # ready, with warnings
    FIXTURES / "real-h200-docker29-toolkit" / "cdi-no-spec" / "bundle.json",  # broken at cdi, forms fail
    FIXTURES / "real-h200-docker20-toolkit" / "installed-unconfigured" / "bundle.json",
]


def _replay(bundle: Path, fmt: str) -> tuple[int, str]:
    proc = run_cli(["check", "--replay", str(bundle), "--format", fmt])
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, proc.stdout


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, family.name
        assert family.type == "gauge", family.name
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda b: b.parent.name)
def test_metrics_say_what_the_report_says(bundle: Path) -> None:
    code, text = _replay(bundle, "prometheus")
    code_json, raw = _replay(bundle, "json")
    report: dict[str, Any] = json.loads(raw)
    assert code == code_json
    m = _samples(text)
    verdict = report["verdict"]

    assert m["gpudoctor_build_info"] == [({"version": report["tool_version"], "schema": report["schema"]}, 1.0)]
    assert m["gpudoctor_ready"] == [({}, 1.0 if verdict["ready"] else 0.0)]
    assert (code == 0) == verdict["ready"]
    if verdict["root_cause"]:
        assert m["gpudoctor_root_cause_info"] == [({"check": verdict["root_cause"], "layer": verdict["layer"]}, 1.0)]
    else:
        assert "gpudoctor_root_cause_info" not in m
    assert {lab["status"]: v for lab, v in m["gpudoctor_results"]} == {k: float(v) for k, v in verdict["counts"].items()}

    # The state set: exactly one status per check, the one the JSON report gives, with its layer.
    ones = {(lab["check"], lab["layer"]): lab["status"] for lab, v in m["gpudoctor_check_status"] if v == 1}
    assert ones == {(c["id"], c["layer"]): c["status"] for c in report["checks"]}
    assert len(m["gpudoctor_check_status"]) == 5 * len(report["checks"])
    durations = {lab["check"] for lab, _ in m["gpudoctor_check_duration_seconds"]}
    assert durations == {c["id"] for c in report["checks"]}

    forms = {(lab["form"], lab["request"]): lab["verdict"] for lab, v in m.get("gpudoctor_request_form_verdict", []) if v == 1}
    expected = {
        (r["evidence"]["form"], r["evidence"]["request"]): r["evidence"]["verdict"]
        for c in report["checks"]
        for r in c["results"]
        if "verdict" in r["evidence"] and "form" in r["evidence"]
    }
    assert forms == expected
    (duration,) = m["gpudoctor_run_duration_seconds"]
    assert duration[1] > 0


def test_form_verdicts_of_a_broken_host() -> None:
    """cdi-no-spec: every GPU form fails (no spec to resolve), the baseline works and the over-count is refused."""
    _, text = _replay(BUNDLES[2], "prometheus")
    forms = {lab["form"]: lab["verdict"] for lab, _ in _samples(text)["gpudoctor_request_form_verdict"]}
    assert forms["baseline"] == "works"
    assert forms["gpus-all"] == "fails" and forms["cdi-all"] == "fails"
    # A request with quotes survives the label escaping.
    requests = [lab["request"] for lab, _ in _samples(text)["gpudoctor_request_form_verdict"]]
    assert "--gpus 'all,\"capabilities=utility\"'" in requests


def test_output_file_for_the_textfile_collector(tmp_path: Path) -> None:
    out = tmp_path / "gpudoctor.prom"
    proc = run_cli(["check", "--replay", str(BUNDLES[0]), "--format", "prometheus", "--output", str(out)])
    assert proc.returncode == 1 and proc.stdout == ""
    assert _samples(out.read_text())["gpudoctor_ready"] == [({}, 0.0)]


def test_live_run_has_its_timestamp_and_duration() -> None:
    """A live run (no probes, no daemon) carries when its facts were read and how long it took."""
    import time

    proc = run_cli(["check", "--no-probes", "--format", "prometheus"], env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert proc.returncode in (0, 1), proc.stderr
    m = _samples(proc.stdout)
    ((_, stamp),) = m["gpudoctor_report_created_timestamp_seconds"]
    assert abs(stamp - time.time()) < 600
    ((_, duration),) = m["gpudoctor_run_duration_seconds"]
    assert 0 < duration < 120
    assert m["gpudoctor_ready"] == [({}, 0.0)]  # no daemon: not ready
