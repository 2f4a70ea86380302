"""The dockerd process behind the socket: pid, command line, PATH, start time, and which NVIDIA hooks
that PATH holds.

Why it matters (docs/docker-gpu-internals.md §1.3): dockerd registers its `--gpus` driver once, at
process start, only if `nvidia-container-runtime-hook` (29.2+: or `nvidia-cdi-hook`) is on *its own*
PATH. So the user's PATH proves nothing; dockerd's PATH and start time do. Reading
`/proc/<pid>/environ` needs root (or the daemon's uid): when it cannot be read the fact says so.

How the pid is found: SO_PEERCRED on the daemon's unix socket (the process that listens); with
systemd socket activation that is pid 1, so then the pidfile named on the command line, the default
`/var/run/docker.pid`, and finally a scan of /proc for `dockerd`.
"""

from __future__ import annotations

import os
from dataclasses import field
from typing import Mapping

from ..frozen import frozen
from .docker import DOCKER_FACT_TIMEOUT_S, DockerFacts
from .docker_client import socket_peer_pid
from .hostfiles import read_file
from .registry import FactContext, fact

HOOKS = ("nvidia-container-runtime-hook", "nvidia-cdi-hook")
DEFAULT_PIDFILE = "/var/run/docker.pid"


@frozen
class HookSighting:
    name: str
    path: str | None  # where dockerd's PATH finds it; None = not on that PATH
    changed_at: float | None  # st_ctime of the binary (≈ install time: dpkg keeps the build mtime)


@frozen
class DockerdProcess:
    found: bool
    reason: str | None = None  # why not found / what could not be known
    pid: int | None = None
    how: str | None = None  # socket-peer | pidfile | proc-scan
    uid: int | None = None
    exe: str | None = None
    cmdline: tuple[str, ...] = ()
    config_file: str | None = None  # --config-file from the command line (None = the default)
    flags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # GPU-relevant flags given on the command line
    environ_readable: bool = False
    environ_error: str | None = None
    path_env: str | None = None
    xdg_config_home: str | None = None
    home: str | None = None
    start_time: float | None = None  # epoch seconds
    hooks: tuple[HookSighting, ...] = ()
    # Each runtime the daemon lists → where its binary is ("" = missing). Relative paths are looked up
    # on dockerd's PATH (or, when that is unknown, this process's PATH plus the usual bin dirs).
    runtime_paths: Mapping[str, str] = field(default_factory=dict)

    def hook(self, name: str) -> HookSighting | None:
        return next((h for h in self.hooks if h.name == name), None)

    @property
    def is_snap(self) -> bool:
        return bool(self.exe and self.exe.startswith("/snap/"))

    @property
    def is_rootless(self) -> bool:
        return self.uid not in (None, 0)


def parse_flags(cmdline: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The flags that matter for GPUs: --config-file, --add-runtime, --default-runtime, --cdi-spec-dir,
    --feature, --exec-opt, --data-root, -H/--host, --pidfile, --rootless."""
    wanted = {
        "--config-file", "--add-runtime", "--default-runtime", "--cdi-spec-dir", "--feature",
        "--exec-opt", "--data-root", "--host", "-H", "--pidfile", "--rootless",
    }
    flags: dict[str, list[str]] = {}
    i = 1
    while i < len(cmdline):
        arg = cmdline[i]
        name, value = (arg.split("=", 1) + [None])[:2] if arg.startswith("-") else (None, None)
        if name in wanted:
            if name == "--rootless":
                flags.setdefault(name, []).append(value or "true")
            elif value is None and i + 1 < len(cmdline):
                flags.setdefault(name, []).append(cmdline[i + 1])
                i += 1
            elif value is not None:
                flags.setdefault(name, []).append(value)
        i += 1
    if "-H" in flags:
        flags.setdefault("--host", []).extend(flags.pop("-H"))
    return {k: tuple(v) for k, v in flags.items()}


def _read(ctx: FactContext, path: str) -> str | None:
    return read_file(ctx.host, path).text


def _is_dockerd(ctx: FactContext, pid: int) -> bool:
    comm = _read(ctx, f"/proc/{pid}/comm")
    return bool(comm and comm.strip() == "dockerd")


# PATH: where dockerd looks for the NVIDIA hooks; HOME/XDG_CONFIG_HOME: a rootless daemon's daemon.json.
ENVIRON_KEYS = ("PATH", "HOME", "XDG_CONFIG_HOME")


def _environ_subset(real_path: str, keys: tuple[str, ...]) -> dict[str, str]:
    """The named variables of a /proc/<pid>/environ file (NUL-separated)."""
    with open(real_path, "rb") as f:
        raw = f.read(1 << 20).decode("utf-8", "replace")
    pairs = (kv.split("=", 1) for kv in raw.split("\0") if "=" in kv)
    return {k: v for k, v in pairs if k in keys}


def _cmdline(ctx: FactContext, pid: int) -> tuple[str, ...]:
    raw = _read(ctx, f"/proc/{pid}/cmdline") or ""
    return tuple(a for a in raw.split("\0") if a)


def _find_pid(ctx: FactContext, docker: DockerFacts) -> tuple[int | None, str | None, str]:
    """(pid, how, note)."""
    if sock := docker.socket_path:
        peer = ctx.host.call("docker.socket_peer", [sock], lambda: socket_peer_pid(sock),
                             expect=(int, type(None)))
        if peer and _is_dockerd(ctx, peer):
            return peer, "socket-peer", ""
    for pidfile in (DEFAULT_PIDFILE, "/run/docker.pid"):
        text = _read(ctx, pidfile)
        if text and text.strip().isdigit() and _is_dockerd(ctx, int(text.strip())):
            pid = int(text.strip())
            hosts = parse_flags(_cmdline(ctx, pid)).get("--host", ())
            if not docker.socket_path or not hosts or any(docker.socket_path in h or h.startswith("fd://") for h in hosts):
                return pid, "pidfile", ""
    try:
        entries = ctx.host.list_dir("/proc")
    except OSError as e:
        return None, None, f"cannot list /proc: {e}"
    candidates = [int(e) for e in entries if e.isdigit() and _is_dockerd(ctx, int(e))]
    if not candidates:
        return None, None, "no dockerd process is visible from here (another namespace, a VM, or a remote host)"
    matching = []
    for pid in candidates:
        hosts = parse_flags(_cmdline(ctx, pid)).get("--host", ())
        if docker.socket_path and any(docker.socket_path in h for h in hosts):
            return pid, "proc-scan", ""
        if not hosts or any(h.startswith("fd://") for h in hosts):
            matching.append(pid)
    if len(candidates) == 1:
        return candidates[0], "proc-scan", ""
    if len(matching) == 1 and docker.socket_path in (None, "/var/run/docker.sock", "/run/docker.sock"):
        return matching[0], "proc-scan", ""
    return None, None, f"{len(candidates)} dockerd processes; none is clearly the one behind {docker.endpoint}"


def _start_time(ctx: FactContext, pid: int) -> float | None:
    stat = _read(ctx, f"/proc/{pid}/stat")
    proc_stat = _read(ctx, "/proc/stat")
    if not stat or not proc_stat:
        return None
    try:
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime, in clock ticks since boot
        btime = next(int(line.split()[1]) for line in proc_stat.splitlines() if line.startswith("btime "))
    except (IndexError, ValueError, StopIteration):
        return None
    hz = ctx.host.call("sysconf", ["SC_CLK_TCK"], lambda: os.sysconf("SC_CLK_TCK"), expect=(int, type(None)))
    return btime + ticks / float(hz or 100)


def _ctime(ctx: FactContext, path: str) -> float | None:
    def produce() -> float:
        return os.stat(ctx.host.path(path)).st_ctime

    try:
        return float(ctx.host.call("stat.ctime", [path], produce, expect=(int, float)))
    except OSError:
        return None


def _uid(ctx: FactContext, pid: int) -> int | None:
    status = _read(ctx, f"/proc/{pid}/status") or ""
    for line in status.splitlines():
        if line.startswith("Uid:"):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _runtime_paths(ctx: FactContext, docker: DockerFacts, path_env: str | None) -> dict[str, str]:
    if path_env is None:
        path_env = ":".join(dict.fromkeys([*(ctx.host.getenv("PATH") or "").split(":"), *FALLBACK_PATH.split(":")]))
    out = {}
    for rt in docker.runtimes:
        if not rt.path:
            continue
        if rt.path.startswith("/"):
            out[rt.name] = rt.path if ctx.host.exists(rt.path) else ""
        else:
            out[rt.name] = ctx.host.which(rt.path, path=path_env) or ""
    return out


@fact("dockerd_process", timeout_s=DOCKER_FACT_TIMEOUT_S + 10)  # waits for the docker fact
def dockerd_process_fact(ctx: FactContext) -> DockerdProcess:
    """The dockerd behind the socket: pid, command line, PATH, start time, hooks on its PATH."""
    docker: DockerFacts = ctx.get("docker")
    if not docker.is_local:
        return DockerdProcess(False, reason=f"the daemon is remote ({docker.endpoint}); its process cannot be read from here")
    if docker.reachable and (docker.is_desktop or docker.is_podman):
        return DockerdProcess(False, reason="the engine is not a local dockerd (Docker Desktop VM or Podman)")
    pid, how, note = _find_pid(ctx, docker)
    if pid is None:
        return DockerdProcess(False, reason=note, runtime_paths=_runtime_paths(ctx, docker, None))
    cmdline = _cmdline(ctx, pid)
    flags = parse_flags(cmdline)
    exe: str | None
    try:
        exe = ctx.host.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = cmdline[0] if cmdline else None
    environ_error = None
    env: dict[str, str] = {}
    try:
        # Only the variables gpudoctor uses leave this call: a daemon's environment can hold
        # secrets, and whatever a Host answers ends up in support bundles.
        env = ctx.host.call("proc.environ", [pid, list(ENVIRON_KEYS)],
                            lambda: _environ_subset(ctx.host.path(f"/proc/{pid}/environ"), ENVIRON_KEYS),
                            expect=dict)
    except OSError as e:
        environ_error = f"/proc/{pid}/environ: {e.strerror or e} (run gpudoctor as root to read dockerd's PATH)"
    path_env = env.get("PATH") if not environ_error else None
    if not environ_error and path_env is None:  # no PATH in the environment
        # dockerd with an empty environment searches Go's default: none; treat as "/usr/sbin:/usr/bin:/sbin:/bin".
        path_env = ""
    hooks = []
    for name in HOOKS:
        where = ctx.host.which(name, path=path_env) if path_env is not None else None
        hooks.append(HookSighting(name, where, _ctime(ctx, where) if where else None))
    return DockerdProcess(
        True,
        reason=environ_error,
        pid=pid,
        how=how,
        uid=_uid(ctx, pid),
        exe=exe,
        cmdline=cmdline,
        config_file=(flags.get("--config-file") or (None,))[-1],
        flags=flags,
        environ_readable=environ_error is None,
        environ_error=environ_error,
        path_env=path_env,
        xdg_config_home=env.get("XDG_CONFIG_HOME"),
        home=env.get("HOME"),
        start_time=_start_time(ctx, pid),
        hooks=tuple(hooks) if path_env is not None else (),
        runtime_paths=_runtime_paths(ctx, docker, path_env),
    )
