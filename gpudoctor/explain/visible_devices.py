"""`NVIDIA_VISIBLE_DEVICES` values: what each token means to the NVIDIA Container Toolkit.

Rules (failure-modes.md #50 `visible-devices-semantics`, #52 `mig-device-naming`; toolkit docs
docker-specialized.md "GPU Enumeration"; these are [outside moby]): `all` anywhere in the list wins;
`none` = no GPU but driver libraries injected (toolkit <= 1.18.1 gave all GPUs); `void`, empty or
unset = behave like plain runc; otherwise a comma list of NVML indices, `GPU-<uuid>`, PCI bus ids,
`MIG-<uuid>` or `<gpu>:<mig>` indices. The legacy `MIG-GPU-<gpu-uuid>/<gi>/<ci>` form is no longer
accepted (R470+ drivers). The variable is read only by the NVIDIA runtime/hook.
"""

from __future__ import annotations

import re

from ..frozen import frozen
from .model import ExplainInputError

ENV_NAME = "NVIDIA_VISIBLE_DEVICES"
EXPECTED = "an NVIDIA_VISIBLE_DEVICES value: all, none, void, or a comma list of indices, GPU-/MIG- UUIDs, <gpu>:<mig>, PCI bus ids"

UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
PATTERNS = (
    ("mig-legacy", re.compile(rf"^MIG-GPU-{UUID_RE}/\d+/\d+$")),
    ("gpu-uuid", re.compile(rf"^GPU-{UUID_RE}$")),
    ("mig-uuid", re.compile(rf"^MIG-{UUID_RE}$")),
    ("mig-index", re.compile(r"^\d+:\d+$")),
    ("index", re.compile(r"^\d+$")),
    ("pci", re.compile(r"^([0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")),
    ("cdi-name", re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z][A-Za-z0-9_.-]*=.+$")),
    ("uuid-prefix", re.compile(r"^(GPU|MIG)-[0-9a-fA-F-]+$")),
)


@frozen
class DeviceToken:
    text: str
    form: str  # all | none | void | index | gpu-uuid | mig-uuid | mig-index | pci | mig-legacy | cdi-name | uuid-prefix | unknown


@frozen
class VisibleDevices:
    raw: str
    mode: str  # all | none | void | list
    tokens: tuple[DeviceToken, ...]

    @property
    def all_mixed(self) -> bool:
        """`all` next to other entries: `all` wins."""
        return self.mode == "all" and len(self.tokens) > 1


def classify(token: str) -> str:
    if token in ("all", "none", "void"):
        return token
    for form, rx in PATTERNS:
        if rx.match(token):
            return form
    return "unknown"


def parse_visible_devices(value: str) -> VisibleDevices:
    raw = value
    if raw.strip() == "":
        return VisibleDevices(raw, "void", ())
    tokens = tuple(DeviceToken(t, classify(t)) for t in raw.split(","))
    forms = {t.form for t in tokens}
    if "all" in forms:
        mode = "all"
    elif forms == {"none"}:
        mode = "none"
    elif forms == {"void"}:
        mode = "void"
    else:
        mode = "list"
    return VisibleDevices(raw, mode, tokens)


def strip_env_prefix(text: str) -> str:
    """`NVIDIA_VISIBLE_DEVICES=0,1` / `-e NVIDIA_VISIBLE_DEVICES=0,1` / `export …` → `0,1`."""
    t = text.strip()
    for prefix in ("export ", "-e ", "--env ", "--env="):
        if t.startswith(prefix):
            t = t[len(prefix):].strip()
    if "=" in t:
        name, _, val = t.partition("=")
        if name.strip() != ENV_NAME:
            raise ExplainInputError(f"this sets {name.strip()!r}, not {ENV_NAME}", EXPECTED)
        t = val
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        t = t[1:-1]
    return t
