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

from gpudoctor.facts.docker_client import remember_api_version, reset_client_cache, resolve_endpoint
from gpudoctor.facts.host import HostCallError
from gpudoctor.probes import runner
from gpudoctor.probes.api import SdkApi, SocketApi, probe_api
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


@pytest.fixture(params=["socket", "sdk"])
def docker_host(daemon, monkeypatch, request):
    """The daemon, asked by the probes over its socket (the API version known, as after the docker fact) or
    through the SDK (probes/api.py)."""
    monkeypatch.setenv("DOCKER_HOST", daemon.url)
    reset_client_cache()
    if request.param == "socket":
        remember_api_version(resolve_endpoint().host, runner._api(10).version()["ApiVersion"])
    assert probe_api(10).kind == request.param
    yield daemon
    reset_client_cache()
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
    run = runner.ProbeRun()
    out = runner.run_probe(spec.key, spec.form_id, "probe:busybox", spec.create_args(), timeout_s=30, run=run)
    assert not out["ok"] and out["phase"] == "start"
    assert docker_host.engine.no_gpu_driver_error in out["error"]
    # the container was created, start failed: it must still be gone (checked by the fixture too)
    assert run.live() == []
    j = judge(spec, out, GPUS)
    assert j.verdict == FAILS and j.cause.layer_check == "toolkit.installed"


def test_unknown_runtime_fails_at_create(docker_host):
    spec = _spec("sdk-runtime-nvidia")
    out = runner.run_probe(spec.key, spec.form_id, "probe:busybox", spec.create_args(), timeout_s=30)
    assert not out["ok"] and out["phase"] == "create"
    assert docker_host.engine.unknown_runtime_error("nvidia") in out["error"]
    assert judge(spec, out, GPUS).cause.id == "runtime-not-registered"


def _inspect_at_start(monkeypatch, spec, hardening=None):
    """Run one probe, inspecting its container just before it starts."""
    seen = {}
    for cls in (SocketApi, SdkApi):
        def spy_start(self, cid, _real=cls.start):
            seen.update(runner._api(runner.CALL_TIMEOUT_S).inspect_container(cid))
            return _real(self, cid)

        monkeypatch.setattr(cls, "start", spy_start)
    out = runner.run_probe(spec.key, spec.form_id, "probe:busybox", spec.create_args(), timeout_s=30,
                           hardening=hardening)
    return out, seen


def test_probe_container_is_hardened(docker_host, monkeypatch):
    """Inspect a probe while it runs: no network, no capabilities, memory/pids/CPU/log limits, not
    privileged; a request no NVIDIA component touches also gets a read-only rootfs and a non-root user —
    and the probe script still runs there. The outcome says what was applied."""
    spec = _spec("baseline")
    out, seen = _inspect_at_start(monkeypatch, spec, runner.hardening_for(spec.create_args(), "runc", True))
    assert out["ok"] and out["output"].startswith("@@gpudoctor-probe 1"), out
    assert judge(spec, out, GPUS).verdict == WORKS
    hc = seen["HostConfig"]
    assert hc["NetworkMode"] == "none" and hc["CapDrop"] == ["ALL"] and hc["Privileged"] is False
    assert "no-new-privileges" in hc["SecurityOpt"] and hc["Memory"] > 0 and hc["PidsLimit"] > 0
    assert hc["NanoCpus"] == runner.PROBE_NANO_CPUS
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": runner.PROBE_LOG_MAX_SIZE, "max-file": "1"}}
    assert hc["ReadonlyRootfs"] is True and seen["Config"]["User"] == runner.PROBE_USER
    assert seen["Config"]["Labels"][runner.LABEL] == "1"
    applied = out["hardening"]
    assert applied["read_only_rootfs"] is True and applied["user"] == runner.PROBE_USER
    assert applied["nano_cpus"] == runner.PROBE_NANO_CPUS and applied["network"] == "none"


def test_without_a_decision_a_probe_gets_the_limits_and_keeps_its_user(docker_host, monkeypatch):
    """run_probe called without a hardening decision (that knows neither the daemon's default runtime nor
    the host's device nodes): the limits, but a writable rootfs and the image's own user."""
    out, seen = _inspect_at_start(monkeypatch, _spec("baseline"))
    assert out["ok"], out
    assert seen["Config"]["User"] == "" and seen["HostConfig"]["ReadonlyRootfs"] is False
    assert seen["HostConfig"]["NanoCpus"] == runner.PROBE_NANO_CPUS and seen["HostConfig"]["PidsLimit"] > 0


def test_hardening_a_gpu_request_keeps_a_writable_rootfs(docker_host, monkeypatch):
    """A GPU request goes through the NVIDIA hook or runtime, which writes into the rootfs: no read-only
    rootfs there; and with device nodes not open to every user, no non-root user either."""
    args = _spec("gpus-all").create_args()
    hardening = runner.hardening_for(args, "runc", device_nodes_open=False)
    assert hardening["read_only_rootfs"] is False and "ldconfig" in hardening["read_only_rootfs_why"]
    assert hardening["user"] is None and "0666" in hardening["user_why"]
    spec = _spec("baseline")  # run the decision on a probe that can start here (no toolkit on this daemon)
    out, seen = _inspect_at_start(monkeypatch, spec, hardening)
    assert out["ok"], out
    assert seen["HostConfig"]["ReadonlyRootfs"] is False and seen["Config"]["User"] == ""
    assert out["hardening"]["read_only_rootfs"] is False and out["hardening"]["user"] is None


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


def test_an_absent_image_asked_for_is_an_error_and_exit_1(daemon):
    """`--image` names an image the daemon does not have (and no --pull): no probe can run, so the
    containers layer cannot be judged — an error naming the image and how to get it, never exit 0."""
    proc = run_cli(["check", "--format", "json", "--image", "example.invalid/none:1", "--only", "containers"],
                   env={"DOCKER_HOST": daemon.url})
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    checks = {c["id"]: c for c in report["checks"]}
    image = checks["containers.image"]["results"][0]
    assert checks["containers.image"]["status"] == "error"
    assert "example.invalid/none:1" in image["summary"] and "cannot be judged" in image["summary"]
    assert "docker pull example.invalid/none:1" in image["fix"]["commands"]
    assert report["verdict"]["root_cause"] == "containers.image"


@pytest.mark.parametrize("bad", ["UPPER:case", "two words", "a:b:c"])
def test_an_invalid_image_reference_is_an_error_and_not_a_daemon_fault(daemon, bad):
    """The daemon refuses the name itself ("invalid reference format"): the image is the problem, not
    the daemon, and the fix says what a reference looks like."""
    proc = run_cli(["check", "--format", "json", "--image", bad, "--only", "containers", "--only", "docker.stayed-up"],
                   env={"DOCKER_HOST": daemon.url})
    assert proc.returncode == 1, proc.stderr
    checks = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}
    image = checks["containers.image"]["results"][0]
    assert checks["containers.image"]["status"] == "error"
    assert bad in image["summary"] and "invalid reference format" in image["summary"]
    assert "lowercase repository" in image["fix"]["summary"]
    assert checks["docker.stayed-up"]["status"] == "skip"  # no daemon fault


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
