"""The docker fact asks /info while /version answers (issue 12: both lie on the way to the first probe container),
and where /version fails it does not wait for /info. A daemon of our own on a unix socket, which says when each
request came and answers /version late."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

VERSION = {"Version": "29.7.2", "ApiVersion": "1.52", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
           "KernelVersion": "6.8.0"}
INFO = {"ServerVersion": "29.7.2", "Runtimes": {"runc": {"path": "runc"}}, "DefaultRuntime": "runc", "Name": "fake"}

GATHER = """
import json, time
from gpudoctor.facts.host import LiveHost
from gpudoctor.facts.registry import FactOptions, gather
started = time.monotonic()
docker = gather(LiveHost(), ["docker"], FactOptions({})).values["docker"]
print(json.dumps({"reachable": docker.reachable, "version": docker.server_version, "default_runtime": docker.default_runtime,
                  "took_s": time.monotonic() - started}))
"""


class FakeDaemon:
    """Answers GET /version after `version_delay` (or closes the connection: `version_fails`), /info after
    `info_delay`; `seen` holds (path, monotonic time it came)."""

    def __init__(self, path: Path, version_delay: float, info_delay: float, version_fails: bool = False) -> None:
        self.path, self.version_delay, self.info_delay, self.version_fails = path, version_delay, info_delay, version_fails
        self.seen: list[tuple[str, float]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = conn.recv(65536).decode("latin-1")
            path = request.split(" ", 2)[1].split("?")[0]
            self.seen.append((path, time.monotonic()))
            if path.endswith("/version"):
                time.sleep(self.version_delay)
                if self.version_fails:
                    return
                body = VERSION
            elif path.endswith("/info"):
                time.sleep(self.info_delay)
                body = INFO
            else:
                body = {}
            data = json.dumps(body).encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.52\r\nContent-Length: {len(data)}\r\n\r\n"
            try:
                conn.sendall(head.encode() + data)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeDaemon]:
    daemon = FakeDaemon(tmp_path / "docker.sock", version_delay=0.6, info_delay=0.0)
    yield daemon
    daemon.close()


def _gather(socket_path: Path, home: Path) -> dict:
    env = {**os.environ, "DOCKER_HOST": f"unix://{socket_path}", "HOME": str(home), "DOCKER_CONFIG": str(home / ".docker")}
    proc = subprocess.run([sys.executable, "-c", GATHER], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_info_is_asked_while_version_answers(fake: FakeDaemon, tmp_path: Path) -> None:
    got = _gather(fake.path, tmp_path)
    assert got["reachable"] and got["version"] == "29.7.2" and got["default_runtime"] == "runc", got
    came = dict(fake.seen)
    assert {"/version", "/info"} <= set(came), fake.seen
    # /info came before /version was answered (0.6 s after it came), not after.
    assert came["/info"] - came["/version"] < 0.3, fake.seen


def test_a_failed_version_does_not_wait_for_info(tmp_path: Path) -> None:
    daemon = FakeDaemon(tmp_path / "docker.sock", version_delay=0.0, info_delay=20.0, version_fails=True)
    try:
        got = _gather(daemon.path, tmp_path)
    finally:
        daemon.close()
    assert got["reachable"] is False, got
    assert got["took_s"] < 10, got
