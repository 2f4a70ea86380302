"""SIMULATED NVML for gpudoctor's tests: a fake `pynvml`, not NVIDIA's bindings.

Put this folder first on PYTHONPATH (the test bed does: `PYTHONPATH=tests/sim/fake_nvml`) and run
gpudoctor as a subprocess: the real NVML worker (`gpudoctor/facts/nvml_worker.py`) then imports this
module instead of nvidia-ml-py and queries a simulated host. The host is the JSON description named
by the environment variable GPUDOCTOR_SIM_HOST (a path, or the JSON text itself; see
`tests/sim/host.py`); only this fake reads that variable. Without it the fake behaves like a machine
whose libnvidia-ml.so.1 is missing (NVMLError code 12), like the real bindings do.

It implements exactly the functions that gpudoctor's worker calls (`PYNVML_FUNCTIONS` in
nvml_worker.py; tests/test_sim_nvml.py keeps the two lists equal), with the real bindings' error
model: every failure raises `NVMLError` (a subclass per code, as pynvml builds them) carrying the
NVML return code in `.value` and NVML's error string as `str()`.

Self-contained on purpose (stdlib only): it must not import gpudoctor or the tests.
"""

from __future__ import annotations

import json
import os
from typing import Any

__version__ = "0.0.0+gpudoctor.simulated"
SIMULATED = True

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_MEMORY = 20
NVML_ERROR_NOT_READY = 27
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_UNKNOWN = 999

# The strings nvmlErrorString returns (as listed in nvidia-ml-py's NVMLError._errcode_to_string).
_ERROR_STRINGS = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
    NVML_ERROR_INSUFFICIENT_POWER: "Insufficient External Power",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_TIMEOUT: "Timeout",
    NVML_ERROR_IRQ_ISSUE: "Interrupt Request Issue",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_CORRUPTED_INFOROM: "Corrupted infoROM",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
    NVML_ERROR_OPERATING_SYSTEM: "The operating system has blocked the request.",
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
    NVML_ERROR_MEMORY: "Insufficient Memory",
    NVML_ERROR_NOT_READY: "Not Ready",
    NVML_ERROR_GPU_NOT_FOUND: "GPU not found",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """Like pynvml.NVMLError: `NVMLError(code)` returns the code's subclass; `.value` is the code."""

    _valClassMapping: dict[int, type] = {}

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _ERROR_STRINGS.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


# One subclass per code, named from the constant as pynvml's _extractNVMLErrorsAsClasses does:
# NVML_ERROR_GPU_IS_LOST -> NVMLError_GpuIsLost.
for _name, _code in list(globals().items()):
    if _name.startswith("NVML_ERROR_") and isinstance(_code, int):
        _cls = "NVMLError_" + "".join(w.capitalize() for w in _name[len("NVML_ERROR_") :].split("_"))
        _sub = type(_cls, (NVMLError,), {})
        NVMLError._valClassMapping[_code] = _sub
        globals()[_cls] = _sub


class c_nvmlPciInfo_t:
    """The fields of nvmlPciInfo_t that callers read (bus id in NVML's 8-digit-domain form)."""

    def __init__(self, bus_id: str, device_id: int) -> None:
        self.busId = bus_id
        self.busIdLegacy = bus_id[4:]
        dom, bus, devfn = bus_id.split(":")
        self.domain = int(dom, 16)
        self.bus = int(bus, 16)
        self.device = int(devfn.split(".")[0], 16)
        self.pciDeviceId = (device_id << 16) | 0x10DE
        self.pciSubSystemId = 0


class c_nvmlMemory_t:
    def __init__(self, total: int, used: int) -> None:
        self.total = total
        self.used = used
        self.free = total - used


class _Handle:
    """An opaque device handle, like pynvml's c_nvmlDevice_t pointer."""

    def __init__(self, gpu: dict[str, Any], mig: dict[str, Any] | None = None) -> None:
        self.gpu = gpu
        self.mig = mig

    def __repr__(self) -> str:
        what = self.mig["uuid"] if self.mig else self.gpu["uuid"]
        return f"<simulated nvmlDevice {what}>"


_state: dict[str, Any] = {"host": None, "refs": 0}


def _load_host() -> dict[str, Any] | None:
    spec = os.environ.get("GPUDOCTOR_SIM_HOST")
    if not spec:
        return None
    text = spec if spec.lstrip().startswith("{") else open(spec, encoding="utf-8").read()
    return json.loads(text)


def _host() -> dict[str, Any]:
    if _state["host"] is None:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    return _state["host"]


def _check(handle: Any) -> _Handle:
    _host()
    if not isinstance(handle, _Handle):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return handle


# -- the functions gpudoctor's NVML worker calls (PYNVML_FUNCTIONS) ---------------------------------
def nvmlInit() -> None:
    host = _load_host()
    if host is None:
        # Same as the real bindings when libnvidia-ml.so.1 cannot be loaded.
        raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
    if host.get("nvml_init_error"):
        raise NVMLError(int(host["nvml_init_error"]))
    _state["host"] = host
    _state["refs"] += 1


def nvmlShutdown() -> None:
    _host()
    _state["refs"] -= 1
    if _state["refs"] <= 0:
        _state["host"] = None
        _state["refs"] = 0


def nvmlSystemGetDriverVersion() -> str:
    return str(_host()["driver_version"])


def nvmlSystemGetCudaDriverVersion_v2() -> int:
    return int(_host()["cuda_driver_version"])


def nvmlSystemGetNVMLVersion() -> str:
    # NVML's version is the CUDA major followed by the driver version, e.g. "13.580.95.05".
    host = _host()
    return f"{int(host['cuda_driver_version']) // 1000}.{host['driver_version']}"


def nvmlDeviceGetCount() -> int:
    return len(_host()["gpus"])


def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
    gpus = _host()["gpus"]
    if not isinstance(index, int) or not 0 <= index < len(gpus):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    gpu = gpus[index]
    if gpu.get("handle_error"):
        raise NVMLError(int(gpu["handle_error"]))
    return _Handle(gpu)


def nvmlDeviceGetUUID(handle: _Handle) -> str:
    h = _check(handle)
    return str(h.mig["uuid"] if h.mig else h.gpu["uuid"])


def nvmlDeviceGetName(handle: _Handle) -> str:
    h = _check(handle)
    if h.mig:
        return f"{h.gpu['name']} MIG {h.mig['profile']}"
    return str(h.gpu["name"])


def nvmlDeviceGetPciInfo(handle: _Handle) -> c_nvmlPciInfo_t:
    h = _check(handle)
    return c_nvmlPciInfo_t(str(h.gpu["pci_bus_id"]), int(h.gpu.get("pci_device_id", 0)))


def nvmlDeviceGetMinorNumber(handle: _Handle) -> int:
    h = _check(handle)
    if h.mig:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return int(h.gpu["minor"])


def nvmlDeviceGetMemoryInfo(handle: _Handle) -> c_nvmlMemory_t:
    h = _check(handle)
    return c_nvmlMemory_t(int(h.gpu["memory_total"]), int(h.gpu.get("memory_used", 0)))


def nvmlDeviceGetPersistenceMode(handle: _Handle) -> int:
    return int(_check(handle).gpu.get("persistence_mode", 0))


def nvmlDeviceGetComputeMode(handle: _Handle) -> int:
    return int(_check(handle).gpu.get("compute_mode", 0))


def nvmlDeviceGetMigMode(handle: _Handle) -> list[int]:
    h = _check(handle)
    return [int(h.gpu.get("mig_current", 0)), int(h.gpu.get("mig_pending", 0))]


def nvmlDeviceGetMaxMigDeviceCount(handle: _Handle) -> int:
    h = _check(handle)
    if not h.gpu.get("mig_current"):
        return 0
    return 7  # H100: at most seven MIG devices per GPU


def nvmlDeviceGetMigDeviceHandleByIndex(handle: _Handle, index: int) -> _Handle:
    h = _check(handle)
    if not h.gpu.get("mig_current"):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    for mig in h.gpu.get("migs", ()):
        if mig["index"] == index:
            return _Handle(h.gpu, mig)
    raise NVMLError(NVML_ERROR_NOT_FOUND)  # unused slots answer NOT_FOUND, as on real MIG GPUs
