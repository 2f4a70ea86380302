"""Replays of the bundle recorded on the real H100 GPU machine (tests/fixtures/real-h100-host/bundle.json):
Docker 20.10 running, no NVIDIA Container Toolkit, probe image probe:glibc, every request form."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import run_cli

BUNDLE = Path(__file__).parent / "fixtures/real-h100-host/bundle.json"


def _report():
    proc = run_cli(["check", "--replay", str(BUNDLE), "--format", "json"])
    assert proc.returncode == 1, proc.stderr
    return json.loads(proc.stdout)


def test_toolkit_missing_is_the_root_cause_and_the_gpu_is_proven_healthy():
    report = _report()
    checks = {c["id"]: c for c in report["checks"]}
    assert report["verdict"]["root_cause"] == "toolkit.installed"
    assert report["verdict"]["layer"] == "toolkit"
    assert "sudo nvidia-ctk runtime configure --runtime=docker" in report["verdict"]["fix"]["commands"]
    for cid, c in checks.items():
        if cid.split(".")[0] in ("pci", "kernel", "devices", "nvml"):
            assert c["status"] in ("pass", "skip"), (cid, c["results"])
    # Only one red line: the root cause. Everything that depends on the toolkit waits for it.
    assert [cid for cid, c in checks.items() if c["status"] == "fail"] == ["toolkit.installed"]
    assert checks["containers.gpus-all"]["results"][0]["blocked_by"] == "toolkit.installed"


def test_baseline_probe_on_the_real_host_saw_no_gpu():
    checks = {c["id"]: c for c in _report()["checks"]}
    base = checks["containers.baseline"]["results"][0]
    assert base["status"] == "pass" and base["evidence"]["seen"] == "no GPU"
    assert checks["containers.image"]["status"] == "pass"


def test_text_report_of_the_real_host_names_the_fix():
    proc = run_cli(["check", "--replay", str(BUNDLE), "--no-color"])
    assert proc.returncode == 1
    assert "Not ready: NVIDIA Container Toolkit" in proc.stdout
    assert "$ sudo apt-get install -y nvidia-container-toolkit" in proc.stdout
    # Passing layers are one line each; -v shows every check with its findings.
    assert "NVML (driver userspace): 5 passed" in proc.stdout
    verbose = run_cli(["check", "--replay", str(BUNDLE), "--no-color", "-v"])
    assert "GPU 0: NVIDIA H100 80GB HBM3" in verbose.stdout
