"""The live path on a machine without an NVIDIA GPU (this CPU-only machine and CI) says so honestly."""

from __future__ import annotations

import json
import os

import pytest

from gpudoctor.facts.host import LiveHost
from tests.support.cli import run_cli
from tests.support.hosttree import outcome, run_host_checks_with_facts


def _has_nvidia_pci() -> bool:
    base = "/sys/bus/pci/devices"
    try:
        for d in os.listdir(base):
            with open(os.path.join(base, d, "vendor")) as f:
                if f.read().strip().lower() == "0x10de":
                    return True
    except OSError:
        return False
    return False


no_gpu_here = pytest.mark.skipif(_has_nvidia_pci(), reason="this machine has an NVIDIA GPU")


@pytest.mark.gpu
@pytest.mark.skipif(not _has_nvidia_pci(), reason="needs an NVIDIA GPU")
def test_live_gpu_host_layers_are_healthy():
    """On the real GPU machine the host layers pass (warnings allowed), and NVML agrees with PCI."""
    report, facts = run_host_checks_with_facts(LiveHost("/"))
    bad = {o.check.id: [r.summary for r in o.results] for o in report.outcomes if o.status.is_problem}
    assert not bad, bad
    assert outcome(report, "nvml.gpu-count.agree").status.value == "pass"
    assert len(facts.values["nvml"].gpus) == len(facts.values["pci"].gpus) >= 1


@no_gpu_here
def test_live_host_reports_no_nvidia_gpu():
    report, facts = run_host_checks_with_facts(LiveHost("/"))
    o = outcome(report, "pci.gpu.present")
    r = o.results[0]
    assert r.status.value == "fail" and r.summary == "no NVIDIA GPU on the PCI bus"
    assert "instance type" in r.fix.summary and "lspci -nnk -d 10de:" in r.fix.commands
    assert report.verdict.root_cause == "pci.gpu.present" and not report.verdict.ready
    # One red line: everything above PCI waits for it, nothing is faked.
    for other in report.outcomes:
        if other.check.id not in ("platform.wsl", "pci.gpu.present"):
            assert other.blocked_by == "pci.gpu.present", other.check.id
    assert facts.values["pci"].gpus == ()


@no_gpu_here
def test_live_nvml_library_missing_is_mapped():
    """The NVML row is blocked by PCI in the report, but its own judgement of the live NVML answer
    (no libnvidia-ml.so.1 on this machine) is the mapped cause, not a traceback."""
    from gpudoctor.checks.nvml import init

    _, facts = run_host_checks_with_facts(LiveHost("/"))
    nvml = facts.values["nvml"]
    if nvml.init_error is None or nvml.init_error.name != "library-not-found":
        pytest.skip(f"NVML here answers {nvml.init_error}, not library-not-found")
    r = init.fn(platform=facts.values["platform"], kernel=facts.values["kernel"], nvml=nvml)
    assert r.status.value == "fail" and r.evidence["failure_mode"] == "host-nvml-missing"
    assert "libnvidia-ml.so.1 not found" in r.summary
    assert "sudo ldconfig" in r.fix.commands


@no_gpu_here
def test_live_cli_json_names_the_pci_layer():
    proc = run_cli(["check", "--only", "platform", "--only", "pci", "--only", "kernel", "--only", "devices",
                    "--only", "nvml", "--format", "json"])
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"]["root_cause"] == "pci.gpu.present" and data["verdict"]["layer"] == "pci"
    assert data["verdict"]["headline"] == "Not ready: PCI hardware — no NVIDIA GPU on the PCI bus"
