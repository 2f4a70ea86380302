"""The docker-layer facts and checks against a real, private dockerd (tests/support/dockerd.py): runtimes
registered, default runtime changed, daemon.json edited without a restart, invalid JSON, the `--gpus` driver
registered or not depending on dockerd's PATH at start, permission denied for a non-root user, a stopped
daemon, and a record → replay round trip of every Docker answer."""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpudoctor.checks import docker as docker_checks
from gpudoctor.facts.docker_client import reset_client_cache
from gpudoctor.facts.host import LiveHost, RecordingHost, ReplayHost
from gpudoctor.facts.registry import gather
from gpudoctor.facts.toolkit import ToolkitBinary, ToolkitFacts
from gpudoctor.model import Status
from tests.support.dockerd import DockerdError

pytestmark = pytest.mark.docker

FACTS = ["docker", "dockerd_process", "daemon_config"]


@pytest.fixture(autouse=True)
def _fresh_clients():
    reset_client_cache()
    yield
    reset_client_cache()


def facts_for(d, monkeypatch, host=None, names=FACTS):
    monkeypatch.setenv("DOCKER_HOST", d.url)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    fs = gather(host or LiveHost(), names)
    assert not fs.errors, fs.errors
    return fs.values


def stub(dir_: Path, name: str, body: str = "exit 0") -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    path = dir_ / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def installed_toolkit(hook: str | None) -> ToolkitFacts:
    return ToolkitFacts((ToolkitBinary("nvidia-container-runtime-hook", hook, "1.17.8"),), "/etc/nvidia-container-runtime/config.toml")


def test_reachable_daemon_facts_and_checks(dockerd_factory, monkeypatch):
    d = dockerd_factory.shared({})
    f = facts_for(d, monkeypatch)
    docker, proc, cfg = f["docker"], f["dockerd_process"], f["daemon_config"]
    assert docker.reachable and docker.server_version == d.info()["ServerVersion"]
    assert docker.endpoint_source == "DOCKER_HOST" and docker.socket_path == str(d.socket)
    assert proc.found and proc.pid == d.pid and proc.how == "socket-peer"
    assert proc.config_file == str(d.config_path) and proc.environ_readable
    assert abs(proc.start_time - time.time()) < 3600
    assert cfg.path == str(d.config_path) and cfg.data == {"bridge": "none", "iptables": False}
    for chk in (docker_checks.reachable, docker_checks.engine, docker_checks.api_version):
        assert chk.fn(docker=docker).status is Status.PASS
    assert docker_checks.daemon_json_drift.fn(docker=docker, daemon_config=cfg, dockerd_process=proc).status is Status.PASS


def test_runtimes_default_runtime_and_drift(dockerd_factory, monkeypatch, tmp_path):
    runtime = stub(tmp_path / "bin", "nvidia-container-runtime", 'exec runc "$@"')
    d = dockerd_factory.private({"runtimes": {"nvidia": {"path": str(runtime)}}})
    try:
        f = facts_for(d, monkeypatch)
        assert f["docker"].runtime("nvidia").path == str(runtime)
        assert f["dockerd_process"].runtime_paths["nvidia"] == str(runtime)
        r = docker_checks.runtime_nvidia.fn(docker=f["docker"], toolkit=installed_toolkit("/usr/bin/x"), dockerd_process=f["dockerd_process"])
        assert r.status is Status.PASS

        # Edited, not restarted: the file names a runtime the daemon does not have (issue 3: drift).
        d.write_config({"runtimes": {"nvidia": {"path": str(runtime)}, "nvidia-cdi": {"path": str(runtime)}},
                        "default-runtime": "nvidia"})
        f = facts_for(d, monkeypatch)
        r = docker_checks.daemon_json_drift.fn(docker=f["docker"], daemon_config=f["daemon_config"], dockerd_process=f["dockerd_process"])
        assert r.status is Status.FAIL
        assert "runtime 'nvidia-cdi' is in the file but not in the daemon" in r.summary and "default runtime" in r.summary
        assert r.fix.commands == ("sudo systemctl restart docker",)
        # The daemon really does not know it yet.
        assert d.engine.unknown_runtime_error("nvidia-cdi") in d.docker("create", "--runtime=nvidia-cdi", "probe:none").stderr

        d.restart()
        f = facts_for(d, monkeypatch)
        assert f["docker"].default_runtime == "nvidia"
        assert docker_checks.daemon_json_drift.fn(
            docker=f["docker"], daemon_config=f["daemon_config"], dockerd_process=f["dockerd_process"]).status is Status.PASS

        # Default runtime pointing at a binary that is gone: every container fails, and the check says so.
        d.restart({"runtimes": {"nvidia": {"path": str(tmp_path / "gone")}}, "default-runtime": "nvidia"})
        d.import_busybox()
        run = d.docker("run", "--rm", "probe:busybox", "true")
        assert run.returncode != 0
        f = facts_for(d, monkeypatch)
        assert f["dockerd_process"].runtime_paths["nvidia"] == ""
        r = docker_checks.default_runtime.fn(docker=f["docker"], toolkit=installed_toolkit("/usr/bin/x"), dockerd_process=f["dockerd_process"])
        assert r.status is Status.FAIL and "every container fails" in r.summary
    finally:
        d.close()


def test_invalid_json_edited_and_on_restart(dockerd_factory, monkeypatch):
    d = dockerd_factory.private({})
    try:
        d.write_config('{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}')  # truncated
        f = facts_for(d, monkeypatch)
        assert f["docker"].reachable  # the running daemon read the old file
        r = docker_checks.daemon_json.fn(daemon_config=f["daemon_config"], dockerd_process=f["dockerd_process"], docker=f["docker"])
        assert r.status is Status.FAIL and "invalid JSON" in r.summary and r.fix.link
        with pytest.raises(DockerdError) as err:
            d.restart()
        assert "daemon.json" in str(err.value) or "configuration" in str(err.value)
        f = facts_for(d, monkeypatch, names=["docker"])
        assert not f["docker"].reachable and f["docker"].error_kind in ("no-socket", "connection-refused")
        assert docker_checks.reachable.fn(docker=f["docker"]).status is Status.FAIL
    finally:
        d.close()


def test_gpu_driver_depends_on_dockerd_path_at_start(dockerd_factory, monkeypatch, tmp_path):
    early = tmp_path / "early"
    hook = stub(early, "nvidia-container-runtime-hook")
    d = dockerd_factory.private({}, path_prepend=[early])
    late_dir = tmp_path / "late"
    late_dir.mkdir()
    d2 = dockerd_factory.private({}, path_prepend=[late_dir])
    started = time.time()
    try:
        d.import_busybox()
        d2.import_busybox()
        time.sleep(max(0.0, docker_checks.START_SLACK_S + 0.3 - (time.time() - started)))
        late_hook = stub(late_dir, "nvidia-container-runtime-hook")  # "installed" after dockerd started

        f = facts_for(d, monkeypatch)
        sighting = f["dockerd_process"].hook("nvidia-container-runtime-hook")
        assert sighting.path == str(hook)
        r = docker_checks.gpu_driver.fn(docker=f["docker"], dockerd_process=f["dockerd_process"], toolkit=installed_toolkit(str(hook)))
        assert r.status is Status.PASS
        # Real behaviour: this daemon registered the nvidia driver, so `--gpus` does not get the no-driver error.
        no_driver = dockerd_factory.engine.no_gpu_driver_error
        assert no_driver not in d.docker("run", "--rm", "--gpus", "all", "probe:busybox", "true").stderr

        f2 = facts_for(d2, monkeypatch)
        r = docker_checks.gpu_driver.fn(docker=f2["docker"], dockerd_process=f2["dockerd_process"], toolkit=installed_toolkit(str(late_hook)))
        assert r.status is Status.FAIL and "installed after dockerd" in r.summary
        assert r.fix.commands == ("sudo systemctl restart docker",)
        assert no_driver in d2.docker("run", "--rm", "--gpus", "all", "probe:busybox", "true").stderr

        # A dockerd whose PATH lacks the hook entirely.
        f3 = facts_for(dockerd_factory.shared({}), monkeypatch)
        r = docker_checks.gpu_driver.fn(docker=f3["docker"], dockerd_process=f3["dockerd_process"], toolkit=installed_toolkit("/opt/x/nvidia-container-runtime-hook"))
        assert r.status is Status.FAIL and "not on dockerd's PATH" in r.summary
    finally:
        d.close()
        d2.close()


def test_stopped_daemon_is_no_socket(dockerd_factory, monkeypatch, tmp_path):
    from gpudoctor.facts.docker_client import ping_socket

    d = dockerd_factory.private({})
    d.close()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # no rootless daemon there
    f = facts_for(d, monkeypatch, names=["docker"])
    assert f["docker"].error_kind == "no-socket" and not f["docker"].socket_exists
    r = docker_checks.reachable.fn(docker=f["docker"])
    # Where a system daemon answers at the default socket, that is what DOCKER_HOST should name (issue 11 #4).
    up = ping_socket("/var/run/docker.sock")["state"] == "answers"
    assert r.status is Status.FAIL and ("answers at unix:///var/run/docker.sock" if up else "not running") in r.summary


TEST_USER = "gpdtest"

# Run the docker fact as a non-root user. The interpreter may live under /root (mode 0700), which a
# runuser/setpriv'd exec could not reach; so this child imports everything as root, then drops to the
# user's uid/gid with no supplementary groups (what `setpriv --reuid --regid --clear-groups` does)
# before it touches the socket.
AS_USER = """
import json, os, sys
import docker, docker.utils, docker.transport.unixconn, requests, urllib3
import gpudoctor.facts.builtin, gpudoctor.facts.docker_http  # before setuid: a clone may be unreadable to the user
from gpudoctor.facts.host import LiveHost
from gpudoctor.facts.registry import gather
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([]); os.setgid(gid); os.setuid(uid)
fs = gather(LiveHost(), ["docker"])
d = fs.values["docker"]
print(json.dumps({"uid": os.getuid(), "kind": d.error_kind, "group": d.socket_group, "exists": d.socket_exists,
                  "user_uid": d.user_uid, "reachable": d.reachable}))
"""


def _test_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
                       check=True, capture_output=True)
        return pwd.getpwnam(TEST_USER)


def test_permission_denied_for_a_user_outside_the_docker_group(dockerd_factory):
    d = dockerd_factory.shared({})
    user = _test_user()
    env = d.env()
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", AS_USER, str(user.pw_uid), str(user.pw_gid)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["uid"] == user.pw_uid and out["user_uid"] == user.pw_uid
    assert out["kind"] == "permission-denied" and out["exists"] is True and not out["reachable"]
    # The socket's group is what the fix names (docker here: Debian's package creates it).
    st = os.stat(d.socket)
    import grp

    assert out["group"] == grp.getgrgid(st.st_gid).gr_name


def test_record_replay_round_trip(dockerd_factory, monkeypatch, tmp_path):
    runtime = stub(tmp_path / "bin", "nvidia-container-runtime", 'exec runc "$@"')
    d = dockerd_factory.shared({"runtimes": {"nvidia": {"path": str(runtime)}}})
    rec = RecordingHost()
    live = facts_for(d, monkeypatch, host=rec, names=[*FACTS, "toolkit", "cdi"])
    bundle = json.loads(json.dumps(rec.bundle("test")))
    ops = {a["op"] for a in bundle["answers"]}
    assert {"docker.endpoint", "docker.version", "docker.info", "docker.socket_peer"} <= ops
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # a replay must not ask the live daemon
    replayed = gather(ReplayHost(bundle), [*FACTS, "toolkit", "cdi"])
    assert not replayed.errors, replayed.errors
    for name in live:
        assert dataclasses.asdict(replayed.values[name]) == dataclasses.asdict(live[name]), name
