"""Checks of the devices layer: /dev/nvidia* nodes exist, are the right character devices, and are open to all."""

from __future__ import annotations

from ..checking import Check, check
from ..facts.devices import CONTROL_NODES, NVIDIA_MAJOR, NVIDIACTL_MINOR, DeviceFacts, DeviceNode
from ..facts.kernel import KernelFacts
from ..facts.platform import PlatformFacts
from ..links import TOOLKIT_TROUBLESHOOTING
from ..model import Fix, Layer, Result, failed, passed, skipped, warned
from .platform import not_on_wsl

MODPROBE_LINK = "https://github.com/NVIDIA/nvidia-modprobe"



def _expected(kernel: KernelFacts) -> dict[str, tuple[int | None, int]]:
    """Control node → (major, minor) as the running kernel registered them. nvidia-uvm's major is
    dynamic (238 on our H100 capture): a node left over from an earlier load can carry a stale one."""
    front = kernel.frontend_major or NVIDIA_MAJOR
    uvm = kernel.uvm_major
    return {
        "/dev/nvidiactl": (front, NVIDIACTL_MINOR),
        "/dev/nvidia-uvm": (uvm, 0),
        "/dev/nvidia-uvm-tools": (uvm, 1),
    }


def _recreate_fix(path: str, create: tuple[str, ...]) -> Fix:
    return Fix(
        f"Remove the bad {path} and let nvidia-modprobe create it again.",
        (f"sudo rm -r {path}", *create),
        MODPROBE_LINK,
    )


CONTROL_CREATE = ("sudo nvidia-modprobe -u -c=0",)
CONTROL_FIX = Fix(
    "Create the missing control nodes (and load nvidia-uvm). They are made on demand by nvidia-modprobe, not by "
    "devtmpfs, so a headless host that never ran CUDA may lack them; regenerate CDI specs afterwards if you use CDI.",
    (
        "sudo nvidia-modprobe -u -c=0",
        "sudo nvidia-ctk system create-device-nodes --control-devices --load-kernel-modules",
        "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml",
    ),
    TOOLKIT_TROUBLESHOOTING,
)


_KIND_WORDS = {"file": "regular file", "dir": "directory", "block": "block device", "fifo": "named pipe", "socket": "socket"}


def _node_problem(node: DeviceNode, major: int | None, minor: int, create: tuple[str, ...]) -> Result | None:
    """A failing Result when `node` is not the character device major:minor, else None."""
    if node.problem and node.kind != "link":
        return warned(f"{node.path}: cannot inspect it: {node.problem}", subject=node.path)
    if node.kind == "link":
        return failed(f"{node.problem or node.path + ' is a symlink'}", _recreate_fix(node.path, create), subject=node.path)
    if not node.is_char:
        return failed(
            f"{node.path} is a {_KIND_WORDS.get(node.kind or '', 'strange file')}, not a character device",
            _recreate_fix(node.path, create),
            subject=node.path,
            evidence={"kind": node.kind},
        )
    if major is not None and node.major != major:
        return failed(
            f"{node.path} is character device {node.major}:{node.minor}, but the driver's major is {major} "
            "(a stale node from an earlier driver load?)",
            _recreate_fix(node.path, create),
            subject=node.path,
            evidence={"major": node.major, "expected_major": major},
        )
    if node.minor != minor:
        return failed(
            f"{node.path} is character device {node.major}:{node.minor}, expected minor {minor}",
            _recreate_fix(node.path, create),
            subject=node.path,
            evidence={"minor": node.minor, "expected_minor": minor},
        )
    return None


@check(
    "devices.control-nodes",
    "/dev/nvidiactl, /dev/nvidia-uvm and /dev/nvidia-uvm-tools exist",
    layer=Layer.DEVICES,
    needs=("platform", "kernel", "devices"),
    after=("kernel.module.loaded",),
)
def control_nodes(platform: PlatformFacts, kernel: KernelFacts, devices: DeviceFacts) -> tuple[Result, ...] | Result:
    """The driver's control nodes exist as character devices with the majors the kernel registered.

    Why: the toolkit injects /dev/nvidiactl and /dev/nvidia-uvm* into GPU containers; CDI specs only
    list nodes that existed when they were generated. Without /dev/nvidia-uvm, nvidia-smi works in
    the container but CUDA fails ("cudaGetDeviceCount returned 100 -> no CUDA-capable device is
    detected", "failed to stat CDI host device \"/dev/nvidia-uvm\"") — failure mode
    `uvm-or-control-nodes-missing`. A regular file or a stale major in their place fails the same way.

    Fix: `sudo nvidia-modprobe -u -c=0` (or `sudo nvidia-ctk system create-device-nodes
    --control-devices --load-kernel-modules`), then regenerate CDI specs.
    """
    skip = not_on_wsl(platform, "WSL2 has /dev/dxg instead of /dev/nvidia*")
    if skip:
        return skip
    if not devices.dev_readable:
        return warned(f"device nodes not checked: {devices.dev_problem}")
    results: list[Result] = []
    missing = [p for p in CONTROL_NODES if not devices.node(p).exists]
    if missing:
        results.append(
            failed(
                f"missing: {', '.join(missing)}",
                CONTROL_FIX,
                evidence={"missing": missing, "failure_mode": "uvm-or-control-nodes-missing"},
            )
        )
    for path, (major, minor) in _expected(kernel).items():
        node = devices.node(path)
        if node.exists:
            bad = _node_problem(node, major, minor, CONTROL_CREATE)
            if bad is not None:
                results.append(bad)
    if results:
        return tuple(results)
    found = [devices.node(p) for p in CONTROL_NODES]
    return passed(
        "control nodes present: " + ", ".join(f"{n.path} ({n.major}:{n.minor})" for n in found),
        evidence={n.path: f"{n.major}:{n.minor}" for n in found},
    )


@check(
    "devices.gpu-nodes",
    "Each GPU the driver knows has its /dev/nvidiaN node",
    layer=Layer.DEVICES,
    needs=("platform", "kernel", "devices"),
    after=("kernel.gpus.known",),
)
def gpu_nodes(platform: PlatformFacts, kernel: KernelFacts, devices: DeviceFacts) -> tuple[Result, ...] | Result:
    """For every GPU in /proc/driver/nvidia/gpus, /dev/nvidia<Device Minor> is character device 195:<minor>.

    Why: a GPU's node is what the toolkit mounts into the container and what NVML opens; a missing
    or wrong node makes that GPU unusable in containers even though the driver probed it (failure
    mode `uvm-or-control-nodes-missing`).

    Fix: `sudo nvidia-modprobe -c=<minor>` (or `sudo nvidia-ctk system create-device-nodes`).
    """
    skip = not_on_wsl(platform, "WSL2 has /dev/dxg instead of /dev/nvidia*")
    if skip:
        return skip
    if not devices.dev_readable:
        return warned(f"device nodes not checked: {devices.dev_problem}")
    front = kernel.frontend_major or NVIDIA_MAJOR
    minors = sorted({g.minor for g in kernel.gpus if g.minor is not None})
    if not minors:
        return skipped("the driver reports no GPU minor numbers")
    results: list[Result] = []
    for minor in minors:
        path = f"/dev/nvidia{minor}"
        node = devices.node(path)
        create = (f"sudo nvidia-modprobe -c={minor}",)
        if not node.exists:
            results.append(
                failed(
                    f"{path} is missing (the driver has a GPU with minor {minor})",
                    Fix(
                        "Create the GPU's device node, then regenerate CDI specs if you use CDI.",
                        (*create, "sudo nvidia-ctk system create-device-nodes"),
                        MODPROBE_LINK,
                    ),
                    subject=path,
                    evidence={"failure_mode": "uvm-or-control-nodes-missing"},
                )
            )
            continue
        bad = _node_problem(node, front, minor, create)
        results.append(bad or passed(f"{path} is character device {node.major}:{node.minor}", subject=path))
    stale = sorted(set(devices.gpu_nodes) - set(minors))
    if stale:
        results.append(
            passed(
                "extra nodes with no GPU behind them (harmless): " + ", ".join(f"/dev/nvidia{m}" for m in stale),
                evidence={"stale": stale},
            )
        )
    return tuple(results)


def _access_nodes(devices: DeviceFacts) -> list[DeviceNode]:
    """Nodes every GPU container gets: control nodes and /dev/nvidiaN. (/dev/nvidia-caps/* are
    deliberately root-only: 0400 for mig/config, 0444 for mig/monitor on our H100 capture.)"""
    paths = list(CONTROL_NODES) + [n.path for _, n in sorted(devices.gpu_nodes.items())]
    return [devices.node(p) for p in paths if devices.node(p).exists and devices.node(p).is_char]


@check(
    "devices.permissions",
    "NVIDIA device nodes are readable and writable by every user (0666)",
    layer=Layer.DEVICES,
    needs=("platform", "kernel", "devices"),
    after=("devices.control-nodes",),
)
def permissions(platform: PlatformFacts, kernel: KernelFacts, devices: DeviceFacts) -> tuple[Result, ...] | Result:
    """/dev/nvidiactl, /dev/nvidia-uvm* and /dev/nvidiaN have mode 0666, and the driver's
    DeviceFileMode parameter keeps it that way.

    Why: non-root container users, rootless Docker and user namespaces cannot open nodes restricted
    to a group (VirtualGL's `vglserver_config`, `NVreg_DeviceFileMode`/`NVreg_DeviceFileGID`): "Failed
    to initialize NVML: Insufficient Permissions", "nvidia-container-cli: initialization error: nvml
    error: insufficient permissions: unknown." — failure mode `device-node-permissions`.

    Fix: remove the NVreg_DeviceFile* options (`grep -rn NVreg_DeviceFile /etc/modprobe.d`) and
    reload the driver; or `--group-add <gid>` for the container; `sudo chmod 0666 /dev/nvidia*`
    lasts until the next reboot.
    """
    skip = not_on_wsl(platform, "WSL2 has /dev/dxg instead of /dev/nvidia*")
    if skip:
        return skip
    nodes = _access_nodes(devices)
    if not nodes:
        return skipped("no NVIDIA device node to inspect")
    tight = [n for n in nodes if not n.world_rw]
    mode_param = kernel.param_int("DeviceFileMode")
    gid_param = kernel.param_int("DeviceFileGID")
    results: list[Result] = []
    if tight:
        gids = sorted({n.gid for n in tight if n.gid is not None})
        gid = gids[0] if gids else (gid_param or 0)
        details = [f"{n.path}: mode {n.mode_text}, uid {n.uid}, gid {n.gid}" for n in tight]
        if mode_param is not None:
            details.append(f"/proc/driver/nvidia/params: DeviceFileMode {mode_param:o} (octal), DeviceFileGID {gid_param}")
        results.append(
            failed(
                f"{len(tight)} NVIDIA device node(s) not open to all users: "
                + ", ".join(f"{n.path} {n.mode_text}" for n in tight),
                Fix(
                    "Remove the restrictive NVreg_DeviceFileMode/GID/UID module options (VirtualGL's "
                    "vglserver_config sets them) and reload the driver, or give the container the nodes' group.",
                    (
                        "grep -rn NVreg_DeviceFile /etc/modprobe.d",
                        "sudo chmod 0666 /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia-uvm-tools /dev/nvidia[0-9]*",
                        f"docker run --group-add {gid} --gpus all <image>",
                    ),
                    TOOLKIT_TROUBLESHOOTING,
                ),
                details=details,
                evidence={
                    "nodes": {n.path: n.mode_text for n in tight},
                    "DeviceFileMode": mode_param,
                    "failure_mode": "device-node-permissions",
                },
            )
        )
    elif mode_param is not None and (mode_param & 0o006) != 0o006:
        results.append(
            warned(
                f"nodes are 0666 now, but the driver's DeviceFileMode is {mode_param:o}: they will be "
                "restricted when the driver next creates them",
                fix=Fix(
                    "Remove the NVreg_DeviceFileMode/GID options.",
                    ("grep -rn NVreg_DeviceFile /etc/modprobe.d",),
                    TOOLKIT_TROUBLESHOOTING,
                ),
                evidence={"DeviceFileMode": mode_param, "failure_mode": "device-node-permissions"},
            )
        )
    if not results:
        results.append(passed(f"{len(nodes)} NVIDIA device nodes are mode 0666", evidence={"nodes": len(nodes)}))
    return tuple(results)


@check(
    "devices.char-symlinks",
    "/dev/char has links to the NVIDIA device nodes",
    layer=Layer.DEVICES,
    needs=("platform", "devices"),
    after=("devices.control-nodes",),
)
def char_symlinks(platform: PlatformFacts, devices: DeviceFacts) -> Result:
    """Each NVIDIA character device has its /dev/char/<major>:<minor> symlink.

    Why: runc with the systemd cgroup driver resolves device rules through /dev/char; nvidia-modprobe
    creates the nodes without these links, so after `systemctl daemon-reload` running GPU containers
    can lose access: "Failed to initialize NVML: Unknown Error" (failure mode
    `cgroup-device-access-lost`). A risk, not a failure: CDI injection or the cgroupfs driver avoid it.

    Fix: `sudo nvidia-ctk system create-dev-char-symlinks --create-all` (and the toolkit's udev rule
    to keep them); or use CDI (`--device nvidia.com/gpu=all`).
    """
    skip = not_on_wsl(platform, "WSL2 has /dev/dxg instead of /dev/nvidia*")
    if skip:
        return skip
    if not devices.char_dir_present:
        return skipped("no /dev/char directory here (inside a container?): nothing to check")
    nodes = _access_nodes(devices)
    missing = [f"/dev/char/{n.major}:{n.minor} → {n.path}" for n in devices.lacking_char_link(nodes)]
    if missing:
        return warned(
            f"{len(missing)} /dev/char link(s) missing: GPU containers may lose access after `systemctl daemon-reload`",
            fix=Fix(
                "Create the /dev/char links for the NVIDIA nodes (the toolkit ships a udev rule that keeps them).",
                ("sudo nvidia-ctk system create-dev-char-symlinks --create-all",),
                TOOLKIT_TROUBLESHOOTING,
            ),
            details=missing,
            evidence={"missing": missing, "failure_mode": "cgroup-device-access-lost"},
        )
    return passed(f"/dev/char links present for {len(nodes)} NVIDIA nodes")


CHECKS: tuple[Check, ...] = (control_nodes, gpu_nodes, permissions, char_symlinks)
