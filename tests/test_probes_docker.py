"""Probe containers against a real Docker engine with no NVIDIA toolkit (the CI machine's kind).

A private dockerd (tests/support/dockerd.py) runs real containers from a `docker import`ed busybox
image. What a daemon without the toolkit answers is the real thing here, not a simulation; the
success paths with GPUs are tested on the simulated host (tests/test_scenarios*.py) and on the real
GPU machine (`-m gpu`).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from gpudoctor.facts.host import HostCallError
from gpudoctor.probes import runner
from gpudoctor.probes.compare import FAILS, WORKS, judge
from gpudoctor.gpu_requests.request import HostGpu
from gpudoctor.probes.forms import FormContext, form
from tests.support.cli import run_cli

pytestmark = pytest.mark.docker

GPUS = (HostGpu(0, "GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821", 0),)


@pytest.fixture(scope="module")
def daemon(dockerd_factory):
    d = dockerd_factory.shared({}, busybox=True)
    return d


@pytest.fixture()
def docker_host(daemon, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", daemon.url)
    yield daemon
    leftovers = daemon.containers()
    daemon.remove_containers()
    assert leftovers == [], "a probe container was left behind"


def _spec(form_id, gpus=GPUS):
    return form(form_id).expand(FormContext(gpus, "probe:busybox", False, False))[0]


def test_baseline_probe_runs_and_sees_no_gpu(docker_host):
    spec = _spec("baseline")
    out = runner.run_probe(spec.key, spec.form_id, "probe:busybox", spec.create_args(), timeout_s=30)
    assert out["ok"], out
    assert out["output"].startswith("@@gpudoctor-probe 1")
    j = judge(spec, out, GPUS)
    assert j.verdict == WORKS and j.seen == "no GPU"


def test_gpus_all_without_toolkit_fails_at_start_and_leaves_nothing(docker_host, request):
    spec = _spec("gpus-all")
    out = runner.run_probe(spec.key, spec.form_id, "probe:busybox", spec.create_args(), timeout_s=30)
    assert not out["ok"] and out["phase"] == "start"
    assert docker_host.engine.no_gpu_driver_error in out["error"]
    # the container was created, start failed: it must still be gone (checked by the fixture too)
    assert runner._LIVE == set()
    j = judge(spec, out, GPUS)
    assert j.verdict == FAILS and j.cause.layer_check == "toolkit.installed"


def test_unknown_runtime_fails_at_create(docker_host):
    spec = _spec("sdk-runtime-nvidia")
    out = runner.run_probe(spec.key, spec.form_id, "probe:busybox", spec.create_args(), timeout_s=30)
    assert not out["ok"] and out["phase"] == "create"
    assert docker_host.engine.unknown_runtime_error("nvidia") in out["error"]
    assert judge(spec, out, GPUS).cause.id == "runtime-not-registered"


def test_probe_container_is_hardened(docker_host, monkeypatch):
    """Inspect a probe while it runs: no network, no capabilities, limits, not privileged."""
    seen = {}
    real_start = None
    api = runner._api(30)

    def spy_start(cid, *a, **kw):
        seen.update(api.inspect_container(cid))
        return real_start(cid, *a, **kw)

    real_start = api.start
    monkeypatch.setattr(api, "start", spy_start)
    spec = _spec("baseline")
    assert runner.run_probe(spec.key, spec.form_id, "probe:busybox", spec.create_args(), timeout_s=30)["ok"]
    hc = seen["HostConfig"]
    assert hc["NetworkMode"] == "none" and hc["CapDrop"] == ["ALL"] and hc["Privileged"] is False
    assert "no-new-privileges" in hc["SecurityOpt"] and hc["Memory"] > 0 and hc["PidsLimit"] > 0
    assert seen["Config"]["Labels"][runner.LABEL] == "1"


def test_sweep_removes_leftovers_of_a_dead_run(docker_host):
    dead_pid = 2**22 + 12345  # above pid_max's usual ceiling: no such process
    owner = f"{os.uname().nodename}:{dead_pid}"
    docker_host.docker("create", "--label", f"{runner.LABEL}=1", "--label", f"{runner.OWNER_LABEL}={owner}",
                       "probe:busybox", "true", check=True)
    alive = f"{os.uname().nodename}:{os.getpid()}"
    docker_host.docker("create", "--name", "gpudoctor-test-alive", "--label", f"{runner.LABEL}=1",
                       "--label", f"{runner.OWNER_LABEL}={alive}", "probe:busybox", "true", check=True)
    removed = runner.sweep()["removed"]
    assert len(removed) == 1
    remaining = docker_host.docker("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split()
    assert remaining == ["gpudoctor-test-alive"]
    docker_host.docker("rm", "-f", "gpudoctor-test-alive", check=True)


@pytest.fixture(scope="module")
def hanging_image(daemon):
    """An image whose nvidia-smi hangs (as it does on a GPU that fell off the bus)."""
    from tests.support.dockerd import find_busybox

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(find_busybox(), arcname="bin/busybox")
        for applet in ("sh", "sleep", "head", "grep", "env", "sed", "ls"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        script = b"#!/bin/sh\nsleep 60\n"
        info = tarfile.TarInfo("usr/bin/nvidia-smi")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    daemon.docker("import", "-", "probe:hangs", input=buf.getvalue(), check=True)
    return "probe:hangs"


def test_hanging_probe_times_out_and_is_removed(docker_host, hanging_image):
    spec = _spec("baseline")
    started = time.monotonic()
    out = runner.run_probe(spec.key, spec.form_id, hanging_image, spec.create_args(), timeout_s=2)
    assert out["timed_out"] and not out["ok"]
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_check_removes_its_probes(daemon, hanging_image, sig):
    """Ctrl-C (or a CI timeout's SIGTERM) while a probe hangs: gpudoctor exits and removes it."""
    env = {**os.environ, "DOCKER_HOST": daemon.url}
    proc = subprocess.Popen([sys.executable, "-m", "gpudoctor", "check", "--image", hanging_image, "--only",
                             "containers"], env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not daemon.containers(all=False):
        time.sleep(0.2)
    assert daemon.containers(all=False), "the probe never started"
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert daemon.containers() == []


def test_dead_daemon_is_a_host_call_error(dockerd_factory, monkeypatch):
    d = dockerd_factory.private({})
    d.import_busybox()
    monkeypatch.setenv("DOCKER_HOST", d.url)
    d.stop()
    spec = _spec("baseline")
    with pytest.raises(HostCallError):
        runner.run_probe(spec.key, spec.form_id, "probe:busybox", spec.create_args(), timeout_s=5)
    d.close()


def test_check_runs_the_baseline_probe_end_to_end(daemon):
    """`gpudoctor check` against a real daemon on a machine without GPUs: the baseline probe runs and
    passes, GPU forms are not applicable (NVML lists no GPU), and no container is left."""
    proc = run_cli(["check", "--format", "json", "--image", "probe:busybox", "--all-forms"],
                   env={"DOCKER_HOST": daemon.url})
    assert proc.returncode == 1, proc.stderr
    checks = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}
    base = checks["containers.baseline"]
    assert base["status"] == "pass", base
    assert base["results"][0]["evidence"]["seen"] == "no GPU"
    assert checks["containers.image"]["status"] == "pass"
    assert daemon.containers() == []


def test_missing_image_is_a_clear_finding_without_pull(daemon):
    proc = run_cli(["check", "--format", "json", "--image", "example.invalid/none:1", "--only", "containers"],
                   env={"DOCKER_HOST": daemon.url})
    checks = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}
    image = checks["containers.image"]
    assert image["status"] == "warn"
    assert "not available" in image["results"][0]["summary"]
    assert "docker pull example.invalid/none:1" in image["results"][0]["fix"]["commands"]


def test_without_image_a_local_cuda_base_image_is_used(daemon):
    """Offline hosts: with no --image and no --pull, an nvidia/cuda base image already present is the probe."""
    tag = "nvidia/cuda:12.0.0-base-ubuntu22.04"  # a retagged busybox: only its name matters here
    daemon.docker("tag", "probe:busybox", tag, check=True)
    try:
        proc = run_cli(["check", "--format", "json", "--only", "containers"], env={"DOCKER_HOST": daemon.url})
        checks = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}
        assert checks["containers.image"]["results"][0]["subject"] == tag
        assert checks["containers.baseline"]["status"] == "pass"
    finally:
        daemon.docker("rmi", tag, check=True)
