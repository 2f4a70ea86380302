"""Live run on a real NVIDIA GPU machine with a real Docker engine (`pytest -m gpu`).

Skipped elsewhere. On the project's GPU machine (H100, driver 580, Docker from Debian, no NVIDIA
Container Toolkit) gpudoctor must prove the host GPU healthy and name the missing toolkit as the
root cause; with a toolkit installed it must find a working request form.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.support.cli import run_cli

pytestmark = pytest.mark.gpu

HOST_LAYERS = ("pci.", "kernel.", "devices.", "nvml.")


def _gpu_present() -> bool:
    return os.path.exists("/proc/driver/nvidia/version")


def _docker_up() -> bool:
    docker = shutil.which("docker")
    return bool(docker) and subprocess.run([docker, "version"], capture_output=True).returncode == 0


needs_gpu_and_docker = pytest.mark.skipif(
    not (_gpu_present() and _docker_up()), reason="needs an NVIDIA GPU and a running Docker engine"
)


@needs_gpu_and_docker
def test_live_check_names_the_root_cause_and_proves_the_gpu():
    image = os.environ.get("GPUDOCTOR_TEST_IMAGE", "probe:glibc")
    proc = run_cli(["check", "--format", "json", "--image", image, "--all-forms"], timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    checks = {c["id"]: c for c in report["checks"]}
    host_bad = {i: c["status"] for i, c in checks.items() if i.startswith(HOST_LAYERS) and c["status"] in ("fail", "error")}
    assert not host_bad, host_bad
    assert checks["containers.baseline"]["status"] == "pass"
    toolkit_missing = checks["toolkit.installed"]["status"] == "fail"
    if toolkit_missing:
        assert report["verdict"]["root_cause"] == "toolkit.installed"
        assert "NVIDIA Container Toolkit" in report["verdict"]["headline"]
        assert checks["containers.gpus-all"]["results"][0]["blocked_by"] == "toolkit.installed"
    else:
        assert checks["containers.summary"]["status"] == "pass", checks["containers.summary"]
    leftovers = subprocess.run(["docker", "ps", "-aq", "--filter", "label=io.gpudoctor.probe"],
                               capture_output=True, text=True).stdout.split()
    assert leftovers == []
