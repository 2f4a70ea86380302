"""The NVIDIA kernel driver as the kernel reports it: modules, version and flavour, GPUs, majors, params.

Sources (failure-modes.md §0.3, §2, §3): `/proc/modules` and `/sys/module/<m>`; the first line of
`/proc/driver/nvidia/version` ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05 …"
vs "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.54.03 …"); one
`/proc/driver/nvidia/gpus/<bdf>/information` per GPU the driver probed; `/proc/devices` (major 195
is `nvidia-frontend` or `nvidia` depending on the driver); `/proc/driver/nvidia/params`
(`DeviceFileUID/GID/Mode`, set with `NVreg_DeviceFile*`).

Also the version suffixes of the userspace half of the driver (`libnvidia-ml.so.<version>` in the
usual library directories), so that a driver/library mismatch can name both versions even when
NVML refuses to initialise (failure mode `driver-library-version-mismatch`).
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import Mapping

from ..frozen import frozen
from .hostfiles import DRIVER_LIBRARY_DIRS, list_dir, read_file
from .nvml import normalize_bus_id
from .registry import FactContext, fact

# Modules whose presence matters: the NVIDIA stack, and the drivers that can claim the GPU instead
# (failure mode `gpu-claimed-by-other-driver`).
WATCHED_MODULES = (
    "nvidia",
    "nvidia_uvm",
    "nvidia_modeset",
    "nvidia_drm",
    "nvidia_peermem",
    "nouveau",
    "nova_core",
    "nova_drm",
    "vfio_pci",
)

_VERSION_RE = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)*)")
_LOOSE_VERSION_RE = re.compile(r"\b(\d{2,4}\.\d{1,3}(?:\.\d{1,3})?)\b")
_LIB_RE = re.compile(r"^libnvidia-ml\.so\.(\d+\.\d+(?:\.\d+)*)$")


@frozen
class ModuleVersion:
    raw: str  # the NVRM version line, as read
    version: str | None
    flavor: str | None  # "open" | "proprietary" | None (could not tell)


@frozen
class KernelGpu:
    """One GPU the NVIDIA driver probed (`/proc/driver/nvidia/gpus/<entry>/information`)."""

    entry: str  # directory name, normally the bus id
    bus_id: str | None  # normalised sysfs form, "0000:18:00.0"
    model: str | None
    uuid: str | None  # None when absent or not yet known ("GPU-????????-…")
    minor: int | None
    excluded: bool
    problem: str | None  # the information file was unreadable or made no sense


@frozen
class KernelFacts:
    modules: Mapping[str, bool]  # WATCHED_MODULES → loaded (per /proc/modules or /sys/module)
    proc_modules_problem: str | None
    version: ModuleVersion | None  # None: /proc/driver/nvidia/version absent
    version_problem: str | None  # present but unreadable / unparsable
    gpus: tuple[KernelGpu, ...]
    gpus_problem: str | None  # /proc/driver/nvidia/gpus unreadable
    majors: Mapping[str, int]  # /proc/devices character majors of nvidia* entries
    params: Mapping[str, str]  # /proc/driver/nvidia/params
    params_problem: str | None
    library_versions: Mapping[str, str] = field(default_factory=dict)  # path → libnvidia-ml version

    def loaded(self, module: str) -> bool:
        return bool(self.modules.get(module))

    @property
    def nvidia_loaded(self) -> bool:
        return self.loaded("nvidia") or self.version is not None

    @property
    def frontend_major(self) -> int | None:
        """Major of /dev/nvidia[0-9]* and /dev/nvidiactl (195 on every driver so far)."""
        return self.majors.get("nvidia-frontend", self.majors.get("nvidia"))

    @property
    def uvm_major(self) -> int | None:
        return self.majors.get("nvidia-uvm")

    def param_int(self, name: str) -> int | None:
        try:
            return int(self.params[name])
        except (KeyError, ValueError):
            return None


def parse_version(text: str) -> ModuleVersion | None:
    """The first line of /proc/driver/nvidia/version; None when it is not an NVRM version line."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line.startswith("NVRM version:"):
        return None
    if "Open Kernel Module" in line:
        flavor: str | None = "open"
    elif re.search(r"NVIDIA UNIX \S+ Kernel Module", line):
        flavor = "proprietary"
    else:
        flavor = None
    m = _VERSION_RE.search(line) or _LOOSE_VERSION_RE.search(line)
    return ModuleVersion(line[:300], m.group(1) if m else None, flavor)


def parse_colon_fields(text: str) -> dict[str, str]:
    """"Key: \\t value" lines → {key: value}; lines without a colon are ignored."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def parse_information(entry: str, text: str) -> KernelGpu:
    f = parse_colon_fields(text)
    problem = None
    minor: int | None = None
    raw_minor = f.get("Device Minor")
    if raw_minor is not None:
        try:
            minor = int(raw_minor)
        except ValueError:
            problem = f"Device Minor is {raw_minor[:40]!r}, not a number"
    bus = f.get("Bus Location")
    bus_id = _safe_bus(bus or entry)
    uuid = f.get("GPU UUID")
    if uuid and ("?" in uuid or not uuid.startswith("GPU-")):
        uuid = None
    if not f.get("Model") and raw_minor is None and bus is None:
        problem = "the information file has none of Model, Bus Location, Device Minor"
    excluded = f.get("GPU Excluded", f.get("Blacklisted", "No")).lower().startswith("yes")
    return KernelGpu(entry, bus_id, f.get("Model") or None, uuid or None, minor, excluded, problem)


def parse_proc_devices(text: str) -> dict[str, int]:
    """Character-device majors of every nvidia* driver in /proc/devices."""
    majors: dict[str, int] = {}
    section = None
    for line in text.splitlines():
        s = line.strip()
        if s.endswith(":"):
            section = s[:-1].lower()
            continue
        parts = s.split()
        if section != "character devices" or len(parts) != 2 or not parts[0].isdigit():
            continue
        if parts[1].startswith("nvidia"):
            majors.setdefault(parts[1], int(parts[0]))
    return majors


def parse_proc_modules(text: str) -> set[str]:
    return {line.split()[0] for line in text.splitlines() if line.split()}


def _modules(ctx: FactContext) -> tuple[dict[str, bool], str | None]:
    host = ctx.host
    listed: set[str] = set()
    problem = None
    pm = read_file(host, "/proc/modules", limit=1 << 20)
    if pm.ok:
        listed = parse_proc_modules(pm.text or "")
    elif not pm.missing:
        problem = pm.problem
    found = {}
    for m in WATCHED_MODULES:
        # /sys/module/<m> also covers modules built into the kernel (nouveau on some distros).
        found[m] = m in listed or host.exists(f"/sys/module/{m}")
    return found, problem


def _gpus(ctx: FactContext) -> tuple[tuple[KernelGpu, ...], str | None]:
    base = "/proc/driver/nvidia/gpus"
    listing = list_dir(ctx.host, base)
    if listing.missing:
        return (), None
    if not listing.ok:
        return (), listing.problem
    gpus = []
    for entry in listing.entries:
        r = read_file(ctx.host, f"{base}/{entry}/information")
        if not r.ok:
            why = r.problem or f"{base}/{entry}/information is missing"
            gpus.append(KernelGpu(entry, _safe_bus(entry), None, None, None, False, why))
            continue
        gpus.append(parse_information(entry, r.text or ""))
    return tuple(gpus), None


def _safe_bus(entry: str) -> str | None:
    bus = normalize_bus_id(entry)
    return bus if re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", bus) else None


def _library_versions(ctx: FactContext) -> dict[str, str]:
    found = {}
    for d in DRIVER_LIBRARY_DIRS:
        listing = list_dir(ctx.host, d)
        for name in listing.entries:
            m = _LIB_RE.match(name)
            if m:
                found[f"{d}/{name}"] = m.group(1)
    return found


def read_kernel(ctx: FactContext) -> KernelFacts:
    host = ctx.host
    modules, modules_problem = _modules(ctx)

    version = None
    version_problem = None
    vr = read_file(host, "/proc/driver/nvidia/version")
    if vr.ok:
        version = parse_version(vr.text or "")
        if version is None:
            snippet = (vr.text or "").strip().splitlines()[0][:80] if (vr.text or "").strip() else "nothing"
            version_problem = f"/proc/driver/nvidia/version holds {snippet!r}, not an NVRM version line"
    elif not vr.missing:
        version_problem = vr.problem
    if version is None:
        # /sys/module/nvidia/version has the bare version (no flavour) on every loaded driver.
        sv = read_file(host, "/sys/module/nvidia/version")
        if sv.ok and _LOOSE_VERSION_RE.fullmatch((sv.text or "").strip()):
            version = ModuleVersion((sv.text or "").strip(), (sv.text or "").strip(), None)

    gpus, gpus_problem = _gpus(ctx)

    majors: dict[str, int] = {}
    dr = read_file(host, "/proc/devices")
    if dr.ok:
        majors = parse_proc_devices(dr.text or "")

    params: dict[str, str] = {}
    params_problem = None
    pr = read_file(host, "/proc/driver/nvidia/params")
    if pr.ok:
        params = parse_colon_fields(pr.text or "")
    elif not pr.missing:
        params_problem = pr.problem

    return KernelFacts(
        modules=modules,
        proc_modules_problem=modules_problem,
        version=version,
        version_problem=version_problem,
        gpus=gpus,
        gpus_problem=gpus_problem,
        majors=majors,
        params=params,
        params_problem=params_problem,
        library_versions=_library_versions(ctx),
    )


@fact("kernel", timeout_s=10)
def kernel_fact(ctx: FactContext) -> KernelFacts:
    """The NVIDIA kernel driver: modules loaded, version and flavour, GPUs probed, majors, params."""
    return read_kernel(ctx)
