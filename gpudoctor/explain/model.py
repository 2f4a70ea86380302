"""Plain data for `gpudoctor explain`: a normalised GPU request and what we conclude about it.

Frozen dataclasses only; nothing here parses, reads the host or renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# Input kinds (`--kind` accepts these and the aliases in detect.KIND_ALIASES).
KINDS = ("gpus", "cmdline", "sdk", "compose", "env", "check")


class ExplainInputError(Exception):
    """The input is not what `explain` can read (exit code 2). `expected` names what would be."""

    def __init__(self, message: str, expected: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.expected = expected

    def __str__(self) -> str:
        return f"{self.message} (expected {self.expected})" if self.expected else self.message


# DeviceRequest field → its HostConfig.DeviceRequests key; what to_api shows for a value not known statically.
API_NAMES = {"driver": "Driver", "count": "Count", "device_ids": "DeviceIDs", "capabilities": "Capabilities", "options": "Options"}
DECIDED_AT_RUN_TIME = "(decided at run time)"


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class ErrorText:
    """An exact message a tool prints, with who prints it and when."""

    text: str
    source: str  # "docker CLI", "dockerd (start, HTTP 500)", "docker-py", ...
    versions: str = ""


@dataclass(frozen=True)
class Pitfall:
    id: str  # our id, e.g. "gpus.unquoted-device-list"
    failure_mode: str  # the name in failure-modes.md, e.g. "gpus-device-list-quoting"
    failure_mode_number: int
    severity: str  # "fail": the request errors or gets the wrong GPUs; "warn": likely not what was meant
    summary: str
    detail: str
    errors: tuple[ErrorText, ...] = ()
    subject: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "failure_mode": self.failure_mode,
            "failure_mode_number": self.failure_mode_number,
            "severity": self.severity,
            "summary": self.summary,
            "detail": self.detail,
            "errors": [{"text": e.text, "source": e.source, "versions": e.versions} for e in self.errors],
            "subject": self.subject,
        }


@dataclass(frozen=True)
class Requirement:
    """What the host must provide for this request form, and the error when it does not."""

    summary: str
    errors: tuple[ErrorText, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "errors": [{"text": e.text, "source": e.source, "versions": e.versions} for e in self.errors]}


@dataclass(frozen=True)
class Correction:
    """The request spelled right, in every dialect. `meaning` says which intent it serves."""

    meaning: str
    cli: str
    sdk: str
    compose: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"meaning": self.meaning, "cli": self.cli, "sdk": self.sdk, "compose": self.compose, "notes": list(self.notes)}


@dataclass(frozen=True)
class HostGpu:
    """The few NVML facts explain needs (built from `NvmlFacts.gpus`)."""

    index: int
    uuid: str | None
    name: str | None
    pci_bus_id: str | None = None
    mig_enabled: bool = False
    mig_devices: tuple[tuple[int, str | None, str | None], ...] = ()  # (index, uuid, name)

    @property
    def label(self) -> str:
        inner = ", ".join(b for b in (self.name, self.uuid) if b)
        return f"GPU {self.index} ({inner})" if inner else f"GPU {self.index}"


@dataclass(frozen=True)
class HostView:
    """This host's GPUs, or None-ish when explaining in general terms."""

    gpus: tuple[HostGpu, ...]
    source: str = "NVML"
    # Runtimes the Docker daemon reports (`docker info` Runtimes); None when it could not be asked.
    runtimes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Selection:
    """Which GPUs the container gets: in general terms, and on this host when known."""

    general: str
    on_host: tuple[str, ...] | None = None  # labels; None = host unknown
    visible_devices: str | None = None  # the NVIDIA_VISIBLE_DEVICES value the hook sees, if one

    def to_dict(self) -> dict[str, Any]:
        return {"general": self.general, "on_host": list(self.on_host) if self.on_host is not None else None, "visible_devices": self.visible_devices}


@dataclass(frozen=True)
class Explanation:
    input: str
    kind: str
    request: GpuRequest | None  # None when the input never became a request (CLI rejected it)
    meaning: tuple[str, ...]  # plain-language lines: what this asks Docker to do
    selection: Selection | None
    pitfalls: tuple[Pitfall, ...]
    requirements: tuple[Requirement, ...]
    corrections: tuple[Correction, ...]
    host: HostView | None
    rejected: ErrorText | None = None  # the client refused the input (CLI flag error, docker-py error)

    @property
    def exit_code(self) -> int:
        return 1 if (self.pitfalls or self.rejected) else 0

    def to_dict(self) -> dict[str, Any]:
        req = self.request
        return {
            "input": self.input,
            "kind": self.kind,
            "label": req.label if req else None,
            "rejected": {"text": self.rejected.text, "source": self.rejected.source, "versions": self.rejected.versions}
            if self.rejected
            else None,
            "request": None
            if req is None
            else {
                "device_requests": [d.to_api() for d in req.device_requests],
                "runtime": req.runtime,
                "env": [f"{k}={v}" for k, v in req.env],
                "privileged": req.privileged,
                "image": req.image,
            },
            "meaning": list(self.meaning),
            "selection": self.selection.to_dict() if self.selection else None,
            "pitfalls": [p.to_dict() for p in self.pitfalls],
            "requirements": [r.to_dict() for r in self.requirements],
            "corrections": [c.to_dict() for c in self.corrections],
            "host": None
            if self.host is None
            else {"source": self.host.source, "gpus": [{"index": g.index, "uuid": g.uuid, "name": g.name} for g in self.host.gpus]},
            "exit_code": self.exit_code,
        }
