"""The host's NVML view (driver version, CUDA driver version, GPUs, MIG), from a killable worker."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any, Mapping

from . import nvml_process
from ..frozen import frozen
from .host import HostCallError
from .registry import FactContext, fact

NVML_WORKER_TIMEOUT_S = 20.0


@frozen
class NvmlError:
    code: int | None
    name: str  # e.g. driver-not-loaded, lib-rm-version-mismatch, library-not-found, timeout
    message: str


@frozen
class MigDevice:
    index: int
    uuid: str | None
    name: str | None


@frozen
class NvmlGpu:
    index: int
    uuid: str | None
    name: str | None
    pci_bus_id: str | None  # NVML's form, "00000000:01:00.0"
    minor: int | None
    memory_total: int | None
    persistence_mode: int | None
    compute_mode: int | None  # 0 default, 1 exclusive-thread (old), 2 prohibited, 3 exclusive-process
    mig_current: int | None
    mig_pending: int | None
    mig_devices: tuple[MigDevice, ...]
    # Per-query errors ("uuid": NvmlError, ...); "handle" when the GPU could not be opened at all.
    errors: Mapping[str, NvmlError]

    @property
    def label(self) -> str:
        bits = [f"GPU {self.index}"]
        inner = ", ".join(b for b in (self.name, self.uuid) if b)
        return f"{bits[0]} ({inner})" if inner else bits[0]

    @property
    def pci_address(self) -> str | None:
        """Bus id in sysfs form ("0000:01:00.0"): NVML pads the domain to 8 digits."""
        return normalize_bus_id(self.pci_bus_id) if self.pci_bus_id else None


def normalize_bus_id(bus_id: str) -> str:
    """"00000000:01:00.0" / "0000:01:00.0" / "01:00.0" → "0000:01:00.0" (lower case)."""
    parts = bus_id.strip().lower().split(":")
    if len(parts) == 2:
        parts = ["0000", *parts]
    if len(parts) == 3:
        parts[0] = parts[0][-4:].rjust(4, "0")
    return ":".join(parts)


@frozen
class NvmlFacts:
    init_error: NvmlError | None
    driver_version: str | None
    cuda_driver_version: int | None  # e.g. 13000 for CUDA 13.0
    nvml_version: str | None
    device_count: int | None
    count_error: NvmlError | None
    gpus: tuple[NvmlGpu, ...]

    @property
    def ok(self) -> bool:
        return self.init_error is None

    @property
    def cuda_version_text(self) -> str | None:
        v = self.cuda_driver_version
        return f"{v // 1000}.{(v % 1000) // 10}" if v else None


def _error(raw: Mapping[str, Any] | None) -> NvmlError | None:
    if not raw or "error" not in raw:
        return None
    e = raw["error"]
    return NvmlError(e.get("code"), str(e.get("name")), str(e.get("message")))


def _value(raw: Mapping[str, Any] | None) -> Any:
    return raw.get("value") if isinstance(raw, Mapping) else None


def parse_snapshot(raw: Mapping[str, Any]) -> NvmlFacts:
    """Turn the worker's JSON into facts. Tolerates missing keys (older/odd workers)."""
    init_error = _error(raw.get("init"))
    gpus: list[NvmlGpu] = []
    for d in raw.get("devices") or []:
        errors = {}
        if "error" in d:
            errors["handle"] = _error(d)
        for key in ("uuid", "name", "pci_bus_id", "minor", "memory", "persistence_mode", "compute_mode", "mig_mode", "mig_devices"):
            err = _error(d.get(key))
            if err:
                errors[key] = err
        mem = _value(d.get("memory")) or {}
        mig = _value(d.get("mig_mode")) or [None, None]
        migs = tuple(
            MigDevice(int(m.get("index", 0)), _value(m.get("uuid")), _value(m.get("name")))
            for m in (_value(d.get("mig_devices")) or [])
        )
        gpus.append(
            NvmlGpu(
                index=int(d.get("index", len(gpus))),
                uuid=_value(d.get("uuid")),
                name=_value(d.get("name")),
                pci_bus_id=_value(d.get("pci_bus_id")),
                minor=_value(d.get("minor")),
                memory_total=mem.get("total") if isinstance(mem, Mapping) else None,
                persistence_mode=_value(d.get("persistence_mode")),
                compute_mode=_value(d.get("compute_mode")),
                mig_current=mig[0] if len(mig) > 0 else None,
                mig_pending=mig[1] if len(mig) > 1 else None,
                mig_devices=migs,
                errors={k: v for k, v in errors.items() if v},
            )
        )
    return NvmlFacts(
        init_error=init_error,
        driver_version=_value(raw.get("driver_version")),
        cuda_driver_version=_value(raw.get("cuda_driver_version")),
        nvml_version=_value(raw.get("nvml_version")),
        device_count=_value(raw.get("device_count")),
        count_error=_error(raw.get("device_count")),
        gpus=tuple(gpus),
    )


def run_worker(timeout: float = NVML_WORKER_TIMEOUT_S) -> dict[str, Any]:
    """The worker's answer (the one started early, when there is one); killed on timeout, counted from its start.
    Raises HostCallError for anything but a JSON answer."""
    taken = nvml_process.adopt()
    try:
        proc, started = taken or (nvml_process.spawn(), time.monotonic())
    except OSError as e:
        raise HostCallError("worker-crashed", f"the NVML worker could not be started: {e}") from None
    try:
        stdout, stderr = proc.communicate(timeout=max(0.0, timeout - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        # A hung NVML never hangs gpudoctor.
        proc.kill()
        proc.communicate()
        raise HostCallError("timeout", f"NVML did not answer within {timeout:g}s (the worker was killed)") from None
    out = stdout.decode("utf-8", "replace").strip()
    try:
        data = json.loads(out.splitlines()[-1]) if out else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        err = stderr.decode("utf-8", "replace").strip().splitlines()
        raise HostCallError(
            "worker-crashed", f"NVML worker exited {proc.returncode}: {err[-1] if err else 'no output'}"
        )
    return data


@fact("nvml", timeout_s=NVML_WORKER_TIMEOUT_S + 5)
def nvml_fact(ctx: FactContext) -> NvmlFacts:
    """NVML: driver and CUDA version, GPUs, MIG (in a killable worker process)."""
    try:
        raw = ctx.host.call("nvml.snapshot", [], run_worker, expect=dict)
    except HostCallError as e:
        return NvmlFacts(NvmlError(None, e.kind, e.message), None, None, None, None, None, ())
    return parse_snapshot(raw)
