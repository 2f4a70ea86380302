"""open_client against real endpoints: DOCKER_HOST, a docker CLI context (DOCKER_CONTEXT and currentContext),
a missing context, a stale socket file; and the private-dockerd harness leaving nothing behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from gpudoctor.facts.docker_client import open_client, reset_client_cache, resolve_endpoint
from gpudoctor.facts.host import HostCallError
from tests.support.dockerd import PrivateDockerd, find_docker_cli

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    reset_client_cache()
    yield
    reset_client_cache()


def test_docker_host_and_client_cache(dockerd_factory, monkeypatch):
    d = dockerd_factory.shared({})
    monkeypatch.setenv("DOCKER_HOST", d.url)
    client = open_client(5)
    assert client.version()["ApiVersion"] and open_client(5) is client


def test_cli_context_is_honoured(dockerd_factory, monkeypatch, tmp_path):
    if find_docker_cli() is None:
        pytest.skip("no docker CLI to create a context with")
    d = dockerd_factory.shared({})
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    subprocess.run([find_docker_cli(), "context", "create", "gpd-test", "--docker", f"host={d.url}"],
                   check=True, capture_output=True, env=env)
    monkeypatch.setenv("DOCKER_CONTEXT", "gpd-test")
    ep = resolve_endpoint()
    assert (ep.host, ep.context, ep.source) == (d.url, "gpd-test", "DOCKER_CONTEXT")
    assert open_client(5).info()["ID"] == d.info()["ID"]
    # The same context selected by `docker context use` (config.json currentContext).
    monkeypatch.delenv("DOCKER_CONTEXT")
    subprocess.run([find_docker_cli(), "context", "use", "gpd-test"], check=True, capture_output=True, env=env)
    assert json.loads((tmp_path / "docker-config/config.json").read_text())["currentContext"] == "gpd-test"
    ep = resolve_endpoint()
    assert (ep.host, ep.source) == (d.url, "currentContext")


def test_missing_context_and_stale_socket(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONTEXT", "no-such-context")
    with pytest.raises(HostCallError) as err:
        open_client(2)
    assert err.value.kind == "context"
    monkeypatch.delenv("DOCKER_CONTEXT")
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens: what a crashed daemon leaves
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    with pytest.raises(HostCallError) as err:
        open_client(2)
    assert err.value.kind == "connection-refused"


def test_harness_leaves_no_process_mount_or_dir(dockerd_factory):
    d = PrivateDockerd(None, {}, engine=dockerd_factory.engine)
    d.start()
    d.import_busybox()
    assert d.docker("run", "-d", "probe:busybox", "sleep", "300").returncode == 0
    workdir = str(d.workdir)
    pids = list(d._our_pids())
    assert pids  # dockerd, containerd, the shim
    d.close()
    assert not Path(workdir).exists()
    assert not list(d._our_pids())
    with open("/proc/self/mounts") as f:
        assert workdir not in f.read()
