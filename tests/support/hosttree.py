"""Fake host trees for the host-layer checks (PCI → kernel → /dev → NVML), built under a temp root.

gpudoctor reads every host file under a root (`LiveHost(root)`, CLI `--root`), so a directory that
looks like a host's `/sys`, `/proc`, `/dev` and `/usr/lib` is a whole test host. Two ways to get one:

1. From a small description (made-up hosts, any number of GPUs, any breakage)::

       from tests.support.hosttree import GpuSpec, HostSpec, build_tree, make_host, run_host_checks

       spec = HostSpec(gpus=[GpuSpec(index=i, bus_id=f"0000:{0x18 + i:02x}:00.0") for i in range(2)])
       spec = spec.but(modules=("nvidia",))              # nvidia_uvm not loaded
       host = make_host(tmp_path, spec)                  # tree + NVML answers from the same spec
       report = run_host_checks(host)                    # only platform/pci/kernel/devices/nvml checks
       report.verdict.root_cause == "kernel.module.loaded"

   `build_tree(root, spec)` writes the tree only; `nvml_snapshot(spec)` returns the NVML worker's
   JSON (`gpudoctor.nvml/v1`) for the same host.

2. From the real H100 capture in `tests/fixtures/real-h100-host/` (driver 580.159.04, open module,
   1 GPU, no /dev/char links)::

       root, snapshot = build_real_h100_tree(tmp_path)    # the captured files, verbatim
       (root / "dev/nvidia-uvm").unlink()                 # ...then a small, reviewed edit
       host = TreeHost(root, snapshot)

NVML never comes from the machine: `TreeHost(root, snapshot | HostCallError)` is a `RecordingHost`
under `root` whose `nvml.snapshot` call answers with the given worker JSON (or raises the given
`HostCallError`, e.g. `HostCallError("timeout", ...)` for a hung GPU). Because it records,
`host.bundle(version)` after a run is a support bundle that `ReplayHost` replays exactly.

Device nodes are real character devices (`os.mknod`) when running as root (tests and CI do), else
regular files (the devices checks will then say "not a character device"). Nothing outside `root`
is touched; the caller owns `root` (use pytest's `tmp_path`).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from gpudoctor import engine
from gpudoctor.facts.host import HostCallError, RecordingHost
from gpudoctor.facts.registry import FactSet
from gpudoctor.model import Report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REAL_H100 = FIXTURES / "real-h100-host"

HOST_LAYERS = ("platform", "pci", "kernel", "devices", "nvml")
NVIDIA_MAJOR = 195
CTL_MINOR = 255
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

# Same text as the real capture's /proc/driver/nvidia/params (tests/fixtures/real-h100-host).
_PARAMS_TAIL = (
    "InitializeSystemMemoryAllocations: 1\nUsePageAttributeTable: 4294967295\nEnableMSI: 1\n"
    "EnablePCIeGen3: 0\nMemoryPoolSize: 0\nKMallocHeapMaxSize: 0\nVMallocHeapMaxSize: 0\n"
    "IgnoreMMIOCheck: 0\nEnableStreamMemOPs: 0\nEnableUserNUMAManagement: 1\nNvLinkDisable: 1\n"
    'RmProfilingAdminOnly: 0\nRegisterPCIDriver: 1\nExcludedGpus: ""\n'
)


@dataclass(frozen=True)
class GpuSpec:
    """One GPU of a fake host. `minor` defaults to `index`."""

    index: int = 0
    uuid: str = "GPU-a063a891-e48a-e7bf-fe00-f170bc68c4bb"
    name: str = "NVIDIA H100 80GB HBM3"
    bus_id: str = "0000:00:06.0"  # sysfs form
    minor: int | None = None
    device_id: int = 0x2330  # PCI device id (H100 SXM5 80GB)
    pci_class: int = 0x030200  # 3D controller
    pci_driver: str | None = "nvidia"  # what /sys/bus/pci/devices/<bdf>/driver points to (None: unbound)
    kernel_knows: bool = True  # has /proc/driver/nvidia/gpus/<bdf>/information
    excluded: bool = False  # "GPU Excluded: Yes"
    in_nvml: bool = True  # listed by NVML
    nvml_handle_error: str | None = None  # e.g. "gpu-is-lost": nvmlDeviceGetHandleByIndex fails
    memory_total: int = 85520809984
    persistence_mode: int = 1
    compute_mode: int = 0  # 0 Default, 2 Prohibited, 3 Exclusive_Process
    mig: tuple[int, int] | None = (0, 0)  # (current, pending); None: not supported
    mig_devices: tuple[tuple[str, str], ...] = ()  # (uuid, name) per MIG device

    @property
    def dev_minor(self) -> int:
        return self.index if self.minor is None else self.minor

    def uuid_for(self, i: int) -> "GpuSpec":
        """A copy with a distinct UUID and bus id derived from `i` (for multi-GPU hosts)."""
        return replace(
            self,
            index=i,
            uuid=f"GPU-{i:08x}-e48a-e7bf-fe00-f170bc68c4bb",
            bus_id=f"0000:{0x18 + 0x10 * i:02x}:00.0",
        )


@dataclass(frozen=True)
class HostSpec:
    """A fake host. Defaults: one H100 on driver 580.159.04 (open module), healthy, like the real capture."""

    gpus: tuple[GpuSpec, ...] = (GpuSpec(),)
    driver_version: str = "580.159.04"
    open_module: bool = True
    modules: tuple[str, ...] = ("nvidia", "nvidia_uvm", "nvidia_modeset", "nvidia_drm")
    nouveau_loaded: bool = False  # adds nouveau to /proc/modules (bind a GPU with pci_driver="nouveau")
    uvm_major: int = 238
    caps_major: int = 241
    nodes_missing: tuple[str, ...] = ()  # e.g. ("/dev/nvidia-uvm",)
    node_mode: int = 0o666
    node_modes: Mapping[str, int] = field(default_factory=dict)  # per-path override
    node_gid: int = 0
    device_file_mode: int = 0o666  # /proc/driver/nvidia/params DeviceFileMode
    device_file_gid: int = 0
    char_links: bool | None = True  # /dev/char/<maj>:<min> links; None: no /dev/char at all
    library_version: str | None = None  # libnvidia-ml.so.<v> installed; None: same as driver_version
    nvml_library: bool = True  # False: no libnvidia-ml, NVML init → library-not-found
    nvml_init_error: str | None = None  # worker error name for nvmlInit (e.g. "lib-rm-version-mismatch")
    cuda_driver_version: int | None = 13000
    osrelease: str = "6.8.0-48-generic"
    wsl: bool = False  # WSL2: no PCI/kernel/dev nodes, /dev/dxg + /usr/lib/wsl/lib
    wsl_libs: tuple[str, ...] = ("libcuda.so.1", "libnvidia-ml.so.1", "libdxcore.so")
    nvswitches: tuple[str, ...] = ()  # bus ids of NVSwitch bridges (class 0x068000)
    other_pci: tuple[tuple[str, int, int], ...] = (("0000:00:00.0", 0x8086, 0x060000),)  # (bdf, vendor, class)

    def but(self, **changes: Any) -> "HostSpec":
        """A copy with some fields changed: `spec.but(modules=("nvidia",))`."""
        return replace(self, **changes)

    @classmethod
    def with_gpus(cls, n: int, **changes: Any) -> "HostSpec":
        return cls(gpus=tuple(GpuSpec().uuid_for(i) for i in range(n)), **changes)

    def gpu_but(self, index: int, **changes: Any) -> "HostSpec":
        """A copy with GPU `index` changed: `spec.gpu_but(0, compute_mode=2)`."""
        return replace(self, gpus=tuple(replace(g, **changes) if g.index == index else g for g in self.gpus))


# --------------------------------------------------------------------------------------------
# Low-level writers
# --------------------------------------------------------------------------------------------


def write(root: Path, path: str, text: str) -> Path:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def make_node(root: Path, path: str, major: int, minor: int, mode: int = 0o666, uid: int = 0, gid: int = 0) -> Path:
    """A character device `path` (under root) with exact mode; a regular file when not root."""
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists() or p.is_symlink():
        p.unlink()
    if IS_ROOT:
        os.mknod(p, mode | stat.S_IFCHR, os.makedev(major, minor))
        os.chown(p, uid, gid)
    else:
        p.write_text("")
    os.chmod(p, mode)
    return p


def symlink(root: Path, path: str, target: str) -> Path:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_symlink() or p.exists():
        p.unlink()
    os.symlink(target, p)
    return p


def pci_function(root: Path, bdf: str, vendor: int, device: int, pci_class: int, driver: str | None) -> None:
    """A PCI function laid out like sysfs: /sys/devices/pci0000:00/<bdf>/… and the bus symlink."""
    dev = f"/sys/devices/pci0000:00/{bdf}"
    write(root, f"{dev}/vendor", f"0x{vendor:04x}\n")
    write(root, f"{dev}/device", f"0x{device:04x}\n")
    write(root, f"{dev}/class", f"0x{pci_class:06x}\n")
    symlink(root, f"/sys/bus/pci/devices/{bdf}", f"../../../devices/pci0000:00/{bdf}")
    if driver:
        (root / f"sys/bus/pci/drivers/{driver}").mkdir(parents=True, exist_ok=True)
        symlink(root, f"{dev}/driver", f"../../../bus/pci/drivers/{driver}")


def version_line(version: str, open_module: bool) -> str:
    # Formats from the real capture (open) and failure-modes.md #8 / NVIDIA forums (proprietary).
    if open_module:
        return (
            f"NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {version}  Release Build  (nixbld@)  \n"
            "GCC version:  gcc version 15.3.0 (GCC) \n"
        )
    return (
        f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {version}  Tue Jun  6 22:20:39 UTC 2023\n"
        "GCC version:  gcc version 12.2.0 (Ubuntu 12.2.0-3ubuntu1) \n"
    )


def information(g: GpuSpec, driver_version: str) -> str:
    # Field layout and tabs exactly as /proc/driver/nvidia/gpus/<bdf>/information on the real H100.
    return (
        f"Model: \t\t {g.name}\nIRQ:   \t\t 41\nGPU UUID: \t {g.uuid}\nVideo BIOS: \t 96.00.da.00.0c\n"
        f"Bus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\nBus Location: \t {g.bus_id}\n"
        f"Device Minor: \t {g.dev_minor}\nGPU Firmware: \t {driver_version}\n"
        f"GPU Excluded:\t {'Yes' if g.excluded else 'No'}\n"
    )


def proc_devices(spec: HostSpec) -> str:
    chars = ["  1 mem", "  4 tty", "  5 /dev/tty", " 10 misc", "136 pts"]
    if "nvidia" in spec.modules:
        chars += [f"{NVIDIA_MAJOR} nvidia", f"{NVIDIA_MAJOR} nvidiactl"]
        chars += [f"{spec.caps_major} nvidia-caps"]
    if "nvidia_uvm" in spec.modules:
        chars += [f"{spec.uvm_major} nvidia-uvm"]
    chars.sort(key=lambda s: int(s.split()[0]))
    return "Character devices:\n" + "\n".join(chars) + "\n\nBlock devices:\n  7 loop\n259 blkext\n"


# --------------------------------------------------------------------------------------------
# Whole trees
# --------------------------------------------------------------------------------------------


def build_tree(root: Path, spec: HostSpec) -> Path:
    """Write the host described by `spec` under `root` (created if needed). Returns root."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dev").mkdir(exist_ok=True)
    (root / "sys/bus/pci/devices").mkdir(parents=True, exist_ok=True)
    if spec.wsl:
        return _build_wsl(root, spec)
    write(root, "/proc/sys/kernel/osrelease", spec.osrelease + "\n")
    write(root, "/proc/version", f"Linux version {spec.osrelease} (buildd@lcy02) (gcc 13.2.0) #1 SMP\n")
    for bdf, vendor, cls in spec.other_pci:
        pci_function(root, bdf, vendor, 0x1234, cls, None)
    for g in spec.gpus:
        pci_function(root, g.bus_id, 0x10DE, g.device_id, g.pci_class, g.pci_driver)
    for bdf in spec.nvswitches:
        pci_function(root, bdf, 0x10DE, 0x22A3, 0x068000, "nvidia-nvswitch")

    modules = list(spec.modules) + (["nouveau"] if spec.nouveau_loaded else [])
    write(root, "/proc/modules", "".join(f"{m} 1830912 0 - Live 0xffffffffc080c000 (O)\n" for m in modules))
    for m in modules:
        if m.startswith("nvidia"):
            write(root, f"/sys/module/{m}/version", spec.driver_version + "\n")
        else:
            (root / f"sys/module/{m}").mkdir(parents=True, exist_ok=True)
    write(root, "/proc/devices", proc_devices(spec))

    if "nvidia" in spec.modules:
        write(root, "/proc/driver/nvidia/version", version_line(spec.driver_version, spec.open_module))
        write(
            root,
            "/proc/driver/nvidia/params",
            "ResmanDebugLevel: 4294967295\nRmLogonRC: 1\nModifyDeviceFiles: 1\n"
            f"DeviceFileUID: 0\nDeviceFileGID: {spec.device_file_gid}\nDeviceFileMode: {spec.device_file_mode}\n"
            + _PARAMS_TAIL,
        )
        (root / "proc/driver/nvidia/gpus").mkdir(parents=True, exist_ok=True)
        for g in spec.gpus:
            if g.kernel_knows and g.pci_driver == "nvidia":
                write(root, f"/proc/driver/nvidia/gpus/{g.bus_id}/information", information(g, spec.driver_version))

    _build_nodes(root, spec)
    _build_libraries(root, spec)
    return root


def _node_list(spec: HostSpec) -> list[tuple[str, int, int]]:
    nodes: list[tuple[str, int, int]] = []
    if "nvidia" in spec.modules:
        nodes.append(("/dev/nvidiactl", NVIDIA_MAJOR, CTL_MINOR))
        for g in spec.gpus:
            if g.kernel_knows and g.pci_driver == "nvidia":
                nodes.append((f"/dev/nvidia{g.dev_minor}", NVIDIA_MAJOR, g.dev_minor))
    if "nvidia_uvm" in spec.modules:
        nodes += [("/dev/nvidia-uvm", spec.uvm_major, 0), ("/dev/nvidia-uvm-tools", spec.uvm_major, 1)]
    return [n for n in nodes if n[0] not in spec.nodes_missing]


def _build_nodes(root: Path, spec: HostSpec) -> None:
    nodes = _node_list(spec)
    for path, major, minor in nodes:
        make_node(root, path, major, minor, spec.node_modes.get(path, spec.node_mode), 0, spec.node_gid)
    if "nvidia" in spec.modules:
        # MIG capability nodes: root-only by design (modes from the real capture).
        make_node(root, "/dev/nvidia-caps/nvidia-cap1", spec.caps_major, 1, 0o400)
        make_node(root, "/dev/nvidia-caps/nvidia-cap2", spec.caps_major, 2, 0o444)
    if spec.char_links is None:
        return
    (root / "dev/char").mkdir(parents=True, exist_ok=True)
    symlink(root, "/dev/char/1:3", "../null")  # an unrelated link, as on every host
    if spec.char_links:
        for path, major, minor in nodes:
            symlink(root, f"/dev/char/{major}:{minor}", "../" + path.rsplit("/", 1)[-1])


def _build_libraries(root: Path, spec: HostSpec) -> None:
    if not spec.nvml_library:
        return
    version = spec.library_version or spec.driver_version
    libdir = root / "usr/lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True, exist_ok=True)
    (libdir / f"libnvidia-ml.so.{version}").write_text("")
    symlink(root, "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", f"libnvidia-ml.so.{version}")


def _build_wsl(root: Path, spec: HostSpec) -> Path:
    rel = "5.15.167.4-microsoft-standard-WSL2"
    write(root, "/proc/sys/kernel/osrelease", rel + "\n")
    write(root, "/proc/version", f"Linux version {rel} (root@f9c826d3017f) (gcc (GCC) 11.2.0) #1 SMP\n")
    write(root, "/proc/modules", "")
    write(root, "/proc/devices", "Character devices:\n  1 mem\n 10 misc\n\nBlock devices:\n  7 loop\n")
    make_node(root, "/dev/dxg", 10, 63, 0o666)
    libdir = root / "usr/lib/wsl/lib"
    libdir.mkdir(parents=True, exist_ok=True)
    for lib in spec.wsl_libs:
        (libdir / lib).write_text("")
    return root


# --------------------------------------------------------------------------------------------
# NVML answers
# --------------------------------------------------------------------------------------------

_ERROR_CODES = {
    "no-permission": (4, "Insufficient Permissions"),
    "insufficient-power": (8, "Insufficient External Power"),
    "driver-not-loaded": (9, "Driver Not Loaded"),
    "library-not-found": (12, "NVML Shared Library Not Found"),
    "gpu-is-lost": (15, "GPU is lost"),
    "reset-required": (16, "GPU requires reset"),
    "operating-system": (17, "GPU access blocked by the operating system"),
    "lib-rm-version-mismatch": (18, "Driver/library version mismatch"),
    "unknown": (999, "Unknown Error"),
    "not-supported": (3, "Not Supported"),
}


def nvml_error(name: str) -> dict[str, Any]:
    """The worker's error object for an NVML error name (codes and texts from nvml.h / pynvml)."""
    code, message = _ERROR_CODES[name]
    return {"error": {"code": code, "name": name, "message": message}}


def _nvml_bus(bdf: str) -> str:
    return "0000" + bdf.upper()  # NVML pads the domain to 8 digits: 00000000:00:06.0


def nvml_snapshot(spec: HostSpec) -> dict[str, Any]:
    """What `python -m gpudoctor.facts.nvml_worker` would print on this host."""
    out: dict[str, Any] = {"schema": "gpudoctor.nvml/v1", "bindings": None}
    if not spec.nvml_library:
        out["init"] = nvml_error("library-not-found")
        return out
    if spec.nvml_init_error:
        out["init"] = nvml_error(spec.nvml_init_error)
        return out
    if not spec.wsl and "nvidia" not in spec.modules:
        out["init"] = nvml_error("driver-not-loaded")
        return out
    out["init"] = {"value": True}
    out["driver_version"] = {"value": spec.driver_version}
    cuda = spec.cuda_driver_version
    out["cuda_driver_version"] = {"value": cuda} if cuda is not None else nvml_error("not-supported")
    out["nvml_version"] = {"value": f"13.{spec.driver_version}"}
    visible = [g for g in spec.gpus if g.in_nvml and (spec.wsl or (g.kernel_knows and g.pci_driver == "nvidia"))]
    out["device_count"] = {"value": len(visible)}
    devices = []
    for i, g in enumerate(visible):
        if g.nvml_handle_error:
            devices.append({"index": i, **nvml_error(g.nvml_handle_error)})
            continue
        d: dict[str, Any] = {
            "index": i,
            "uuid": {"value": g.uuid},
            "name": {"value": g.name},
            "pci_bus_id": {"value": _nvml_bus(g.bus_id)},
            "minor": nvml_error("not-supported") if spec.wsl else {"value": g.dev_minor},
            "memory": {"value": {"total": g.memory_total, "used": 503316480}},
            "persistence_mode": {"value": g.persistence_mode},
            "compute_mode": {"value": g.compute_mode},
            "mig_mode": {"value": list(g.mig)} if g.mig is not None else nvml_error("not-supported"),
        }
        if g.mig is not None and g.mig[0] == 1:
            d["mig_devices"] = {
                "value": [
                    {"index": j, "uuid": {"value": u}, "name": {"value": n}} for j, (u, n) in enumerate(g.mig_devices)
                ]
            }
        devices.append(d)
    out["devices"] = devices
    return out


# --------------------------------------------------------------------------------------------
# Hosts and runs
# --------------------------------------------------------------------------------------------


class TreeHost(RecordingHost):
    """A recording host under `root` whose NVML answer is `nvml` (worker JSON) or raises it (HostCallError)."""

    kind = "tree"

    def __init__(self, root: str | Path, nvml: Mapping[str, Any] | HostCallError | None = None) -> None:
        super().__init__(str(root))
        self._nvml = nvml

    def call(self, op: str, args: Sequence[Any], produce: Callable[[], Any], expect: Any = None) -> Any:
        if op == "nvml.snapshot":
            answer = self._nvml

            def fake() -> Any:
                if isinstance(answer, HostCallError):
                    raise answer
                if answer is None:
                    raise HostCallError("not-simulated", "this test host has no NVML answer")
                return copy.deepcopy(dict(answer))

            return self._answer(op, list(args), fake)
        return super().call(op, args, produce, expect)


def make_host(tmp_path: Path, spec: HostSpec, name: str = "host") -> TreeHost:
    """Build `spec` under tmp_path/name and return a host answering NVML from the same spec."""
    root = build_tree(Path(tmp_path) / name, spec)
    return TreeHost(root, nvml_snapshot(spec))


def host_checks() -> tuple[Any, ...]:
    return engine.select(engine.all_checks(with_plugins=False), only=HOST_LAYERS)


def run_host_checks(host: Any) -> Report:
    report, _ = engine.run(host, host_checks())
    return report


def run_host_checks_with_facts(host: Any) -> tuple[Report, FactSet]:
    return engine.run(host, host_checks())


def outcome(report: Report, check_id: str) -> Any:
    for o in report.outcomes:
        if o.check.id == check_id:
            return o
    raise KeyError(check_id)


def statuses(report: Report) -> dict[str, str]:
    return {o.check.id: o.status.value for o in report.outcomes}


def fix_commands(report: Report, check_id: str) -> list[str]:
    """Every literal command in the fixes of `check_id`'s results."""
    return [c for r in outcome(report, check_id).results if r.fix for c in r.fix.commands]


# --------------------------------------------------------------------------------------------
# The real H100 capture as a tree
# --------------------------------------------------------------------------------------------

_LS_LINE = re.compile(r"^([cbdl-])([rwxsStT-]{9})\s+\d+\s+(\d+)\s+(\d+)\s+(\d+),\s*(\d+)\s+.*?(\S+)$")


def parse_ls_ln(text: str) -> list[tuple[str, int, int, int, int, int]]:
    """`ls -ln /dev/nvidia*` → (path, mode, uid, gid, major, minor) for each character device.
    Relative names under a "/dev/nvidia-caps:" heading are joined to it; duplicates are dropped."""
    out: dict[str, tuple[str, int, int, int, int, int]] = {}
    heading = ""
    for line in text.splitlines():
        if line.endswith(":") and line.startswith("/"):
            heading = line[:-1]
            continue
        m = _LS_LINE.match(line.strip())
        if not m or m.group(1) != "c":
            continue
        name = m.group(7)
        path = name if name.startswith("/") else f"{heading}/{name}"
        out[path] = (path, _mode_bits(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)), int(m.group(6)))
    return list(out.values())


def _mode_bits(rwx: str) -> int:
    mode = 0
    for i, ch in enumerate(rwx):
        if ch not in "-ST":
            mode |= 1 << (8 - i)
    return mode


def build_real_h100_tree(tmp_path: Path, name: str = "real-h100") -> tuple[Path, dict[str, Any]]:
    """The real H100 host (tests/fixtures/real-h100-host) as a tree, files copied verbatim, plus its
    NVML worker snapshot (a fresh copy: edit it freely)."""
    src = REAL_H100
    root = Path(tmp_path) / name
    root.mkdir(parents=True, exist_ok=True)
    (root / "dev").mkdir(exist_ok=True)
    write(root, "/proc/sys/kernel/osrelease", (src / "osrelease").read_text())
    write(root, "/proc/version", (src / "proc-version").read_text())
    write(root, "/proc/modules", (src / "proc-modules").read_text())
    write(root, "/proc/devices", (src / "proc-devices").read_text())
    shutil.copytree(src / "proc-driver-nvidia", root / "proc/driver/nvidia", dirs_exist_ok=True)

    for fn_dir in sorted((src / "sysfs-pci").iterdir()):
        bdf = fn_dir.name
        dev = root / f"sys/devices/pci0000:00/{bdf}"
        dev.mkdir(parents=True, exist_ok=True)
        for f in fn_dir.iterdir():
            if f.name not in ("driver.link", "realpath"):
                shutil.copy(f, dev / f.name)
        symlink(root, f"/sys/bus/pci/devices/{bdf}", f"../../../devices/pci0000:00/{bdf}")
        link = (fn_dir / "driver.link").read_text().strip()
        if link:
            (root / f"sys/bus/pci/drivers/{os.path.basename(link)}").mkdir(parents=True, exist_ok=True)
            symlink(root, f"/sys/devices/pci0000:00/{bdf}/driver", link)

    # sys-module.txt: "nvidia: 580.159.04 /sys/module/nvidia" or "nouveau: absent".
    for line in (src / "sys-module.txt").read_text().splitlines():
        mod, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0] != "absent":
            write(root, f"/sys/module/{mod.strip()}/version", parts[0] + "\n")

    for path, mode, uid, gid, major, minor in parse_ls_ln((src / "dev-listing.txt").read_text()):
        make_node(root, path, major, minor, mode, uid, gid)

    # The driver's userspace as listed in usr-local-nvidia.txt (only the file names matter).
    lib_dir = None
    for line in (src / "usr-local-nvidia.txt").read_text().splitlines():
        if line.endswith(":"):
            lib_dir = line[:-1]
            continue
        fields = line.split()
        if lib_dir and fields and fields[0].startswith("-") and fields[-1].startswith("libnvidia-ml.so."):
            write(root, f"{lib_dir}/{fields[-1]}", "")

    snapshot = json.loads((src / "nvml-snapshot.json").read_text())
    return root, snapshot


def edit(root: Path, path: str, fn: Callable[[str], str]) -> None:
    """Rewrite one tree file through `fn` (a small, reviewed edit of a real capture)."""
    p = root / path.lstrip("/")
    p.write_text(fn(p.read_text()))


def remove(root: Path, *paths: str) -> None:
    for path in paths:
        p = root / path.lstrip("/")
        if p.is_symlink() or p.is_file() or (p.exists() and not p.is_dir()):
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)


def drop_lines(text: str, *prefixes: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(prefixes))


def all_results(report: Report) -> Iterable[tuple[str, Any]]:
    for o in report.outcomes:
        for r in o.results:
            yield o.check.id, r
