"""NVIDIA device nodes: /dev/nvidia*, /dev/nvidia-caps/*, their /dev/char links, modes and owners.

Source: failure-modes.md §3 (`uvm-or-control-nodes-missing`, `cgroup-device-access-lost`,
`device-node-permissions`). Control nodes are made on demand by `nvidia-modprobe`, not devtmpfs,
so their absence on a headless host is common; runc with the systemd cgroup driver needs
`/dev/char/<major>:<minor>` links to them (toolkit `nvidia-ctk system create-dev-char-symlinks`).
"""

from __future__ import annotations

import errno
import os
import re
from typing import Mapping

from ..frozen import frozen
# The NVIDIA majors live with the host-GPU model (a container sees a GPU as its node); nvidia-uvm's is dynamic.
from ..gpu_requests.request import NVIDIA_MAJOR, NVIDIACTL_MINOR as NVIDIACTL_MINOR
from .host import FileStat
from .hostfiles import describe_oserror, list_dir, readlink
from .registry import FactContext, FactMissing, fact

CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
GPU_NODE_RE = re.compile(r"^nvidia(\d+)$")


@frozen
class DeviceNode:
    path: str
    exists: bool
    kind: str | None = None  # char | file | dir | link | ... (after following links)
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    major: int | None = None
    minor: int | None = None
    problem: str | None = None  # could not stat for another reason than "not there"

    @property
    def is_char(self) -> bool:
        return self.kind == "char"

    @property
    def world_rw(self) -> bool:
        return self.mode is not None and (self.mode & 0o006) == 0o006

    @property
    def mode_text(self) -> str:
        return f"{self.mode:04o}" if self.mode is not None else "?"


@frozen
class DeviceFacts:
    dev_readable: bool
    dev_problem: str | None
    nodes: Mapping[str, DeviceNode]  # every /dev/nvidia* found, plus the control nodes (found or not)
    caps: Mapping[str, DeviceNode]  # /dev/nvidia-caps/*
    char_links: Mapping[str, str | None]  # "195:0" → link target, for majors of NVIDIA drivers
    char_dir_present: bool
    dxg: DeviceNode  # /dev/dxg (WSL2)

    def node(self, path: str) -> DeviceNode:
        return self.nodes.get(path) or DeviceNode(path, False)

    @property
    def gpu_nodes(self) -> dict[int, DeviceNode]:
        """minor → /dev/nvidiaN node, from the names found in /dev."""
        out = {}
        for path, n in self.nodes.items():
            m = GPU_NODE_RE.match(path.rsplit("/", 1)[-1])
            if m and n.exists:
                out[int(m.group(1))] = n
        return out

    @property
    def any_nvidia_node(self) -> bool:
        return any(n.exists for n in self.nodes.values())

    def lacking_char_link(self, nodes: "list[DeviceNode] | None" = None) -> list[DeviceNode]:
        """Character nodes (default: every /dev/nvidia* one) without a /dev/char/<major>:<minor> link to
        them — what runc with the systemd cgroup driver needs (failure mode `cgroup-device-access-lost`)."""
        chosen = nodes if nodes is not None else [n for _, n in sorted(self.nodes.items()) if n.exists and n.is_char]
        lacking = []
        for n in chosen:
            target = self.char_links.get(f"{n.major}:{n.minor}")
            if target is None or os.path.basename(target) != os.path.basename(n.path):
                lacking.append(n)
        return lacking


def stat_node(ctx: FactContext, path: str) -> DeviceNode:
    try:
        st: FileStat = ctx.host.stat(path, follow=True)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            # A dangling symlink is "there" but useless; say so.
            try:
                ctx.host.stat(path, follow=False)
                return DeviceNode(path, True, kind="link", problem=f"{path} is a dangling symlink")
            except OSError:
                return DeviceNode(path, False)
        return DeviceNode(path, True, problem=describe_oserror(path, e))
    major = st.rdev_major if st.rdev_major >= 0 else None
    minor = st.rdev_minor if st.rdev_minor >= 0 else None
    return DeviceNode(path, True, st.kind, st.mode, st.uid, st.gid, major, minor)


def _nvidia_majors(ctx: FactContext) -> set[int]:
    try:
        kernel = ctx.get("kernel")
        majors = set(kernel.majors.values())
    except FactMissing:
        majors = set()
    return majors | {NVIDIA_MAJOR}


def read_devices(ctx: FactContext) -> DeviceFacts:
    listing = list_dir(ctx.host, "/dev")
    nodes: dict[str, DeviceNode] = {}
    names = [n for n in listing.entries if n.startswith("nvidia") and n != "nvidia-caps"]
    for path in list(CONTROL_NODES) + [f"/dev/{n}" for n in names]:
        if path not in nodes:
            nodes[path] = stat_node(ctx, path)

    caps: dict[str, DeviceNode] = {}
    caps_listing = list_dir(ctx.host, "/dev/nvidia-caps")
    for name in caps_listing.entries:
        caps[f"/dev/nvidia-caps/{name}"] = stat_node(ctx, f"/dev/nvidia-caps/{name}")

    links: dict[str, str | None] = {}
    char_listing = list_dir(ctx.host, "/dev/char")
    # Links of every NVIDIA major: the kernel's, and those of the nodes found (a uvm major the
    # kernel fact could not read still counts).
    majors = _nvidia_majors(ctx) | {n.major for n in nodes.values() if n.is_char and n.major is not None}
    for name in char_listing.entries:
        maj, _, mnr = name.partition(":")
        if maj.isdigit() and mnr.isdigit() and int(maj) in majors:
            links[name] = readlink(ctx.host, f"/dev/char/{name}")

    problem = None
    if not listing.ok:
        problem = f"cannot list {ctx.host.path('/dev')}: " + ("it does not exist" if listing.missing else str(listing.problem))
    return DeviceFacts(
        dev_readable=listing.ok,
        dev_problem=problem,
        nodes=nodes,
        caps=caps,
        char_links=links,
        char_dir_present=char_listing.ok,
        dxg=stat_node(ctx, "/dev/dxg"),
    )


@fact("devices", timeout_s=10)
def devices_fact(ctx: FactContext) -> DeviceFacts:
    """NVIDIA device nodes in /dev: which exist, their type, major:minor, mode, owner, /dev/char links."""
    return read_devices(ctx)
