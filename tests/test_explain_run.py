"""`gpudoctor explain --run` against a real Docker engine (a private dockerd, no NVIDIA toolkit: the CI machine's
kind): the user's own request is reproduced in a hardened probe, what the daemon did is compared with explain's
prediction, and nothing is left behind. GPU success paths are replayed from the real H200 bundles elsewhere
(tests/test_real_stack_replay.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_cli

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def daemon(dockerd_factory):
    return dockerd_factory.shared({}, busybox=True)


@pytest.fixture()
def docker_host(daemon, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", daemon.url)
    yield daemon
    leftovers = daemon.containers()
    daemon.remove_containers()
    assert leftovers == [], "explain --run left a container behind"


def _run(*args: str) -> tuple[int, dict[str, Any]]:
    proc = run_cli(["explain", "--run", "--image", "probe:busybox", "--format", "json", *args])
    data = json.loads(proc.stdout)
    assert len(data["runs"]) == 1, data
    return proc.returncode, data["runs"][0]


def test_a_gpus_value_the_daemon_refuses(docker_host):
    code, run = _run("--", "--gpus all")
    assert code == 1
    assert run["predicted"]["refused"] is True
    assert run["verdict"] == "fails"
    assert run["agrees_with_prediction"] is True
    assert "could not select device driver" in run["summary"] or "GPU vendor" in run["summary"]
    assert run["sent"]["device_requests"][0]["Count"] == -1 and run["sent"]["runtime"] is None


def test_a_docker_run_line_without_gpus_runs_and_lists_what_it_ignored(docker_host):
    code, run = _run("--", "docker run --rm -it --name web -v /srv:/srv -e FOO=1 -e NVIDIA_DRIVER_CAPABILITIES=all "
                     "--network host probe:busybox python serve.py")
    assert run["verdict"] == "works" and run["seen"] == "no GPU"
    assert run["agrees_with_prediction"] is True
    ignored = " ".join(run["ignored"])
    for part in ("--network host", "-v /srv:/srv", "--name web", "-e FOO", "the container's command: python serve.py"):
        assert part in ignored, part
    assert run["sent"]["environment"] == ["NVIDIA_DRIVER_CAPABILITIES=all"]  # device-related env only


def test_an_sdk_snippet_naming_an_unregistered_runtime(docker_host):
    code, run = _run("--", 'client.containers.run("img", runtime="nvidia", device_requests=['
                     'docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])])')
    assert code == 1
    assert run["predicted"]["refused"] and run["predicted"]["blame"] == "docker.runtime.nvidia"
    assert run["verdict"] == "fails" and run["agrees_with_prediction"] is True
    assert run["cause"] == "runtime-not-registered"
    assert any("nvidia-ctk runtime configure" in c for c in run["fix"]["commands"])


def test_a_compose_file(docker_host, tmp_path: Path):
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "services:\n  app:\n    image: probe:busybox\n    deploy:\n      resources:\n        reservations:\n"
        "          devices:\n            - driver: nvidia\n              count: all\n              capabilities: [gpu]\n"
    )
    code, run = _run(str(compose))
    assert code == 1
    assert run["verdict"] == "fails" and run["agrees_with_prediction"] is True


def test_the_users_command_is_judged_by_its_exit_code(docker_host):
    proc = run_cli(["explain", "--run", "--image", "probe:busybox", "--command", "sh -c 'echo looking; exit 3'",
                    "--format", "json", "--", "docker run probe:busybox"])
    run = json.loads(proc.stdout)["runs"][0]
    assert proc.returncode == 1
    assert run["verdict"] == "fails" and "exit 3" in run["seen"] and "looking" in run["seen"]
    ok = run_cli(["explain", "--run", "--image", "probe:busybox", "--command", "true", "--format", "json", "--",
                  "docker run probe:busybox"])
    assert json.loads(ok.stdout)["runs"][0]["verdict"] == "works"


def test_run_refuses_replay_and_an_absent_image(docker_host, tmp_path: Path):
    proc = run_cli(["explain", "--run", "--replay", str(tmp_path / "b.json"), "--", "--gpus all"])
    assert proc.returncode == 2 and "--run needs this host's daemon" in proc.stderr
    proc = run_cli(["explain", "--run", "--image", "no-such:image", "--format", "json", "--", "--gpus all"])
    run = json.loads(proc.stdout)["runs"][0]
    assert proc.returncode == 1 and "not on this host" in run["problem"]
