"""The workload probe (`gpudoctor check --image IMG --command CMD`) against a real private dockerd.

The simulated 2-GPU host's toolkit injects its devices and its nvidia-smi into the user's image (a busybox imported
as `probe:busybox`); the user's command runs under the form that works best, and its exit code is the verdict.
"""

from __future__ import annotations

import pytest

from tests.sim.bed import healthy_args as healthy
from tests.sim.bed import healthy_exit
from tests.support.cli import run_cli

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def bed(tmp_path_factory, docker_engine):
    from tests.sim.bed import NVIDIA_RUNTIME, SimBed, bed_or_skip
    from tests.sim.host import SimHost
    from tests.sim.toolkit import ToolkitSpec

    bed_or_skip()
    with SimBed.create(tmp_path_factory.mktemp("workbed"), SimHost.standard(2), ToolkitSpec(mode="legacy", cdi="index+uuid"),
                       NVIDIA_RUNTIME, engine=docker_engine) as b:
        yield b


def _workload(report):
    check = next(c for c in report["checks"] if c["id"] == "containers.workload")
    assert len(check["results"]) == 1
    return check["status"], check["results"][0]


def test_a_failing_command_fails_with_its_exit_code_and_last_lines(bed):
    cmd = "sh -c 'echo loading; echo CUDA error: no kernel image is available >&2; exit 3'"
    report = bed.check_json("--image", bed.image, "--command", cmd, *healthy(bed))
    status, r = _workload(report)
    assert status == "fail"
    assert "exited 3" in r["summary"] and "--gpus all" in r["summary"], r
    assert r["evidence"]["exit_code"] == 3 and r["evidence"]["form"] == "gpus-all"
    # stdout and stderr both, in whatever order the daemon's log copies them
    assert sorted(r["details"]) == ["CUDA error: no kernel image is available", "loading"]
    assert r["fix"]["commands"] == [f"docker run --rm --gpus all {bed.image} sh -c "
                                    "'echo loading; echo CUDA error: no kernel image is available >&2; exit 3'"]
    # The only broken thing is the workload: it is the verdict's root cause, and the run is not ready.
    assert report["verdict"]["root_cause"] == "containers.workload" and report["verdict"]["ready"] is False
    assert bed.dockerd.containers() == []


def test_a_command_that_sees_the_gpus_passes(bed):
    proc = bed.gpudoctor("check", "--strict", "--format", "json", "--image", bed.image, "--command", "nvidia-smi -L",
                         *healthy(bed))
    import json

    report = json.loads(proc.stdout)
    status, r = _workload(report)
    assert status == "pass" and proc.returncode == healthy_exit(bed), r
    assert r["evidence"]["exit_code"] == 0
    gpus = [line for line in r["evidence"]["output_tail"] if line.startswith("GPU ")]
    assert len(gpus) == 2 and all("UUID: GPU-" in g for g in gpus)
    assert "works best here" in r["evidence"]["why"]


def test_the_output_kept_is_its_end(bed):
    report = bed.check_json("--image", bed.image, "--command", "sh -c 'for i in $(seq 1 500); do echo line $i; done; exit 1'")
    _status, r = _workload(report)
    assert r["details"][-1] == "line 500" and "line 1" not in r["details"]
    assert 0 < len(r["details"]) <= 20


def test_without_gpu_forms_in_the_matrix_it_runs_under_gpus_all(bed):
    report = bed.check_json("--image", bed.image, "--forms", "baseline", "--command", "true")
    status, r = _workload(report)
    assert status == "pass" and r["evidence"]["request"] == "--gpus all"
    assert "no GPU request form was probed" in r["evidence"]["why"]


def test_a_command_whose_program_is_missing_fails_at_start(bed):
    report = bed.check_json("--image", bed.image, "--command", "python3 -c 'import torch'")
    status, r = _workload(report)
    assert status == "fail" and "could not start" in r["summary"] and "python3" in r["summary"], r
    assert bed.dockerd.containers() == []


def test_without_a_command_the_check_is_skipped(bed):
    status, r = _workload(bed.check_json("--image", bed.image))
    assert status == "skip" and "--command" in r["summary"]


@pytest.mark.parametrize("args, words", [
    (["--command", "true"], "--command needs --image"),
    (["--image", "x", "--command", "true", "--no-probes"], "--no-probes"),
    (["--image", "x", "--command", "sh -c 'unterminated"], "--command"),
    (["--image", "x", "--command", "  "], "--command is empty"),
])
def test_usage_errors(args, words):
    proc = run_cli(["check", *args])
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
