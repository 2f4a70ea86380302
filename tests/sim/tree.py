"""The simulated host's files under a temp root, read by `gpudoctor --root <tree>`.

`build_tree(root, host)` lays out what a host with the described GPUs shows: `/sys/bus/pci`,
`/proc/driver/nvidia`, `/proc/devices`, `/sys/module`, `/dev/nvidia*` (the host-layer part is built by
`tests/support/hosttree.py` from the description converted by `host_spec`), plus the driver's userspace (`usr/bin/nvidia-smi`
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
from typing import Any, Mapping

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


def host_spec(host: SimHost, **changes: Any) -> Any:
    """The host-layer engineer's `HostSpec` (tests/support/hosttree.py) for this description.

    NVML init errors map to the host state that causes them: 9 (driver not loaded) -> no nvidia
    modules; 12 (library not found) -> no libnvidia-ml; 18 (version mismatch) -> a library of
    another version. `changes` are further HostSpec fields (e.g. `char_links=False`)."""
    from tests.support.hosttree import GpuSpec, HostSpec

    gpus = tuple(
        GpuSpec(
            index=g.index,
            uuid=g.uuid,
            name=g.name,
            bus_id=g.sysfs_bus_id,
            minor=g.minor,
            device_id=g.pci_device_id,
            memory_total=g.memory_total,
            persistence_mode=g.persistence_mode,
            compute_mode=g.compute_mode,
            mig=(g.mig_current, g.mig_pending),
            mig_devices=tuple((m.uuid, f"{g.name} MIG {m.profile}") for m in g.migs),
        )
        for g in host.gpus
    )
    modules: tuple[str, ...] = ("nvidia", "nvidia_uvm", "nvidia_modeset", "nvidia_drm")
    if not host.uvm_nodes:
        modules = tuple(m for m in modules if m != "nvidia_uvm")
    fields: dict[str, Any] = {
        "gpus": gpus,
        "driver_version": host.driver_version,
        "uvm_major": host.uvm_major,
        "caps_major": host.caps_major,
        "cuda_driver_version": host.cuda_driver_version,
        "modules": modules,
    }
    if host.nvml_init_error == 9:
        fields["modules"] = ()
    elif host.nvml_init_error == 12:
        fields["nvml_library"] = False
    elif host.nvml_init_error == 18:
        fields["library_version"] = "570.133.20" if host.driver_version != "570.133.20" else "575.57.08"
    fields.update(changes)
    return HostSpec(**fields)


def _host_layer(root: Path, host: SimHost, changes: Mapping[str, Any]) -> None:
    """The kernel-visible part (sysfs, procfs, /dev) from tests/support/hosttree.py, plus the MIG
    instances' capability nodes (hosttree makes only nvidia-cap1/2)."""
    from tests.support import hosttree

    spec = host_spec(host, **changes)
    hosttree.build_tree(root, spec)
    if "nvidia" in spec.modules:
        for _, m in host.mig_devices:
            for c in (m.gi_cap_minor, m.ci_cap_minor):
                _mknod(root / f"dev/nvidia-caps/nvidia-cap{c}", host.caps_major, c, 0o444)


def build_tree(root: str | Path, host: SimHost, *, driver: bool = True, host_changes: Mapping[str, Any] | None = None) -> Path:
    """The whole simulated host under `root`. `driver=False`: no driver userspace (nvidia-smi,
    libraries); `host_changes`: HostSpec fields for host-layer breakage (see `host_spec`)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _host_layer(root, host, host_changes or {})
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
    for name in ("stat", "status"):  # the real process's: start time and uid are what they are
        try:
            (d / name).write_text(Path(f"/proc/{pid}/{name}").read_text())
        except OSError:
            pass
    (d / "exe").symlink_to("/usr/sbin/dockerd")
    # btime: start times are real. A copy, not a link to /proc/stat: under --root an absolute link
    # names the tree's own path (gpudoctor resolves links inside the root), never this machine's.
    (proc / "stat").write_text(Path("/proc/stat").read_text())
    return d
