"""Fault injection for the probe-runner tests (issue 14) and benchmarks/interrupted_runs.py.

* `import_sleeping_image` — an image whose `/bin/sh` sleeps for ever: every probe container started
  from it stays live until someone removes it (the probe script never runs);
* `probe_containers` — the containers carrying gpudoctor's probe label, counted with the docker CLI
  the moment it is called (not after a sweep);
* `console_script` — the installed `gpudoctor` console script (what a user runs), not `python -m`;
* `interrupted_run` — start `gpudoctor check` on a bed, wait until probes are live, send real signals
  (or let `timeout` send them), and say what was left;
* `SlowProxy` — a unix-socket proxy in front of a daemon that delays every request (a slow daemon);
* `kill_container_processes`, `end_reapers` — what a test that kills a daemon must end itself.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tests.support.dockerd import find_busybox

PROBE_LABEL = "io.gpudoctor.probe"  # gpudoctor/probes/runner.py LABEL, spelled out: the test counts what a user would
SLEEPING_IMAGE = "probe:sleeps"


def import_sleeping_image(docker: Callable[..., subprocess.CompletedProcess[str]], tag: str = SLEEPING_IMAGE) -> str:
    """`docker import` a busybox rootfs whose /bin/sh is a script that sleeps for ever."""
    if docker("image", "inspect", tag).returncode == 0:
        return tag
    busybox = find_busybox()
    if busybox is None:
        raise RuntimeError("no static busybox")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        script = b"#!/bin/busybox sh\nexec /bin/busybox sleep 2147483647\n"
        info = tarfile.TarInfo("bin/sh")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    out = docker("import", "-", tag, input=buf.getvalue())
    if out.returncode != 0:
        raise RuntimeError(f"docker import failed: {out.stderr}")
    return tag


def probe_containers(docker: Callable[..., subprocess.CompletedProcess[str]], running: bool = False) -> list[str]:
    """Ids of containers with the probe label (all states, or running only)."""
    args = ["ps", "-q", "--no-trunc", "--filter", f"label={PROBE_LABEL}"] + ([] if running else ["-a"])
    out = docker(*args)
    if out.returncode != 0:
        raise RuntimeError(f"docker ps failed: {out.stderr}")
    return out.stdout.split()


def kill_container_processes(ids: Sequence[str]) -> int:
    """SIGKILL the processes of these containers, found by their cgroup. For tests that kill a daemon's
    shims (PrivateDockerd.stop after a SIGKILLed dockerd): the containers' own processes outlive them.
    SIGKILL, because a container's init ignores other signals from outside its pid namespace."""
    return _signal_where(lambda pid: any(cid in Path(f"/proc/{pid}/cgroup").read_text() for cid in ids), signal.SIGKILL)


def end_reapers(docker_host: str) -> int:
    """SIGTERM the probe reapers (python -m gpudoctor.probes.reap) aimed at `docker_host`: a test's bed
    goes away with its daemon, and a reaper that never saw the run clean would wait for it 10 minutes."""
    def is_reaper(pid: str) -> bool:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return b"gpudoctor.probes.reap" in cmdline and f"DOCKER_HOST={docker_host}".encode() in environ

    return _signal_where(is_reaper, signal.SIGTERM)


def _signal_where(match: Callable[[str], bool], sig: int) -> int:
    """Send `sig` to every process for which `match(pid)` holds (a process gone meanwhile is skipped)."""
    sent = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if not match(name):
                continue
            os.kill(int(name), sig)
            sent += 1
        except (OSError, ProcessLookupError):
            continue
    return sent


def console_script() -> str | None:
    """The `gpudoctor` console script of the Python running the tests (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).with_name("gpudoctor")
    if beside.exists():
        return str(beside)
    return shutil.which("gpudoctor")


@dataclass(frozen=True)
class Interrupted:
    returncode: int
    seconds_after_signal: float  # from the (first) signal to the process's exit
    left: tuple[str, ...]  # probe containers right after the exit
    live_at_signal: int  # running probe containers when the signal was sent
    stdout: str
    stderr: str


def interrupted_run(
    gpudoctor: str,
    args: Sequence[str],
    env: Mapping[str, str],
    docker: Callable[..., subprocess.CompletedProcess[str]],
    how: str,
    live: int = 3,
    start_timeout: float = 120.0,
    exit_timeout: float = 60.0,
) -> Interrupted:
    """Run `gpudoctor check ARGS`, wait until `live` probe containers run, then interrupt it `how`:
    "SIGINT", "SIGTERM", "SIGHUP" (one signal), "SIGINT+SIGINT" (a second Ctrl-C 0.3 s later, during
    the cleanup), or "timeout-INT" / "timeout-TERM" (GNU timeout, which signals the command and then its
    whole process group)."""
    argv = [gpudoctor, "check", *args]
    if how.startswith("timeout-"):
        argv = ["timeout", "-s", how.split("-", 1)[1], "3600", *argv]
    proc = subprocess.Popen(argv, env=dict(env), cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group: `timeout`'s group signal reaches only it
    try:
        started = time.monotonic()
        while len(probe_containers(docker, running=True)) < live:
            if proc.poll() is not None or time.monotonic() - started > start_timeout:
                out, err = proc.communicate()
                raise AssertionError(f"the probes never ran ({proc.returncode}):\n{out[-1000:]}\n{err[-2000:]}")
            time.sleep(0.05)
        at_signal = len(probe_containers(docker, running=True))
        signalled = time.monotonic()
        if how.startswith("timeout-"):
            # The command's own `timeout` ran out: signal it as its duration would (kill -ALRM makes it act now).
            os.kill(proc.pid, signal.SIGALRM)
        else:
            names = how.split("+")
            os.kill(proc.pid, getattr(signal, names[0]))
            for name in names[1:]:
                time.sleep(0.3)
                if proc.poll() is None:
                    os.kill(proc.pid, getattr(signal, name))
        out, err = proc.communicate(timeout=exit_timeout)
        after = time.monotonic() - signalled
        left = tuple(probe_containers(docker))
        return Interrupted(proc.returncode, after, left, at_signal, out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


class SlowProxy:
    """A unix socket at `path` forwarding to `target`, holding every request `delay` seconds before
    passing it on: a daemon that answers, slowly. Use as a context manager."""

    def __init__(self, path: str, target: str, delay: float) -> None:
        self.path, self.target, self.delay = path, target, delay
        self._server: socket.socket | None = None
        self._closed = threading.Event()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def __enter__(self) -> "SlowProxy":
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True, name="slow-proxy").start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closed.set()
        if self._server is not None:
            self._server.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def _accept(self) -> None:
        assert self._server is not None
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, self.delay), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, 0.0), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, delay: float) -> None:
        try:
            while not self._closed.is_set():
                data = src.recv(65536)
                if not data:
                    break
                if delay:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
