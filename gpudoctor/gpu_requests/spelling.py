"""One intended GPU request, spelled in every dialect: docker CLI, Docker SDK for Python, Compose.

The spellings follow docker-gpu-internals.md §5.1 (SDK equivalents of each --gpus form) and
docs.docker.com "Run Docker Compose services with GPU access". Pure string building.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import field
from typing import Any

from ..frozen import frozen



@frozen
class Correction:
    """The request spelled right, in every dialect. `meaning` says which intent it serves."""

    meaning: str
    cli: str
    sdk: str
    compose: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"meaning": self.meaning, "cli": self.cli, "sdk": self.sdk, "compose": self.compose, "notes": list(self.notes)}


@frozen
class Intent:
    meaning: str
    mode: str  # all | count | devices | cdi | env
    count: int = 0
    devices: tuple[str, ...] = ()  # device ids (mode devices), CDI names (mode cdi)
    capabilities: tuple[str, ...] = ()  # without the implicit "gpu"
    driver: str = ""
    runtime: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    image: str | None = None
    service: str = "app"
    notes: tuple[str, ...] = field(default_factory=tuple)


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\n\r') or text[:1] == " ":
        return '"' + text.replace('"', '""') + '"'
    return text


def gpus_value(intent: Intent) -> str:
    """The --gpus value (unquoted for the shell) for a non-CDI intent."""
    fields = []
    if intent.mode == "all":
        fields.append("all")
    elif intent.mode == "count":
        fields.append(f"count={intent.count}")
    elif intent.mode == "devices":
        fields.append("device=" + ",".join(intent.devices))
    if intent.driver:
        fields.append(f"driver={intent.driver}")
    if intent.capabilities:
        fields.append("capabilities=" + ",".join(intent.capabilities))
    return ",".join(_csv_field(f) for f in fields)


def _request_parts(intent: Intent) -> list[str]:
    if intent.mode == "cdi":
        # One --device per name; the CLI sends them as one CDI DeviceRequest (docker-gpu-internals.md §2.2).
        return [p for name in intent.devices for p in ("--device", name)]
    if intent.mode != "env":
        return ["--gpus", gpus_value(intent)]
    return []


def request_flags(intent: Intent) -> str:
    """The device-request flags alone, quoted for the shell: `--gpus '"device=0,1"'`, `--device nvidia.com/gpu=0`."""
    return " ".join(shlex.quote(p) for p in _request_parts(intent))


def cli(intent: Intent) -> str:
    parts = ["docker", "run", "--rm"]
    if intent.runtime:
        parts.append(f"--runtime={intent.runtime}")
    parts += _request_parts(intent)
    for k, v in intent.env:
        parts += ["-e", f"{k}={v}"]
    parts.append(intent.image or "IMAGE")
    return " ".join(p if p in ("IMAGE",) else shlex.quote(p) for p in parts)


def _sdk_request(intent: Intent) -> str | None:
    caps = [list(intent.capabilities) + ["gpu"]] if intent.capabilities else [["gpu"]]
    args = []
    if intent.mode == "cdi":
        return f'docker.types.DeviceRequest(driver="cdi", device_ids={json.dumps(list(intent.devices))})'
    if intent.driver:
        args.append(f"driver={json.dumps(intent.driver)}")
    if intent.mode == "all":
        args.append("count=-1")
    elif intent.mode == "count":
        args.append(f"count={intent.count}")
    elif intent.mode == "devices":
        args.append(f"device_ids={json.dumps(list(intent.devices))}")
    else:
        return None
    args.append(f"capabilities={json.dumps(caps)}")
    return f"docker.types.DeviceRequest({', '.join(args)})"


def sdk(intent: Intent) -> str:
    lines = ["import docker", "", "client = docker.from_env()", "client.containers.run(", f"    {json.dumps(intent.image or 'IMAGE')},"]
    req = _sdk_request(intent)
    if req:
        lines.append(f"    device_requests=[{req}],")
    if intent.runtime:
        lines.append(f"    runtime={json.dumps(intent.runtime)},")
    if intent.env:
        lines.append(f"    environment={json.dumps(dict(intent.env))},")
    lines += ["    remove=True,", ")"]
    return "\n".join(lines)


def compose(intent: Intent) -> str:
    lines = ["services:", f"  {intent.service}:", f"    image: {json.dumps(intent.image) if intent.image else 'IMAGE'}"]
    if intent.runtime:
        lines.append(f"    runtime: {intent.runtime}")
    if intent.env:
        lines.append("    environment:")
        lines += [f"      {k}: {json.dumps(v)}" for k, v in intent.env]
    if intent.mode != "env":
        lines += ["    deploy:", "      resources:", "        reservations:", "          devices:"]
        if intent.mode == "cdi":
            lines += ["            - driver: cdi", f"              device_ids: {json.dumps(list(intent.devices))}", "              capabilities: [gpu]"]
        else:
            lines.append(f"            - driver: {intent.driver or 'nvidia'}")
            if intent.mode == "all":
                lines.append("              count: all")
            elif intent.mode == "count":
                lines.append(f"              count: {intent.count}")
            elif intent.mode == "devices":
                lines.append(f"              device_ids: {json.dumps(list(intent.devices))}")
            caps = list(intent.capabilities) + ["gpu"] if intent.capabilities else ["gpu"]
            lines.append(f"              capabilities: [{', '.join(caps)}]")
    return "\n".join(lines)


def correction(intent: Intent) -> Correction:
    return Correction(intent.meaning, cli(intent), sdk(intent), compose(intent), intent.notes)
