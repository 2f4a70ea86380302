"""A GPU request as a container engine receives it, whatever dialect it was written in, and the host GPUs it
can name. Plain data: the parsers (gpudoctor/explain/) build these, the probe forms (gpudoctor/probes/forms.py)
send them, and the behaviour model (behaviour.py) says what an engine and the toolkit do with them.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Mapping

from ..frozen import frozen


# DeviceRequest field → its HostConfig.DeviceRequests key; what to_api shows for a value not known statically.
API_NAMES = {"driver": "Driver", "count": "Count", "device_ids": "DeviceIDs", "capabilities": "Capabilities", "options": "Options"}
DECIDED_AT_RUN_TIME = "(decided at run time)"


@frozen
class DeviceRequest:
    """One `HostConfig.DeviceRequests` entry exactly as the client would send it.

    `device_ids` / `capabilities` / `options` keep `None` for JSON null (what the CLI sends when the
    field was not given) and keep non-string items as given (an SDK caller may pass ints or a flat
    capability list; the daemon rejects those, and we must be able to say so).
    """

    driver: Any = ""
    count: Any = 0
    device_ids: tuple[Any, ...] | None = None
    capabilities: tuple[Any, ...] | None = None
    options: Mapping[str, Any] | None = None
    # Field names whose value was not a literal (an SDK variable): we cannot know them.
    unknown: tuple[str, ...] = ()
    origin: str = ""  # e.g. '--gpus "device=0,1"', 'DeviceRequest(...)', 'services.app devices[0]'

    def to_api(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            if isinstance(v, Mapping):
                return {k: plain(x) for k, x in v.items()}
            return v

        api = {
            "Driver": self.driver,
            "Count": self.count,
            "DeviceIDs": plain(self.device_ids),
            "Capabilities": plain(self.capabilities),
            "Options": plain(self.options),
        }
        for name in self.unknown:  # what the snippet computes at run time is not ours to spell
            api[API_NAMES[name]] = DECIDED_AT_RUN_TIME
        return api

    @property
    def is_cdi(self) -> bool:
        return self.driver == "cdi"


@frozen
class GpuRequest:
    """Everything GPU-related one container request asks for, whatever dialect it was written in."""

    kind: str  # gpus | cmdline | sdk | compose | env
    label: str  # what this is, for headings: '--gpus 1', 'service "app"', 'DeviceRequest(...)'
    device_requests: tuple[DeviceRequest, ...] = ()
    runtime: str | None = None
    env: tuple[tuple[str, str], ...] = ()  # in order; a name may repeat
    privileged: bool = False
    image: str | None = None
    # Dialect-specific observations the analysis needs (see each parser for its keys).
    hints: Mapping[str, Any] = field(default_factory=dict)

    def env_value(self, name: str) -> str | None:
        """The last value set for `name` (Docker keeps the last of duplicates)."""
        value = None
        for k, v in self.env:
            if k == name:
                value = v
        return value


@frozen
class ErrorText:
    """An exact message a tool prints, with who prints it and when."""

    text: str
    source: str  # "docker CLI", "dockerd (start, HTTP 500)", "docker-py", ...
    versions: str = ""


def env_mapping(entries: Any) -> dict[str, str]:
    """An image's or a container's `KEY=value` list as a mapping (an entry without `=` sets nothing)."""
    return dict(str(e).split("=", 1) for e in entries or () if "=" in str(e))


# /dev/nvidia<minor> and /dev/nvidiactl: major 195 on every driver so far ("nvidia-frontend" or "nvidia" in
# /proc/devices); nvidiactl is minor 255. How a container's view is mapped back to host GPUs.
NVIDIA_MAJOR = 195
NVIDIACTL_MINOR = 255


@frozen
class HostGpu:
    """One host GPU as NVML reports it: what requests name it by (index, UUID, PCI bus id), how containers see it
    (the `/dev/nvidia<minor>` node) and its MIG devices. Checks, probes and explain share this one view."""

    index: int
    uuid: str | None
    minor: int | None = None
    name: str | None = None
    pci_bus_id: str | None = None
    mig_enabled: bool = False
    mig_devices: tuple[tuple[int, str | None, str | None], ...] = ()  # (index, uuid, name)

    @property
    def mig_uuids(self) -> tuple[str, ...]:
        return tuple(u for _i, u, _n in self.mig_devices if u)

    @property
    def label(self) -> str:
        inner = ", ".join(b for b in (self.name, self.uuid) if b)
        return f"GPU {self.index} ({inner})" if inner else f"GPU {self.index}"


def host_gpus(nvml: Any) -> tuple[HostGpu, ...]:
    """NvmlFacts → HostGpu views; () when NVML did not answer."""
    if nvml is None or not getattr(nvml, "ok", True) or getattr(nvml, "init_error", None) is not None:
        return ()
    out = []
    for g in getattr(nvml, "gpus", ()):
        migs = tuple((m.index, m.uuid, m.name) for m in getattr(g, "mig_devices", ()) or ())
        out.append(HostGpu(
            index=g.index, uuid=g.uuid, minor=getattr(g, "minor", None), name=g.name,
            pci_bus_id=getattr(g, "pci_bus_id", None),
            mig_enabled=getattr(g, "mig_current", None) == 1 or bool(migs), mig_devices=migs,
        ))
    return tuple(out)
