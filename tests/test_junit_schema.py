"""Issue 11 #7: the CI output — JUnit as CI reporters read it, and a verdict line on stderr whatever the format."""

from __future__ import annotations

import json
import os
import socket

import pytest

from tests.support.cli import run_cli

SCHEMA = os.path.join(os.path.dirname(__file__), "fixtures", "junit", "ant-junit.xsd")
H100 = os.path.join(os.path.dirname(__file__), "fixtures", "real-h100-host", "bundle.json")


def _validate(path: str):
    etree = pytest.importorskip("lxml.etree")
    schema = etree.XMLSchema(etree.parse(SCHEMA))
    doc = etree.parse(path)
    assert schema.validate(doc), schema.error_log
    return doc


def test_junit_validates_and_names_host_properties_totals_and_times(tmp_path):
    out = tmp_path / "f.xml"
    proc = run_cli(["check", "--strict", "--format", "junit", "--output", str(out), "--no-probes"])
    assert proc.returncode in (0, 1), proc.stderr
    # The README's CI gate prints the answer to the terminal even though the report went to a file.
    assert proc.stderr.startswith("gpudoctor: ") and f"(exit {proc.returncode}; report in {out})" in proc.stderr
    doc = _validate(str(out))
    suites = doc.getroot().findall("testsuite")
    assert suites
    host = socket.gethostname()
    for suite in suites:
        assert suite.get("hostname") == host
        props = {p.get("name"): p.get("value") for p in suite.find("properties")}
        assert props["gpudoctor.version"] and props["gpudoctor.verdict"]
        assert {"gpudoctor.root_cause", "docker.engine", "nvidia.driver", "run.tests", "run.fail"} <= set(props)
    report = json.loads(run_cli(["check", "--format", "json", "--no-probes"]).stdout)
    assert sum(int(s.get("tests")) for s in suites) == len(report["checks"])
    assert any(float(c.get("time")) > 0 for c in doc.getroot().iter("testcase")), "every time is 0.000"


def test_replayed_h100_junit_carries_driver_and_root_cause(tmp_path):
    out = tmp_path / "h100.xml"
    proc = run_cli(["check", "--replay", H100, "--format", "junit", "--output", str(out)])
    assert proc.returncode == 1, proc.stderr
    doc = _validate(str(out))
    props = {p.get("name"): p.get("value") for p in doc.getroot().find("testsuite/properties")}
    assert props["gpudoctor.root_cause"] == "toolkit.installed"
    assert props["nvidia.driver"] and props["gpudoctor.exit_code"] == "1"


def test_json_on_stdout_still_gives_a_verdict_line_on_stderr():
    proc = run_cli(["check", "--format", "json", "--no-probes"])
    json.loads(proc.stdout)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("gpudoctor: ")
