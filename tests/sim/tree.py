"""The simulated host's files under a temp root, read by `gpudoctor --root <tree>`.

`build_tree(root, host)` lays out what a host with the described GPUs shows: `/sys/bus/pci`,
`/proc/driver/nvidia`, `/proc/devices`, `/sys/module`, `/dev/nvidia*` (the host-layer part comes from
`tests/support/hosttree.py` when it is available), plus the driver's userspace (`usr/bin/nvidia-smi`
stand-in, `libcuda.so.<ver>`, `libnvidia-ml.so.<ver>`).

`write_dockerd_proc(root, pid)` gives the tree a `/proc/<pid>` for the private dockerd as the
simulated host would show it: `comm` dockerd, a command line with `--config-file
/etc/docker/daemon.json`, an environment whose PATH holds the host's `/usr/bin` (where the stand-in
toolkit lives in the tree), and the real process's `stat`/`status` (start time, uid). gpudoctor finds
the pid through the daemon socket (SO_PEERCRED) and reads the rest under `--root`, so it judges the
private daemon as the simulated host's dockerd.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Mapping

from tests.sim.host import NVIDIA_MAJOR, NVIDIACTL_MINOR, SimHost
from tests.sim.standin import SIM_DIR
from tests.sim.toolkit import install_driver_userspace

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _mknod(path: Path, major: int, minor: int, mode: int = 0o666) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    try:
        os.mknod(path, mode | 0o020000, os.makedev(major, minor))  # S_IFCHR
        os.chmod(path, mode)
    except PermissionError:
        path.write_text(f"simulated character device {major}:{minor}\n")


def device_nodes(host: SimHost) -> list[tuple[str, int, int, int]]:
    """(path, major, minor, mode) of every NVIDIA device node the simulated host has."""
    nodes = [(g.dev_node, NVIDIA_MAJOR, g.minor, 0o666) for g in host.gpus]
    nodes.append(("/dev/nvidiactl", NVIDIA_MAJOR, NVIDIACTL_MINOR, 0o666))
    if host.uvm_nodes:
        nodes += [("/dev/nvidia-uvm", host.uvm_major, 0, 0o666), ("/dev/nvidia-uvm-tools", host.uvm_major, 1, 0o666)]
    # nvidia-cap1/2 (MIG config/monitor) exist on every host (tests/fixtures/real-h100-host/dev-listing.txt).
    nodes += [("/dev/nvidia-caps/nvidia-cap1", host.caps_major, 1, 0o400), ("/dev/nvidia-caps/nvidia-cap2", host.caps_major, 2, 0o444)]
    for _, m in host.mig_devices:
        nodes += [(f"/dev/nvidia-caps/nvidia-cap{c}", host.caps_major, c, 0o444) for c in (m.gi_cap_minor, m.ci_cap_minor)]
    return nodes


def _host_layer(root: Path, host: SimHost) -> None:
    """The kernel-visible part: hosttree when present, else just the device nodes."""
    try:
        from tests.support import hosttree  # noqa: F401  (host-layer engineer's builder)
    except ImportError:
        hosttree = None
    if hosttree is not None and hasattr(hosttree, "build_from_sim"):
        hosttree.build_from_sim(root, host)  # type: ignore[attr-defined]
        return
    for path, major, minor, mode in device_nodes(host):
        _mknod(root / path.lstrip("/"), major, minor, mode)


def build_tree(root: str | Path, host: SimHost, *, driver: bool = True) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _host_layer(root, host)
    if driver:
        install_driver_userspace(root, host)
    host.save(root / SIM_DIR / "host.json")
    (root / "etc/docker").mkdir(parents=True, exist_ok=True)
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    link = root / "usr/sbin/dockerd"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.realpath(dockerd))
    return root


def write_dockerd_proc(
    root: str | Path,
    pid: int,
    *,
    socket: str = "/var/run/docker.sock",
    config_file: str = "/etc/docker/daemon.json",
    path_env: str = HOST_PATH,
    extra_env: Mapping[str, str] | None = None,
) -> Path:
    """`<root>/proc/<pid>/…` for the private dockerd, in the simulated host's terms (see module doc)."""
    root = Path(root)
    proc = root / "proc"
    proc.mkdir(parents=True, exist_ok=True)
    for old in proc.iterdir():  # the previous dockerd's entry (a restart changes the pid)
        if old.name.isdigit() and old.is_dir() and (old / "comm").exists() and (old / "comm").read_text().strip() == "dockerd":
            shutil.rmtree(old)
    d = proc / str(pid)
    d.mkdir()
    (d / "comm").write_text("dockerd\n")
    argv = ["/usr/sbin/dockerd", "--config-file", config_file, "-H", f"unix://{socket}"]
    (d / "cmdline").write_text("\0".join(argv) + "\0")
    env = {"PATH": path_env, "HOME": "/root", "LANG": "C.UTF-8", "NOTIFY_SOCKET": "/run/systemd/notify"}
    env.update(extra_env or {})
    (d / "environ").write_text("".join(f"{k}={v}\0" for k, v in env.items()))
    for name in ("stat", "status"):
        try:
            (d / name).write_text(Path(f"/proc/{pid}/{name}").read_text())
        except OSError:
            pass
    (d / "exe").symlink_to("/usr/sbin/dockerd")
    stat_link = proc / "stat"
    if not stat_link.exists():
        stat_link.symlink_to("/proc/stat")  # btime: start times are real
    return d
