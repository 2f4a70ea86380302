"""Probe containers never outlive their run: interrupted, frozen, killed or hung (issue 14).

The REAL console script runs against a simulated 8-GPU host and a real private dockerd (tests/sim/bed.py).
The probe image's /bin/sh sleeps for ever (tests/support/faults.py), so when the signal comes some probes
are live and others wait for a slot in the pool. Containers are counted with `docker ps -a --filter
label=io.gpudoctor.probe` the moment the process has exited, not after a sweep.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.sim.bed import NVIDIA_RUNTIME, SimBed
from tests.sim.fixtures import sim_beds  # noqa: F401  (pytest fixture)
from tests.sim.host import SimHost
from tests.sim.toolkit import ToolkitSpec
from tests.support.faults import (
    console_script,
    end_reapers,
    import_sleeping_image,
    interrupted_run,
    kill_container_processes,
    probe_containers,
)

pytestmark = pytest.mark.docker

# What the CLI promises (gpudoctor/cli.py, README): cleanup takes at most runner.CLEANUP_BUDGET_S (8 s)
# after a signal; a run ends within --timeout, give or take Python's start and exit.
AFTER_SIGNAL_S = 15.0
DEADLINE_SLACK_S = 10.0


@pytest.fixture(scope="module")
def gpudoctor() -> str:
    found = console_script()
    if found is None:
        pytest.skip("the gpudoctor console script is not installed (pip install -e .)")
    return found


@pytest.fixture(scope="module")
def bed(sim_beds):  # noqa: F811
    b = sim_beds.private(SimHost.standard(8), ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME)
    import_sleeping_image(b.docker)
    yield b
    b.close()


def _check_args(bed, *extra: str) -> list[str]:
    return ["--format", "json", "--image", "probe:sleeps", "--all-forms", "--root", str(bed.root), *extra]


@pytest.mark.parametrize(
    "how, code",
    [
        ("SIGINT", 130),
        ("SIGTERM", 143),
        ("SIGHUP", 129),
        ("SIGINT+SIGINT", 130),  # a second Ctrl-C during the cleanup
        ("SIGTERM+SIGINT+SIGTERM", 143),
        ("timeout-INT", 124),  # GNU timeout signals the command, then its whole group: two SIGINTs
        ("timeout-TERM", 124),
    ],
)
def test_an_interrupted_run_leaves_no_container(bed, gpudoctor, how, code):
    result = interrupted_run(gpudoctor, _check_args(bed), bed.env(), bed.docker, how)
    assert result.live_at_signal >= 3
    assert result.left == (), f"{len(result.left)} probe container(s) left after {how}:\n{result.stderr}"
    assert result.returncode == code, result.stderr
    assert result.seconds_after_signal < AFTER_SIGNAL_S
    assert "Traceback" not in result.stderr and "KeyboardInterrupt" not in result.stderr, result.stderr
    assert "interrupted (SIG" in result.stderr
    assert "a background process" not in result.stderr  # the daemon answered: nothing was handed on


def test_a_frozen_daemon_ends_the_run_by_its_deadline_and_nothing_survives_the_thaw(sim_beds, gpudoctor):  # noqa: F811
    """SIGSTOP the daemon while probes run: the run still ends by --timeout, says the daemon stopped
    answering (a Docker-layer finding), and whatever the daemon makes of the requests it queued while
    frozen is removed once it answers again (the run's reaper)."""
    bed = sim_beds.private(SimHost.standard(8), ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME)
    import_sleeping_image(bed.docker)
    timeout = 30
    proc = subprocess.Popen([gpudoctor, "check", *_check_args(bed, "--timeout", str(timeout))], env=bed.env(), cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    started = time.monotonic()
    pid = bed.dockerd.pid
    assert pid is not None
    try:
        while len(probe_containers(bed.docker, running=True)) < 3:
            assert proc.poll() is None and time.monotonic() - started < 120, proc.communicate()
            time.sleep(0.05)
        os.kill(pid, signal.SIGSTOP)
        out, err = proc.communicate(timeout=timeout + 60)
        wall = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert wall < timeout + DEADLINE_SLACK_S, err
    assert proc.returncode == 1, err
    report = json.loads(out)
    checks = {c["id"]: c for c in report["checks"]}
    stayed = checks["docker.stayed-up"]
    assert stayed["status"] == "fail", stayed
    assert "stopped answering during the probes" in stayed["results"][0]["summary"]
    assert report["verdict"]["root_cause"] == "docker.stayed-up"
    assert checks["containers.gpus-all"]["results"][0]["summary"] == "blocked by docker.stayed-up"
    assert "a background process removes them" in err
    # Thawed: the reaper removes every container of the run, including creates the daemon served late.
    _reaped_then_closed(bed)


def test_a_daemon_killed_mid_run_is_a_daemon_finding(sim_beds, gpudoctor):  # noqa: F811
    """SIGKILL the daemon while probes run: not "Docker refused the container with an error gpudoctor
    does not recognise" on every form, but one Docker-layer finding; the containers the dead daemon
    still holds are removed when it is started again."""
    bed = sim_beds.private(SimHost.standard(2), ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME)
    import_sleeping_image(bed.docker)
    proc = subprocess.Popen([gpudoctor, "check", *_check_args(bed)], env=bed.env(), cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    started = time.monotonic()
    try:
        while len(probe_containers(bed.docker, running=True)) < 2:
            assert proc.poll() is None and time.monotonic() - started < 120, proc.communicate()
            time.sleep(0.05)
        before = probe_containers(bed.docker)
        os.kill(bed.dockerd.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    report = json.loads(out)
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["docker.reachable"]["status"] == "pass"
    stayed = checks["docker.stayed-up"]["results"][0]
    assert checks["docker.stayed-up"]["status"] == "fail" and "went away during the probes" in stayed["summary"]
    assert report["verdict"]["root_cause"] == "docker.stayed-up"
    assert report["verdict"]["layer"] == "docker"
    assert "does not recognise" not in out
    for cid in ("containers.baseline", "containers.gpus-all", "containers.summary"):
        assert checks[cid]["results"][0]["summary"] == "blocked by docker.stayed-up", checks[cid]
    assert "a background process removes them" in err
    # The killed daemon kept the probes' containers in its data root; started again, the reaper removes them.
    try:
        _restart(bed)
        before = [*before, *probe_containers(bed.docker)]
        deadline = time.monotonic() + 40
        while probe_containers(bed.docker) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert probe_containers(bed.docker) == []
    finally:
        # Restarting a SIGKILLed daemon here kills its shims; the containers' processes would outlive them.
        kill_container_processes(before)
        end_reapers(bed.dockerd.url)
        bed.close()


def _restart(bed) -> None:
    """Start a SIGKILLed daemon again. Its containerd is reaped first (dockerd.stop); on a loaded machine
    the new containerd sometimes misses dockerd's start timeout, so one more try."""
    from tests.support.dockerd import DockerdError

    for attempt in (1, 2):
        bed.dockerd.stop()
        try:
            bed.dockerd.start()
            return
        except DockerdError:
            if attempt == 2:
                raise


def _hung_runtime_bed(sim_beds, gpus: int):  # noqa: F811
    """A bed whose `nvidia` runtime never returns from `create` (an OCI runtime stuck on a GPU)."""
    bed = sim_beds.private(SimHost.standard(gpus), ToolkitSpec(mode="legacy"),
                           {"runtimes": {"nvidia": {"path": "hung-runtime", "args": []}}}, start=False)
    hung = bed.root / "usr/bin/hung-runtime"
    # No exec: the shell keeps the script's path in its command line, which is how the test finds it to end it.
    hung.write_text("#!/bin/sh\n# a runtime that never answers (issue 14)\nwhile :; do sleep 1; done\n")
    hung.chmod(0o755)
    bed.start()
    return bed, hung


def _kill_processes_running(path: Path) -> None:
    """End the hung runtime processes this test made dockerd start (by pid, found through their command line)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if str(path).encode() in cmdline:
            try:
                os.kill(int(name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_hung_runtime_is_cut_by_the_deadline_and_replays_the_same(sim_beds, gpudoctor, tmp_path):  # noqa: F811
    """`--runtime=nvidia` probes hang at start on 8 GPUs with --all-forms (241 s before issue 14): the run
    ends by --timeout, the hung probes are reported not run with where they hung, the daemon is not
    blamed (it still answers), and a support bundle of that run replays the same report."""
    bed, hung = _hung_runtime_bed(sim_beds, 8)
    timeout = 30
    bundle = tmp_path / "bundle.json"
    try:
        started = time.monotonic()
        recorded = tmp_path / "facts.json"
        rec = subprocess.run([gpudoctor, "facts", "--record", str(bundle), "--output", str(recorded), "--image",
                              bed.image, "--all-forms", "--timeout", str(timeout), "--root", str(bed.root)],
                             env=bed.env(), cwd="/", capture_output=True, text=True, timeout=timeout + 60)
        wall = time.monotonic() - started
        assert rec.returncode == 0, rec.stderr
        assert wall < timeout + DEADLINE_SLACK_S
        live = subprocess.run([gpudoctor, "check", "--format", "json", "--replay", str(bundle)], env=bed.env(),
                              cwd="/", capture_output=True, text=True, timeout=60)
        report = json.loads(live.stdout)
        checks = {c["id"]: c for c in report["checks"]}
        assert checks["docker.stayed-up"]["status"] == "pass"
        cut = f"not finished within the run's deadline ({timeout}s, --timeout): "
        for cid in ("containers.sdk-runtime-nvidia", "containers.runtime-nvidia-env"):
            assert checks[cid]["status"] == "error", checks[cid]
            assert checks[cid]["results"][0]["summary"].startswith(cut)
        # Each unfinished probe says where it was and for how long; the first runtime probe (it starts in the
        # pool's first batch) hung at start long enough to be called hung.
        unfinished = [r["summary"] for c in report["checks"] if c["layer"] == "containers" for r in c["results"]
                      if r["summary"].startswith(cut)]
        assert any(re.search(r"its start had not returned after \d+s: a hung OCI runtime or prestart hook", u)
                   for u in unfinished), unfinished
        assert "does not recognise" not in live.stdout
        assert report["verdict"]["layer"] == "containers"
        # The replay knows which probes the recorded run gave up on, and why: the same outcomes.
        replayed = subprocess.run([gpudoctor, "facts", "--replay", str(bundle)], env=bed.env(), cwd="/",
                                  capture_output=True, text=True, timeout=60)
        live_probes = json.loads(recorded.read_text())["facts"]["probes"]
        replay_probes = json.loads(replayed.stdout)["facts"]["probes"]
        assert live_probes["unfinished"] and replay_probes["unfinished"] == live_probes["unfinished"]
        assert replay_probes["outcomes"] == live_probes["outcomes"]
    finally:
        _kill_processes_running(hung)
    # A container whose start is stuck in its runtime cannot be removed until the runtime lets go;
    # then the run's reaper removes it.
    _reaped_then_closed(bed)


def _reaped_then_closed(bed: SimBed) -> None:
    """The run's reaper removes what the daemon would not let go of at once (within 40 s); then the bed goes."""
    deadline = time.monotonic() + 40
    while probe_containers(bed.docker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert probe_containers(bed.docker) == []
    end_reapers(bed.dockerd.url)
    bed.close()
