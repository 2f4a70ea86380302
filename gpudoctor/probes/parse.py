"""Reads what probe.sh printed inside a container. Pure: text in, frozen dataclass out."""

from __future__ import annotations

import re

from ..frozen import frozen
from ..gpu_requests.request import NVIDIA_MAJOR, NVIDIACTL_MINOR


@frozen
class SeenNode:
    """A device node as `ls -ln` showed it inside a probe container."""

    path: str
    major: int
    minor: int


@frozen
class SmiGpu:
    """One line of `nvidia-smi -L` (GPU or MIG device)."""

    kind: str  # "GPU" | "MIG"
    index: str
    name: str
    uuid: str


@frozen
class ProbeView:
    """What one probe container saw."""

    valid: bool  # the report was complete (the script ran to @@end)
    nodes: tuple[SeenNode, ...]
    smi_path: str | None
    smi_list_rc: int | None
    smi_list: tuple[SmiGpu, ...]
    smi_list_output: str
    smi_query_rc: int | None
    smi_query_uuids: tuple[str, ...]
    libs: tuple[str, ...]
    mounts: tuple[str, ...]
    env: tuple[tuple[str, str], ...]

    @property
    def gpu_minors(self) -> tuple[int, ...]:
        """Minors of /dev/nvidiaN nodes (major 195, not the control node)."""
        return tuple(
            sorted(
                n.minor
                for n in self.nodes
                if n.major == NVIDIA_MAJOR and n.minor != NVIDIACTL_MINOR and re.fullmatch(r"/dev/nvidia\d+", n.path)
            )
        )

    @property
    def smi_uuids(self) -> tuple[str, ...]:
        """GPU UUIDs nvidia-smi listed (MIG devices excluded)."""
        from_list = tuple(g.uuid for g in self.smi_list if g.kind == "GPU")
        return from_list or self.smi_query_uuids

    @property
    def mig_uuids(self) -> tuple[str, ...]:
        return tuple(g.uuid for g in self.smi_list if g.kind == "MIG")

    @property
    def smi_works(self) -> bool:
        return self.smi_list_rc == 0 and bool(self.smi_list)

    def env_value(self, name: str) -> str | None:
        return next((v for k, v in self.env if k == name), None)

    def has_node(self, path: str) -> bool:
        return any(n.path == path for n in self.nodes)

    def driver_libs(self, name: str) -> tuple[str, ...]:
        return tuple(sorted({p for p in self.libs if p.rsplit("/", 1)[-1].startswith(name)}))

    def lib_is_mounted(self, path: str) -> bool:
        """Injected libraries are bind mounts; libraries the image ships are not."""
        return any(f" {path} " in f" {m} " for m in self.mounts)


# `ls -ln` of a character device: "crw-rw-rw-    1 0   0   195,   0 Nov 23 05:33 /dev/nvidia0"
_LS_DEV = re.compile(r"^c\S*\s+\d+\s+\S+\s+\S+\s+(\d+),\s*(\d+)\s+.*?\s(/dev/\S+)$")
# nvidia-smi -L: "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-3e3d…)" and "  MIG 1g.10gb     Device  0: (UUID: MIG-…)"
_SMI_GPU = re.compile(r"^GPU (\d+): (.*?) \(UUID: (GPU-[0-9a-fA-F-]+)\)")
_SMI_MIG = re.compile(r"^\s+MIG (.*?)\s+Device\s+(\d+): \(UUID: (MIG-[0-9a-zA-Z/-]+)\)")


def _sections(text: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    sections: dict[str, list[str]] = {}
    args: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("@@"):
            head, _, arg = line[2:].partition(" ")
            current = head
            sections.setdefault(current, [])
            args[current] = arg.strip()
            continue
        if current is not None:
            sections[current].append(line)
    return sections, args


def _rc(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def parse_probe_output(text: str) -> ProbeView:
    sections, args = _sections(text)
    nodes = []
    for line in sections.get("dev", []):
        m = _LS_DEV.match(line.strip())
        if m:
            nodes.append(SeenNode(m.group(3), int(m.group(1)), int(m.group(2))))
    smi_list = []
    for line in sections.get("smi-L", []):
        g = _SMI_GPU.match(line)
        if g:
            smi_list.append(SmiGpu("GPU", g.group(1), g.group(2), g.group(3)))
            continue
        mg = _SMI_MIG.match(line)
        if mg:
            smi_list.append(SmiGpu("MIG", mg.group(2), mg.group(1).strip(), mg.group(3)))
    query_uuids = tuple(
        line.split(",")[0].strip()
        for line in sections.get("smi-query", [])
        if line.strip().startswith("GPU-")
    )
    path_lines = [p.strip() for p in sections.get("smi-path", []) if p.strip()]
    env = []
    for line in sections.get("env", []):
        k, sep, v = line.partition("=")
        if sep:
            env.append((k, v))
    return ProbeView(
        valid="end" in sections and "gpudoctor-probe" in sections,
        nodes=tuple(nodes),
        smi_path=path_lines[0] if path_lines else None,
        smi_list_rc=_rc(args.get("smi-L")),
        smi_list=tuple(smi_list),
        smi_list_output="\n".join(sections.get("smi-L", []))[:2000],
        smi_query_rc=_rc(args.get("smi-query")),
        smi_query_uuids=query_uuids,
        libs=tuple(dict.fromkeys(line.strip() for line in sections.get("libs", []) if line.strip())),
        mounts=tuple(line.strip() for line in sections.get("mounts", []) if line.strip()),
        env=tuple(env),
    )
