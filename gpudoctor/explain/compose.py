"""A Compose file (or a piece of one) → the GPU request of each service.

Accepted shapes: a whole file (`services:`), one service mapping, a `deploy:` / `resources:` /
`reservations:` fragment, or the `devices:` list itself. YAML is parsed with PyYAML's safe loader
(imported here only), aliases and nesting bounded. Pure: the caller reads any file and hands in its text.

Conversion (docker/compose pkg/compose/create.go, compose-go types/device.go; docs.docker.com
"Run Docker Compose services with GPU access"): each reservation device becomes
DeviceRequest{Capabilities: [capabilities], Count, DeviceIDs: device_ids, Driver, Options};
`count: all` is -1 and "if count is set to all or not specified, all GPUs available on the host
are used" (so no count and no device_ids also gives -1); `capabilities` is mandatory;
count and device_ids are mutually exclusive. A service's `devices:` entries that are CDI names
(`nvidia.com/gpu=all`) become a Driver "cdi" request; the compose-spec `gpus:` key
(`gpus: all` or a list shaped like reservation devices) is read the same way.

Hints: compose_issues (list of (code, message, subject)), service, cdi_devices, raw_nvidia_devices,
compose_version (the file's obsolete `version:` key, if any).
"""

from __future__ import annotations

from typing import Any, Mapping

from .cmdline import CDI_NAME
from .model import DeviceRequest, ExplainInputError, GpuRequest

EXPECTED = (
    "a Compose file (with `services:`), a service, or its `deploy.resources.reservations.devices` list "
    "(e.g. `- driver: nvidia\\n  count: all\\n  capabilities: [gpu]`)"
)
DEVICE_KEYS = {"capabilities", "driver", "count", "device_ids", "options"}
SERVICE_HINT_KEYS = {"image", "build", "deploy", "runtime", "environment", "gpus", "command", "devices", "privileged", "container_name"}


def load_yaml(text: str) -> Any:
    """Safe-load the YAML, with aliases and nesting bounded (gpudoctor/facts/bounded.py: a Compose
    alias bomb is refused before anything is built)."""
    import yaml  # heavy: only when a Compose input is explained

    from ..facts.bounded import ParseLimit, load_yaml as bounded_load

    try:
        return bounded_load(text)
    except ParseLimit as e:
        raise ExplainInputError(f"this YAML is not explained: {e}", EXPECTED) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ExplainInputError(f"not valid YAML: {problem}{where}", EXPECTED) from None


def looks_like_compose(data: Any) -> bool:
    try:
        _services(data)
    except ExplainInputError:
        return False
    return True


def _is_device_item(x: Any) -> bool:
    return isinstance(x, Mapping) and bool(set(map(str, x)) & DEVICE_KEYS)


def _services(data: Any) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(data, Mapping):
        if isinstance(data.get("services"), Mapping):
            return [(str(k), v if isinstance(v, Mapping) else {}) for k, v in data["services"].items()]
        keys = set(map(str, data))
        devs = data.get("devices")
        if isinstance(devs, list) and devs and all(_is_device_item(x) for x in devs) and not keys & (SERVICE_HINT_KEYS - {"devices"}):
            return [("service", {"deploy": {"resources": {"reservations": data}}})]
        if keys & SERVICE_HINT_KEYS:
            return [("service", data)]
        if "resources" in keys:
            return [("service", {"deploy": data})]
        if "reservations" in keys:
            return [("service", {"deploy": {"resources": data}})]
        if _is_device_item(data):
            return [("service", {"deploy": {"resources": {"reservations": {"devices": [data]}}}})]
    if isinstance(data, list) and data and all(_is_device_item(x) for x in data):
        return [("service", {"deploy": {"resources": {"reservations": {"devices": data}}}})]
    raise ExplainInputError("this YAML is not a Compose file or a GPU device reservation", EXPECTED)


def _count(raw: Any, subject: str, issues: list[tuple[str, str, str]]) -> Any:
    if raw is None:
        return None
    if isinstance(raw, bool):
        issues.append(("count-type", "invalid type bool for device count", subject))
        return raw
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        if raw.lower() == "all":
            return -1
        try:
            return int(raw, 10)
        except ValueError:
            # compose-go types/device.go DeviceCount.DecodeMapstructure
            issues.append(("count-value", f"invalid value \"{raw}\", the only value allowed is 'all' or a number", subject))
            return raw
    issues.append(("count-type", f"invalid type {type(raw).__name__} for device count", subject))
    return raw


def _device(item: Mapping[str, Any], subject: str, issues: list[tuple[str, str, str]], default_caps: tuple[str, ...] | None = None) -> DeviceRequest:
    keys = {str(k) for k in item}
    extra = sorted(k for k in keys - DEVICE_KEYS if not k.startswith("x-"))
    if extra:
        issues.append(("unknown-key", f"unknown key(s) {', '.join(extra)} in a device reservation (allowed: {', '.join(sorted(DEVICE_KEYS))})", subject))
    caps_raw = item.get("capabilities")
    if caps_raw is None and default_caps is None:
        issues.append(("missing-capabilities", "the device entry has no `capabilities` (Compose requires it)", subject))
    caps = caps_raw if caps_raw is not None else (list(default_caps) if default_caps else None)
    if isinstance(caps, str):
        caps = [caps]
    ids_raw = item.get("device_ids")
    ids: tuple[Any, ...] | None = None
    if ids_raw is not None:
        ids = tuple(ids_raw) if isinstance(ids_raw, list) else (ids_raw,)
        if any(not isinstance(i, str) for i in ids):
            issues.append(("device-ids-not-strings", "device_ids should be strings (`device_ids: [\"0\"]`)", subject))
    count = _count(item.get("count"), subject, issues)
    if count is not None and ids:
        issues.append(("count-and-device-ids", "`count` and `device_ids` are both set (they are mutually exclusive)", subject))
    if count is None and not ids:
        count = -1  # "If count is set to all or not specified, all GPUs available on the host are used"
    opts = item.get("options")
    return DeviceRequest(
        driver=str(item.get("driver") or ""),
        count=count if count is not None else 0,
        device_ids=tuple(str(i) for i in ids) if ids else None,
        capabilities=(tuple(str(c) for c in caps),) if caps else None,
        options=dict(opts) if isinstance(opts, Mapping) else None,
        origin=subject,
    )


def _env(raw: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(raw, Mapping):
        return tuple((str(k), "" if v is None else str(v)) for k, v in raw.items())
    if isinstance(raw, list):
        out = []
        for item in raw:
            k, _, v = str(item).partition("=")
            out.append((k, v))
        return tuple(out)
    return ()


def parse_compose(text: str, source: str = "<inline>") -> list[GpuRequest]:
    data = load_yaml(text)
    services = _services(data)
    version = data.get("version") if isinstance(data, Mapping) else None
    out: list[GpuRequest] = []
    for name, svc in services:
        issues: list[tuple[str, str, str]] = []
        prefix = f"services.{name}" if name != "service" else "service"
        devices_raw: Any = (((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices")
        requests: list[DeviceRequest] = []
        if devices_raw is not None:
            if not isinstance(devices_raw, list):
                issues.append(("devices-not-list", "`devices` under reservations must be a list of device entries", f"{prefix}.deploy.resources.reservations.devices"))
                devices_raw = [devices_raw] if isinstance(devices_raw, Mapping) else []
            items = [d for d in devices_raw if isinstance(d, Mapping)]
            # A YAML indentation slip turns one device into two list items ("- driver: nvidia" and
            # "- capabilities: [gpu]"): failure-modes.md #49.
            split = len(items) >= 2 and any("capabilities" not in d for d in items) and any(set(map(str, d)) <= {"capabilities"} for d in items)
            if split:
                issues.append(("split-device-item", "one device entry is split over several list items (a `-` too many)", f"{prefix}.deploy.resources.reservations.devices"))
            for i, item in enumerate(items):
                requests.append(_device(item, issues=issues, subject=f"{prefix}.deploy.resources.reservations.devices[{i}]"))
        gpus = svc.get("gpus")
        if gpus is not None:
            if isinstance(gpus, str) and gpus.lower() == "all":
                requests.append(DeviceRequest(count=-1, capabilities=(("gpu",),), origin=f"{prefix}.gpus"))
            elif isinstance(gpus, list):
                for i, item in enumerate(gpus):
                    if isinstance(item, Mapping):
                        requests.append(_device(item, issues=issues, subject=f"{prefix}.gpus[{i}]", default_caps=("gpu",)))
            else:
                issues.append(("gpus-value", "`gpus` must be `all` or a list of device entries", f"{prefix}.gpus"))
        svc_devices = [d if isinstance(d, str) else str(d.get("source", "")) for d in (svc.get("devices") or []) if isinstance(d, (str, Mapping))]
        cdi = [d for d in svc_devices if CDI_NAME.match(d)]
        if cdi:
            requests.append(DeviceRequest(driver="cdi", count=0, device_ids=tuple(cdi), origin=f"{prefix}.devices"))
        raw_nodes = [d.split(":", 1)[0] for d in svc_devices if d.startswith("/dev/nvidia")]
        runtime = svc.get("runtime")
        out.append(
            GpuRequest(
                kind="compose",
                label=f'service "{name}"' if name != "service" else (source if source != "<inline>" else "Compose fragment"),
                device_requests=tuple(requests),
                runtime=str(runtime) if runtime is not None else None,
                env=_env(svc.get("environment")),
                privileged=svc.get("privileged") is True,
                image=str(svc["image"]) if svc.get("image") else None,
                hints={
                    "compose_issues": tuple(issues),
                    "service": name,
                    "cdi_devices": tuple(cdi),
                    "raw_nvidia_devices": tuple(raw_nodes),
                    "compose_version": str(version) if version is not None else None,
                    "has_gpu_keys": devices_raw is not None or gpus is not None or bool(cdi),
                },
            )
        )
    return out
