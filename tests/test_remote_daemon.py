"""Issue 11 #4: with a remote daemon the report says which layers were read where, and the verdict is one
machine's: the daemon's and its containers', never this machine's PCI/kernel/NVML taken for the daemon host's.

"Remote" is stood in for by a real private dockerd (tests/support/dockerd.py) in a UTS namespace of its own, with
the host name `gpu-node`, listening on tcp://127.0.0.2:PORT: a loopback address (what an `ssh -L` tunnel looks
like) whose engine names another host (facts/locality.py). Everything goes through the real `gpudoctor` command.
Pure cases of the locality rule are tested on their own, and an edited bundle (tcp://gpu-node:2376) replays.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from gpudoctor.facts.locality import elsewhere
from tests.support.cli import run_cli
from tests.support.dockerd import PrivateDockerd

HOST_LAYERS = ("platform", "pci", "kernel", "devices", "nvml", "toolkit", "cdi")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[1]


@pytest.fixture
def gpu_node(docker_engine, tmp_path):
    """A dockerd that calls its host `gpu-node`, reached at tcp://127.0.0.2:PORT."""
    port = _free_port()
    wrapper = tmp_path / "dockerd-on-gpu-node"
    real = docker_engine.dockerd
    wrapper.write_text("#!/bin/sh\n"
                       f"exec unshare --uts sh -c 'hostname gpu-node && exec \"$0\" \"$@\"' {real} \"$@\" "
                       f"-H tcp://127.0.0.2:{port} --tls=false\n")
    wrapper.chmod(0o755)
    d = PrivateDockerd(None, {}, dockerd=str(wrapper), engine=docker_engine)
    d.start()
    try:
        d.import_busybox()
        yield d, f"tcp://127.0.0.2:{port}"
    finally:
        d.close()


def _env(url: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}, "DOCKER_HOST": url}


@pytest.mark.docker
def test_remote_daemon_is_judged_alone_and_the_report_says_where(gpu_node, tmp_path):
    d, url = gpu_node
    bundle = tmp_path / "bundle.json"
    args = ["check", "--image", "probe:busybox", "--format", "json"]
    recorded = run_cli(["facts", "--record", str(bundle), "--image", "probe:busybox"], env=_env(url))
    assert recorded.returncode == 0, recorded.stderr
    proc = run_cli(args, env=_env(url))
    report = json.loads(proc.stdout)
    read = report["host"]["layers_read"]
    assert read["remote"] is True and read["docker_and_probes"] == f"{url} (engine host gpu-node)"
    assert read["host_layers"] == f"this machine ({report['host']['hostname']})"
    checks = {c["id"]: c for c in report["checks"]}
    # This machine's host layers are shown but not judged: no GPU here is not the GPU node's problem.
    for c in report["checks"]:
        if c["layer"] in HOST_LAYERS:
            assert c["status"] == "skip" and c["results"][0]["evidence"]["not_judged"] == "remote-daemon", c
            assert "the daemon is remote" in c["results"][0]["summary"]
    # Checks that hold this machine's files against the daemon are not judged either.
    for cid in ("docker.daemon-json", "docker.gpu-driver", "docker.cgroups"):
        assert checks[cid]["status"] == "skip" and "remote" in checks[cid]["results"][0]["summary"], cid
    # The daemon's own containers are probed; forms judged against this machine's GPUs are not.
    assert checks["containers.baseline"]["status"] == "pass"
    assert "the daemon is remote" in checks["containers.gpus-all"]["results"][0]["summary"]
    v = report["verdict"]
    assert v["partial"] is True and url in v["scope"] and "not judged" in v["scope"]
    assert v["root_cause"] is None and v["headline"].startswith(f"Partial: nothing broken in the Docker daemon at {url}")
    assert proc.returncode == 4, proc.stderr
    # The text report names both places in its header.
    text = run_cli(["check", "--image", "probe:busybox"], env={**_env(url), "COLUMNS": "200", "NO_COLOR": "1"})
    assert f"host layers: this machine ({report['host']['hostname']}); Docker and probes: {url} (engine host gpu-node)" \
        in text.stdout.splitlines()[1]
    assert "not judged (read on this machine, not the daemon's host)" in text.stdout
    # The bundle replays the same verdict with no daemon at all.
    replayed = run_cli(["check", "--format", "json", "--replay", str(bundle)], env=_env("unix:///nonexistent.sock"))
    assert replayed.returncode == 4, replayed.stderr
    assert json.loads(replayed.stdout)["verdict"]["scope"] == v["scope"]


def test_locality_rule():
    # A loopback address whose engine names another host: a tunnel.
    assert "tunnel" in elsewhere(True, "tcp://127.0.0.1:2375", "gpu-node", "6.8", "laptop", "6.8")
    assert elsewhere(True, "unix:///var/run/docker.sock", "gpu-17", "6.8", "GPU-17.example.com", "6.8") is None
    # A remote address is this machine only when the engine names this host and runs this kernel.
    assert elsewhere(False, "tcp://10.0.0.5:2376", "gpu-17", "6.8.0-49", "gpu-17", "6.8.0-49") is None
    assert elsewhere(False, "tcp://10.0.0.5:2376", "ubuntu", "6.8.0-49", "ubuntu", "6.5.0-1") is not None
    assert "another machine's address" in elsewhere(False, "ssh://me@gpu-node", None, None, "laptop", "6.8")
    assert elsewhere(True, "unix:///var/run/docker.sock", None, None, None, None) is None


def _edited_bundle(src: Path, dst: Path, endpoint: str, engine_host: str) -> None:
    """A recorded bundle moved to another daemon: DOCKER_HOST=tcp://…, and /info's Name the remote host's."""
    data = json.loads(src.read_text())
    for entry in data["answers"]:
        if entry["op"] == "docker.endpoint" and "value" in entry["answer"]:
            entry["answer"]["value"].update(host=endpoint, source="DOCKER_HOST", is_local=False, scheme="tcp",
                                            socket_path=None)
        if entry["op"] in ("docker.version", "docker.info"):
            entry["args"] = [endpoint]
            if entry["op"] == "docker.info" and "value" in entry["answer"]:
                entry["answer"]["value"]["Name"] = engine_host
    dst.write_text(json.dumps(data))


def test_replayed_remote_bundle_never_blames_this_machines_pci(tmp_path):
    """The real H100 host's bundle (no toolkit) as if its daemon were tcp://gpu-node:2376: the toolkit this machine
    lacks is not the remote's root cause; the run is partial and says where each layer was read."""
    src = Path(__file__).parent / "fixtures" / "real-h100-host" / "bundle.json"
    edited = tmp_path / "remote.json"
    _edited_bundle(src, edited, "tcp://gpu-node:2376", "gpu-node")
    proc = run_cli(["check", "--format", "json", "--replay", str(edited)])
    assert proc.returncode in (1, 4), proc.stderr
    report = json.loads(proc.stdout)
    v = report["verdict"]
    assert v["partial"] is True and "tcp://gpu-node:2376" in v["scope"]
    assert v["layer"] not in HOST_LAYERS
    assert report["host"]["layers_read"]["docker_and_probes"] == "tcp://gpu-node:2376 (engine host gpu-node)"


@pytest.mark.docker
def test_a_daemon_naming_the_kernels_hostname_is_this_machine_under_root(gpu_node, tmp_path):
    """Cloud images often leave /etc/hostname at a placeholder while the kernel's hostname (dockerd's /info Name) is
    set at boot: under --root, a daemon naming the host's kernel hostname is this machine's, not a remote one."""
    d, url = gpu_node
    root = tmp_path / "host"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("localhost.localdomain\n")
    (root / "proc" / "sys" / "kernel").mkdir(parents=True)
    (root / "proc" / "sys" / "kernel" / "hostname").write_text("gpu-node\n")
    proc = run_cli(["check", "--root", str(root), "--no-probes", "--format", "json"], env=_env(url))
    report = json.loads(proc.stdout)
    assert report["host"]["layers_read"]["remote"] is False, report["host"]["layers_read"]
    assert report["verdict"]["scope"].startswith("the layers checked, all read on this machine"), report["verdict"]
    (reachable,) = next(c["results"] for c in report["checks"] if c["id"] == "docker.reachable")
    assert reachable["status"] == "pass" and not reachable["summary"].startswith("remote"), reachable
