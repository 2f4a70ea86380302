"""A private Docker daemon for tests: its own socket, data-root, exec-root, pidfile and config file.

Why a private daemon (docs/design.md "Tests"): everything Docker does — daemon errors, runtimes,
`daemon.json` drift, probe containers — is tested against a real engine, and each test can restart
its daemon with another `daemon.json` without touching the system-wide one.

    d = PrivateDockerd(None, {"runtimes": {...}}, path_prepend=[stub_bin])
    d.start()
    d.docker("run", "--rm", "probe:busybox", "true")
    d.restart({"default-runtime": "nvidia", ...})
    d.write_config({...})          # edit the file only: the live daemon does not see it
    d.stop()                       # removes containers, kills dockerd + its containerd + shims, unmounts, rm -rf

The config file holds only what the test asks for, plus `"iptables": false, "bridge": "none"` (a
second daemon must not touch the host's firewall or docker0). Sockets and directories are passed as
flags, so a test's `daemon.json` must not repeat them (dockerd refuses directives given both ways).

Which engine: `engine=` (tests/support/engines.py) picks the dockerd binary, the bin dir put first on
its PATH (its own containerd, shim, runc) and the docker CLI; without it, the system's dockerd.

The pytest side: `docker_engine` (session scope) is parametrized by engine (test ids `docker20`,
`docker29`): each test that uses it, or `dockerd_factory` / `private_dockerd`, runs once per engine,
and skips for an engine this machine lacks. `dockerd_factory` hands out one shared daemon per
(config, PATH, env) and private daemons that tests may restart; every daemon is stopped at the end
of the session, and at interpreter exit as a last resort.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from tests.support.engines import Engine, engines, find_docker_cli, find_dockerd, system_engine

BASE_CONFIG: dict[str, Any] = {"iptables": False, "bridge": "none"}

# Applets the probe image needs (issue 3 brief); busybox-static ships every one of them.
BUSYBOX_APPLETS = (
    "sh", "ls", "cat", "env", "grep", "head", "sed", "awk", "tr", "true", "sleep", "stat", "readlink",
)
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DockerdError(RuntimeError):
    """The private daemon did not start (or stop); the message carries the tail of its log."""


def find_busybox() -> str | None:
    """The static busybox binary itself (symlinks resolved: `tar.add` would copy a link, not the file)."""
    found = _find_busybox_path()
    return os.path.realpath(found) if found else None


def _find_busybox_path() -> str | None:
    for candidate in BUSYBOX_PATHS:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def busybox_rootfs_tar() -> bytes:
    """A rootfs (tar) holding the static busybox and its applet links: the probe image, for `docker import` or
    `podman import` (tests/support/podman.py)."""
    busybox = find_busybox()
    if busybox is None:
        raise DockerdError("no static busybox (install Debian's busybox-static: /bin/busybox)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "dev", "proc", "sys", "tmp", "etc"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
    return buf.getvalue()


_LIVE: "set[PrivateDockerd]" = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for d in live:
        try:
            d.close()
        except Exception:
            pass


atexit.register(_stop_all_at_exit)


class PrivateDockerd:
    """One private dockerd. `workdir=None` makes (and later removes) a short temp dir under /tmp.

    The workdir is mode 0755 so that a non-root user reaches the socket itself (the
    permission-denied test needs EACCES from the socket, not from a parent directory).
    """

    def __init__(
        self,
        workdir: Path | str | None,
        config: Mapping[str, Any] | None = None,
        path_prepend: Sequence[str | Path] = (),
        env: Mapping[str, str] | None = None,
        *,
        dockerd: str | None = None,
        base_config: Mapping[str, Any] = BASE_CONFIG,
        engine: Engine | None = None,
    ) -> None:
        self._own_workdir = workdir is None
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="gpd-dockerd-", dir="/tmp")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        if engine is None and dockerd is None:
            engine = system_engine()
        self.engine = engine
        self.dockerd = dockerd or (engine.dockerd if engine else None) or find_dockerd() or "dockerd"
        # The engine's own bin dir (containerd, containerd-shim-runc-v2, runc, docker-proxy) comes right
        # after the test's own dirs: dockerd starts the containerd it finds first on its PATH.
        self.engine_path = (engine.bin_dir,) if engine and engine.bin_dir else ()
        self.cli = engine.cli if engine and engine.cli else None
        self.base_config = dict(base_config)
        self.config: dict[str, Any] = dict(config or {})
        self.path_prepend = tuple(str(p) for p in path_prepend)
        self.extra_env = dict(env or {})
        # A namespace of our own: should a system containerd be running, this daemon's
        # containers never mix with another daemon's.
        # containerd namespaces must match ^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$, and a mkdtemp suffix
        # may hold "_" next to "-" ("gpd-_4c8_6t5" is refused): keep letters and digits only.
        self.namespace = "gpd" + re.sub(r"[^A-Za-z0-9]", "", self.workdir.name.replace("gpd-dockerd-", ""))[-12:]
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: io.BufferedWriter | None = None
        self._closed = False

    # -- paths ------------------------------------------------------------------------------
    @property
    def socket(self) -> Path:
        return self.workdir / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "daemon.json"

    @property
    def data_root(self) -> Path:
        return self.workdir / "data"

    @property
    def exec_root(self) -> Path:
        return self.workdir / "exec"

    @property
    def pidfile(self) -> Path:
        return self.workdir / "dockerd.pid"

    @property
    def log_path(self) -> Path:
        return self.workdir / "dockerd.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    # -- config -----------------------------------------------------------------------------
    def effective_config(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        merged = dict(self.base_config)
        merged.update(self.config if config is None else config)
        return merged

    def write_config(self, config: Mapping[str, Any] | str | bytes) -> None:
        """Write daemon.json without restarting. A str/bytes is written verbatim (for invalid JSON)."""
        if isinstance(config, bytes):
            self.config_path.write_bytes(config)
            return
        if isinstance(config, str):
            self.config_path.write_text(config)
            return
        self.config = dict(config)
        self.config_path.write_text(json.dumps(self.effective_config(), indent=4, sort_keys=True) + "\n")

    def daemon_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        base_path = self.extra_env.get("PATH", os.environ.get("PATH") or DEFAULT_PATH)
        # dockerd needs containerd/runc/docker-init from sbin dirs even when the caller's PATH lacks them.
        for extra in DEFAULT_PATH.split(":"):
            if extra not in base_path.split(":"):
                base_path += ":" + extra
        env.update({k: v for k, v in self.extra_env.items() if k != "PATH"})
        env["PATH"] = ":".join([*self.path_prepend, *self.engine_path, base_path])
        return env

    def argv(self) -> list[str]:
        return [
            self.dockerd,
            "--config-file", str(self.config_path),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.pidfile),
            "-H", self.url,
            "--containerd-namespace", self.namespace,
            "--containerd-plugins-namespace", self.namespace + "-plugins",
        ]

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = 30) -> "PrivateDockerd":
        if self._closed:
            raise DockerdError("this PrivateDockerd was closed")
        if self.running:
            return self
        if not self.config_path.exists():
            self.write_config(self.config)
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._log_file = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=self.daemon_env(),
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._reap_after_exit()
                raise DockerdError(f"dockerd exited with {self._proc.returncode}:\n{self.log_tail()}")
            if self.socket.exists() and self._ping():
                return self
            time.sleep(0.05)
        self._terminate()
        raise DockerdError(f"dockerd did not answer on {self.socket} within {timeout:g}s:\n{self.log_tail()}")

    def _ping(self) -> bool:
        import socket as socket_mod

        s = socket_mod.socket(socket_mod.AF_UNIX, socket_mod.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(str(self.socket))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = s.recv(64)
            return b" 200 " in data
        except OSError:
            return False
        finally:
            s.close()

    def stop(self, timeout: float = 20) -> None:
        """Remove every container, stop dockerd, and kill whatever of it is left (containerd, shims)."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                self.remove_containers()
            except Exception:
                pass
        self._terminate(timeout)

    def restart(self, config: Mapping[str, Any] | str | None = None, timeout: float = 30) -> "PrivateDockerd":
        """Stop, optionally write a new daemon.json, start again (containers are removed)."""
        self.stop()
        if config is not None:
            self.write_config(config)
        return self.start(timeout)

    def close(self) -> None:
        """Stop and remove the workdir (when this object made it)."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            with _LIVE_LOCK:
                _LIVE.discard(self)
            self._unmount_all()
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "PrivateDockerd":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _terminate(self, timeout: float = 20) -> None:
        proc = self._proc
        containerd_pid = self._containerd_pid()
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc is not None:
            self._reap_after_exit(containerd_pid)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _reap_after_exit(self, containerd_pid: int | None = None) -> None:
        """dockerd is gone: kill its containerd and shims by pid (they name our exec-root)."""
        pids = set(self._our_pids())
        if containerd_pid:
            pids.add(containerd_pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in pids if self._is_ours(p)]
            if not alive:
                break
            for p in alive:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and any(self._is_ours(p) for p in alive):
                time.sleep(0.05)
        # A containerd whose dockerd was SIGKILLed may stay a zombie (nothing reaps it here); dockerd would
        # take its pid file for a live containerd on the next start and wait for it in vain.
        try:
            (self.exec_root / "containerd" / "containerd.pid").unlink()
        except OSError:
            pass
        self._unmount_all()

    def _containerd_pid(self) -> int | None:
        try:
            return int((self.exec_root / "containerd" / "containerd.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        """A live (not zombie) process whose command line names this daemon's workdir."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
            if state == b"Z":
                return False
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, IndexError):
            return False
        return str(self.workdir).encode() in cmdline or self.namespace.encode() in cmdline

    def _our_pids(self) -> Iterator[int]:
        me = os.getpid()
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != me and self._is_ours(int(name)):
                yield int(name)

    def _unmount_all(self) -> None:
        prefix = str(self.workdir)
        try:
            with open("/proc/self/mounts") as f:
                points = [line.split()[1] for line in f]
        except OSError:
            return
        points = [p.encode().decode("unicode_escape") for p in points]
        for point in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)

    # -- talking to it ----------------------------------------------------------------------
    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a gpudoctor (or docker CLI) subprocess aimed at this daemon."""
        env = {k: v for k, v in (base if base is not None else os.environ).items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.url
        return env

    def docker(
        self, *args: str, input: bytes | None = None, timeout: float = 60, check: bool = False, cli: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this daemon (text output): `cli`, else the engine's own, else the one on PATH."""
        cli = cli or self.cli or find_docker_cli()
        if cli is None:
            raise DockerdError("no docker CLI found on PATH")
        env = self.env()
        env["DOCKER_CONFIG"] = str(self.workdir / "cli-config")  # no user contexts, no credential helpers
        proc = subprocess.run(
            [cli, "-H", self.url, *args],
            input=input,
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        result = subprocess.CompletedProcess(
            proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
        )
        if check and result.returncode != 0:
            raise DockerdError(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def info(self) -> dict[str, Any]:
        return json.loads(self.docker("info", "--format", "{{json .}}", check=True).stdout)

    def import_busybox(self, tag: str = "probe:busybox") -> str:
        """`docker import` a rootfs holding the static busybox and applet symlinks; returns the image id."""
        existing = self.docker("image", "inspect", "--format", "{{.Id}}", tag)
        if existing.returncode == 0:
            return existing.stdout.strip()
        out = self.docker("import", "--change", 'CMD ["/bin/sh"]', "-", tag, input=busybox_rootfs_tar(), check=True)
        return out.stdout.strip()

    def containers(self, all: bool = True) -> list[str]:
        args = ["ps", "-q", "--no-trunc"] + (["-a"] if all else [])
        return [line for line in self.docker(*args, check=True).stdout.split() if line]

    def remove_containers(self) -> list[str]:
        ids = self.containers()
        if ids:
            self.docker("rm", "-f", *ids, timeout=60)
        return ids

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"PrivateDockerd({self.url}, running={self.running})"


class DockerdFactory:
    """Hands out daemons: `shared(...)` one per (config, PATH, env) for the session — do not restart
    those —, `private(...)` a fresh one the test owns (restart it at will). All are closed by `close()`."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self._shared: dict[str, PrivateDockerd] = {}
        self._all: list[PrivateDockerd] = []
        self._lock = threading.Lock()

    @staticmethod
    def _key(config: Mapping[str, Any] | None, path_prepend: Sequence[str | Path], env: Mapping[str, str] | None) -> str:
        return json.dumps([config or {}, [str(p) for p in path_prepend], dict(env or {})], sort_keys=True)

    def shared(
        self,
        config: Mapping[str, Any] | None = None,
        path_prepend: Sequence[str | Path] = (),
        env: Mapping[str, str] | None = None,
        busybox: bool = False,
    ) -> PrivateDockerd:
        key = self._key(config, path_prepend, env)
        with self._lock:
            d = self._shared.get(key)
            if d is None or not d.running:
                d = PrivateDockerd(None, config, path_prepend, env, engine=self.engine)
                self._all.append(d)
                self._shared[key] = d
                d.start()
        if busybox:
            d.import_busybox()
        return d

    def private(
        self,
        config: Mapping[str, Any] | None = None,
        path_prepend: Sequence[str | Path] = (),
        env: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> PrivateDockerd:
        d = PrivateDockerd(None, config, path_prepend, env, engine=self.engine)
        with self._lock:
            self._all.append(d)
        if start:
            d.start()
        return d

    def close(self) -> None:
        with self._lock:
            daemons, self._all, self._shared = self._all, [], {}
        for d in daemons:
            try:
                d.close()
            except Exception:
                pass


try:
    import pytest
except ImportError:  # the harness is usable without pytest (e.g. from a script)
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session", params=engines(), ids=[e.id for e in engines()])
    def docker_engine(request: pytest.FixtureRequest) -> Engine:
        """The engine this variant runs on; skips where it is absent, fails where it is listed but broken."""
        engine: Engine = request.param
        if engine.broken:
            pytest.fail(f"{engine.id}: {engine.broken}", pytrace=False)
        if engine.unavailable:
            pytest.skip(f"{engine.id}: {engine.unavailable}")
        if os.geteuid() != 0:
            pytest.skip("a private dockerd needs root")
        return engine

    @pytest.fixture(scope="session")
    def dockerd_factory(docker_engine: Engine) -> Iterator[DockerdFactory]:
        """Session-wide factory of private dockerds of `docker_engine`."""
        factory = DockerdFactory(docker_engine)
        try:
            yield factory
        finally:
            factory.close()

    @pytest.fixture
    def private_dockerd(dockerd_factory: DockerdFactory) -> Iterator[PrivateDockerd]:
        """A started daemon that this test owns and may restart; closed after the test."""
        d = dockerd_factory.private({})
        try:
            yield d
        finally:
            d.close()
