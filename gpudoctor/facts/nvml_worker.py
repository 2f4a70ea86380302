"""NVML, queried in a child process that the parent can kill.

NVML can block for minutes on a GPU that fell off the bus (failure mode `gpu-lost-xid79`), so the
parent (`facts/nvml.py`) runs `python -m gpudoctor.facts.nvml_worker` with a timeout and reads one
JSON document from stdout. Every NVML call is wrapped: an error becomes data (`{"error": {...}}`),
never a traceback, so a half-broken GPU still reports what it can.

Uses NVIDIA's bindings, `nvidia-ml-py` (module `pynvml`). Only the functions named in
`PYNVML_FUNCTIONS` are called; simulations of NVML implement exactly these.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

SCHEMA = "gpudoctor.nvml/v1"

PYNVML_FUNCTIONS = (
    "nvmlInit",
    "nvmlShutdown",
    "nvmlSystemGetDriverVersion",
    "nvmlSystemGetCudaDriverVersion_v2",
    "nvmlSystemGetNVMLVersion",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetName",
    "nvmlDeviceGetPciInfo",
    "nvmlDeviceGetMinorNumber",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetPersistenceMode",
    "nvmlDeviceGetComputeMode",
    "nvmlDeviceGetMigMode",
    "nvmlDeviceGetMaxMigDeviceCount",
    "nvmlDeviceGetMigDeviceHandleByIndex",
)

# NVML return codes that pin a layer (nvml.h; failure-modes.md §0.5).
ERROR_NAMES = {
    1: "uninitialized",
    2: "invalid-argument",
    3: "not-supported",
    4: "no-permission",
    8: "insufficient-power",
    9: "driver-not-loaded",
    12: "library-not-found",
    13: "function-not-found",
    15: "gpu-is-lost",
    16: "reset-required",
    17: "operating-system",
    18: "lib-rm-version-mismatch",
    27: "not-ready",
    28: "gpu-not-found",
    999: "unknown",
}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _err(e: BaseException) -> dict[str, Any]:
    code = getattr(e, "value", None)
    if not isinstance(code, int):
        return {"code": None, "name": type(e).__name__, "message": str(e)}
    return {"code": code, "name": ERROR_NAMES.get(code, f"nvml-{code}"), "message": str(e)}


def _try(fn: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"value": fn()}
    except Exception as e:  # every NVML call may fail on a sick GPU
        return {"error": _err(e)}


def _device(nv: Any, index: int) -> dict[str, Any]:
    got = _try(lambda: nv.nvmlDeviceGetHandleByIndex(index))
    if "error" in got:
        return {"index": index, "error": got["error"]}
    h = got["value"]
    dev: dict[str, Any] = {"index": index}
    dev["uuid"] = _try(lambda: _text(nv.nvmlDeviceGetUUID(h)))
    dev["name"] = _try(lambda: _text(nv.nvmlDeviceGetName(h)))
    dev["pci_bus_id"] = _try(lambda: _text(nv.nvmlDeviceGetPciInfo(h).busId))
    dev["minor"] = _try(lambda: int(nv.nvmlDeviceGetMinorNumber(h)))

    def memory() -> dict[str, int]:
        m = nv.nvmlDeviceGetMemoryInfo(h)
        return {"total": int(m.total), "used": int(m.used)}

    dev["memory"] = _try(memory)
    dev["persistence_mode"] = _try(lambda: int(nv.nvmlDeviceGetPersistenceMode(h)))
    dev["compute_mode"] = _try(lambda: int(nv.nvmlDeviceGetComputeMode(h)))
    dev["mig_mode"] = _try(lambda: [int(x) for x in nv.nvmlDeviceGetMigMode(h)])
    mig = dev["mig_mode"].get("value")
    if mig and mig[0] == 1:
        dev["mig_devices"] = _mig_devices(nv, h)
    return dev


def _mig_devices(nv: Any, h: Any) -> dict[str, Any]:
    count = _try(lambda: int(nv.nvmlDeviceGetMaxMigDeviceCount(h)))
    if "error" in count:
        return count
    found = []
    for i in range(count["value"]):
        got = _try(lambda: nv.nvmlDeviceGetMigDeviceHandleByIndex(h, i))  # noqa: B023 (_try calls it at once)
        if "error" in got:
            continue  # unused slots answer NOT_FOUND
        mh = got["value"]
        found.append(
            {
                "index": i,
                "uuid": _try(lambda: _text(nv.nvmlDeviceGetUUID(mh))),  # noqa: B023
                "name": _try(lambda: _text(nv.nvmlDeviceGetName(mh))),  # noqa: B023
            }
        )
    return {"value": found}


def snapshot() -> dict[str, Any]:
    out: dict[str, Any] = {"schema": SCHEMA}
    try:
        import pynvml as nv
    except Exception as e:
        out["init"] = {"error": {"code": None, "name": "bindings-missing", "message": f"{type(e).__name__}: {e}"}}
        return out
    out["bindings"] = getattr(nv, "__file__", None) and getattr(nv, "__version__", None)
    init = _try(nv.nvmlInit)
    out["init"] = {"value": True} if "value" in init else init
    if "error" in init:
        return out
    try:
        out["driver_version"] = _try(lambda: _text(nv.nvmlSystemGetDriverVersion()))
        out["cuda_driver_version"] = _try(lambda: int(nv.nvmlSystemGetCudaDriverVersion_v2()))
        out["nvml_version"] = _try(lambda: _text(nv.nvmlSystemGetNVMLVersion()))
        count = _try(lambda: int(nv.nvmlDeviceGetCount()))
        out["device_count"] = count
        out["devices"] = [_device(nv, i) for i in range(count.get("value", 0))]
    finally:
        _try(nv.nvmlShutdown)
    return out


def main() -> int:
    json.dump(snapshot(), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
