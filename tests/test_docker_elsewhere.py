"""Issue 11 #4: a DOCKER_HOST typo is not "the Docker daemon is not running".

DOCKER_HOST names a socket that does not exist while a daemon answers elsewhere: at the current docker context's
socket (where the client goes once DOCKER_HOST is unset), or at rootless Docker's $XDG_RUNTIME_DIR/docker.sock.
Each case runs the real `gpudoctor` command against a real private dockerd (tests/support/dockerd.py), and a
recorded bundle replays the same finding.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from gpudoctor.facts.docker_client import ping_socket
from tests.support.cli import run_cli
from tests.support.engines import find_docker_cli

pytestmark = pytest.mark.docker


def _env(**kw: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(kw)
    return env


def _reachable(env: dict[str, str], *extra: str) -> tuple[dict, subprocess.CompletedProcess[str]]:
    proc = run_cli(["check", "--only", "docker.reachable", "--format", "json", *extra], env=env)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    (result,) = next(c for c in report["checks"] if c["id"] == "docker.reachable")["results"]
    return result, proc


def test_docker_host_typo_names_the_context_that_answers(dockerd_factory, tmp_path):
    cli = find_docker_cli()
    if cli is None:
        pytest.skip("no docker CLI to create a context with")
    d = dockerd_factory.shared({})
    config = tmp_path / "docker-config"
    env = _env(DOCKER_CONFIG=str(config))
    for args in (("context", "create", "gpu", "--docker", f"host={d.url}"), ("context", "use", "gpu")):
        subprocess.run([cli, *args], check=True, capture_output=True, env=env)
    missing = tmp_path / "nonexistent.sock"
    result, _ = _reachable({**env, "DOCKER_HOST": f"unix://{missing}"})
    assert result["summary"].startswith(f"DOCKER_HOST names unix://{missing}, which does not exist; a daemon (Docker/")
    assert result["summary"].endswith(f"answers at {d.url} (the docker context 'gpu')")
    assert result["fix"]["commands"][0] == "unset DOCKER_HOST"
    assert not any("systemctl" in c for c in result["fix"]["commands"])
    assert result["evidence"]["failure_mode"] == "docker-host-elsewhere"


def test_docker_host_typo_finds_rootless_dockers_socket_and_replays(dockerd_factory, tmp_path):
    d = dockerd_factory.shared({})
    # Rootless Docker listens on $XDG_RUNTIME_DIR/docker.sock: the private daemon's socket is <workdir>/docker.sock.
    env = _env(DOCKER_HOST="unix:///nonexistent.sock", DOCKER_CONFIG=str(tmp_path / "no-config"),
               XDG_RUNTIME_DIR=str(d.workdir))
    bundle = tmp_path / "bundle.json"
    recorded = run_cli(["facts", "--record", str(bundle)], env=env)
    assert recorded.returncode == 0, recorded.stderr
    result, _ = _reachable(env)
    assert result["evidence"]["alternatives"][d.url] == "answers"
    assert result["summary"].startswith("DOCKER_HOST names unix:///nonexistent.sock, which does not exist; a daemon (")
    # The default socket comes first where a system daemon answers there; else rootless Docker's.
    default_up = ping_socket("/var/run/docker.sock")["state"] == "answers"
    expected = "unix:///var/run/docker.sock (the default socket)" if default_up else f"{d.url} (rootless Docker)"
    assert result["summary"].endswith(f"answers at {expected}")
    assert not any("systemctl" in c for c in result["fix"]["commands"])
    # The replay answers from the bundle alone: the same finding with no daemon and no DOCKER_HOST.
    replayed, _ = _reachable(_env(), "--replay", str(bundle))
    assert replayed["summary"] == result["summary"] and replayed["fix"] == result["fix"]
