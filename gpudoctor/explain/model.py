"""Plain data for `gpudoctor explain`: a normalised GPU request and what we conclude about it.

Frozen dataclasses only; nothing here parses, reads the host or renders.
"""

from __future__ import annotations

from typing import Any

from ..frozen import frozen
# The request itself and its spellings live in the domain package; explain reads them from there.
from ..gpu_requests.request import DeviceRequest as DeviceRequest, ErrorText, GpuRequest, HostGpu
from ..gpu_requests.behaviour import Prediction
from ..gpu_requests.spelling import Correction
from ..gpu_requests.stack import StackState

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


@frozen
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


@frozen
class Requirement:
    """What the host must provide for this request form, and the error when it does not."""

    summary: str
    errors: tuple[ErrorText, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "errors": [{"text": e.text, "source": e.source, "versions": e.versions} for e in self.errors]}


@frozen
class HostView:
    """This host's GPUs, or None-ish when explaining in general terms."""

    gpus: tuple[HostGpu, ...]
    source: str = "NVML"
    # Runtimes the Docker daemon reports (`docker info` Runtimes); None when it could not be asked.
    runtimes: tuple[str, ...] | None = None
    stack: StackState | None = None  # what this host's engine and toolkit are; None: no daemon answered


@frozen
class Selection:
    """Which GPUs the container gets: in general terms, and on this host when known."""

    general: str
    on_host: tuple[str, ...] | None = None  # labels; None = host unknown
    visible_devices: str | None = None  # the NVIDIA_VISIBLE_DEVICES value the hook sees, if one

    def to_dict(self) -> dict[str, Any]:
        return {"general": self.general, "on_host": list(self.on_host) if self.on_host is not None else None, "visible_devices": self.visible_devices}


@frozen
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
    on_host: Prediction | None = None  # what this host's daemon does with it (behaviour model), when known

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
            "on_host": None if self.on_host is None else {
                "path": self.on_host.path, "via": list(self.on_host.via), "refused": self.on_host.refused,
                "devices": list(self.on_host.devices) if self.on_host.devices is not None else None,
                "errors": [e.text for e in self.on_host.errors], "blame": self.on_host.blame, "why": self.on_host.why,
            },
            "exit_code": self.exit_code,
        }
