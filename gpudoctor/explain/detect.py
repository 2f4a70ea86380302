"""Which kind of input is this? (`--kind` overrides.) Pure: the caller says whether a path exists.

Order: check id → NVIDIA_VISIBLE_DEVICES=… → command line → Compose file path → Python call →
Compose YAML → a --gpus value (the default: `all`, `1`, `device=0,1`, `"device=0,1"` all land here).
"""

from __future__ import annotations

import ast
import re

from .model import ExplainInputError, KINDS

KIND_ALIASES = {
    "gpus": "gpus", "--gpus": "gpus", "flag": "gpus",
    "cmdline": "cmdline", "docker-run": "cmdline", "cli": "cmdline", "docker": "cmdline", "run": "cmdline", "command": "cmdline",
    "sdk": "sdk", "python": "sdk", "docker-py": "sdk", "devicerequest": "sdk",
    "compose": "compose", "yaml": "compose", "docker-compose": "compose",
    "env": "env", "visible-devices": "env", "nvidia_visible_devices": "env", "nvidia-visible-devices": "env",
    "check": "check", "check-id": "check",
}
CHECK_ID = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$")
_PY_FILE = (".py",)
_YAML_FILE = (".yml", ".yaml")


def normalize_kind(kind: str | None) -> str | None:
    if kind is None:
        return None
    k = KIND_ALIASES.get(kind.strip().lower())
    if k is None:
        raise ExplainInputError(f"unknown --kind {kind!r}", "one of " + ", ".join(KINDS))
    return k


def is_check_id(text: str) -> bool:
    return bool(CHECK_ID.match(text.strip()))


def detect_kind(text: str, *, is_file: bool = False) -> str:
    t = text.strip()
    if not t:
        return "gpus"  # the CLI's own answer for an empty --gpus is "EOF"
    if is_file:  # docker-compose.yml, compose.yaml, app.py look like check ids: a file of that name wins
        return "sdk" if t.endswith(_PY_FILE) else "compose"
    if is_check_id(t):
        return "check"
    if re.match(r"^(export\s+|-e\s+|--env[ =])?NVIDIA_VISIBLE_DEVICES=", t):
        return "env"
    first = t.split(None, 1)[0]
    base = first.rsplit("/", 1)[-1]
    if base in ("docker", "sudo", "nvidia-docker", "podman") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=\S*\s+\S*docker\b", t):
        return "cmdline"
    if first.startswith("--") or (first.startswith("-") and len(first) == 2 and first[1].isalpha()):
        return "cmdline"
    if "(" in t:
        try:
            tree = ast.parse(t)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            # ValueError: a NUL byte (before 3.12); MemoryError/RecursionError: CPython's parser on
            # deeply nested source. Not Python we can read: the regex below may still call it SDK.
            tree = None
        if tree is not None and any(isinstance(n, ast.Call) for n in ast.walk(tree)):
            return "sdk"
        if re.match(r"^[\w.]*(DeviceRequest|run|create|create_container|HostConfig|create_host_config)\s*\(", t):
            return "sdk"  # Python with a syntax error: the SDK parser will say so
    if "\n" in t or re.match(r"^(services|deploy|resources|reservations|devices|gpus)\s*:", t) or re.match(r"^-\s+\w+\s*:", t) or (t.startswith("{") and ":" in t):
        return "compose"
    return "gpus"
