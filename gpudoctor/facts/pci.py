"""NVIDIA functions on the PCI bus and the kernel driver bound to each (sysfs, under the host root).

Source of the rules: failure-modes.md §0.3 and §1 (`no-nvidia-pci-function`,
`gpu-claimed-by-other-driver`); libnvidia-container `src/nvc.c` matches vendor 0x10de with class
0x0300/0x0302 (mask 0xff00); NVSwitch bridges are class 0x0680.
"""

from __future__ import annotations

import os

from ..frozen import frozen
from .hostfiles import list_dir, read_file, readlink
from .registry import FactContext, fact

SYSFS_PCI = "/sys/bus/pci/devices"
NVIDIA_VENDOR = 0x10DE
CLASS_VGA = 0x0300
CLASS_3D = 0x0302
CLASS_BRIDGE_OTHER = 0x0680  # NVSwitch


@frozen
class PciFunction:
    address: str  # sysfs form, "0000:18:00.0"
    vendor: int
    device: int | None
    class_code: int | None  # 24-bit, e.g. 0x030200
    kind: str  # gpu | nvswitch | other
    driver: str | None  # basename of the driver link: nvidia, nouveau, nova_core, vfio-pci, ... or None

    @property
    def pci_id(self) -> str:
        dev = f"{self.device:04x}" if self.device is not None else "????"
        return f"{self.vendor:04x}:{dev}"

    @property
    def label(self) -> str:
        return f"{self.address} ({self.pci_id})"


@frozen
class PciFacts:
    readable: bool  # could /sys/bus/pci/devices be listed at all?
    error: str | None  # why not
    functions: tuple[PciFunction, ...]  # NVIDIA functions only
    other_nvidia: int  # NVIDIA functions that are neither GPU nor NVSwitch (HDMI audio, USB-C, ...)
    total_functions: int  # every PCI function seen (any vendor)
    problems: tuple[str, ...]  # functions whose files could not be read or made no sense

    @property
    def gpus(self) -> tuple[PciFunction, ...]:
        return tuple(f for f in self.functions if f.kind == "gpu")

    @property
    def nvswitches(self) -> tuple[PciFunction, ...]:
        return tuple(f for f in self.functions if f.kind == "nvswitch")


def _hex(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip(), 16)
    except ValueError:
        return None


def classify(class_code: int | None) -> str:
    if class_code is None:
        return "other"
    base = class_code >> 8
    if base in (CLASS_VGA, CLASS_3D):
        return "gpu"
    if base == CLASS_BRIDGE_OTHER:
        return "nvswitch"
    return "other"


def read_pci(ctx: FactContext) -> PciFacts:
    host = ctx.host
    listing = list_dir(host, SYSFS_PCI)
    if not listing.ok:
        why = "it does not exist" if listing.missing else listing.problem
        where = host.path(SYSFS_PCI)
        return PciFacts(False, f"cannot list {where}: {why}", (), 0, 0, ())
    functions: list[PciFunction] = []
    problems: list[str] = []
    other = 0
    for addr in listing.entries:
        base = f"{SYSFS_PCI}/{addr}"
        vendor_read = read_file(host, f"{base}/vendor")
        if not vendor_read.ok:
            problems.append(vendor_read.problem or f"{base}/vendor is missing")
            continue
        vendor = _hex(vendor_read.text)
        if vendor is None:
            problems.append(f"{base}/vendor holds {(vendor_read.text or '').strip()[:40]!r}, not a hex vendor id")
            continue
        if vendor != NVIDIA_VENDOR:
            continue
        class_read = read_file(host, f"{base}/class")
        class_code = _hex(class_read.text)
        if class_code is None:
            problems.append(class_read.problem or f"{base}/class is missing or not hex")
        device = _hex(read_file(host, f"{base}/device").text)
        kind = classify(class_code)
        if kind == "other" and class_code is not None:
            other += 1
            continue
        if class_code is None:
            # Unknown class on an NVIDIA function: count it as a GPU candidate rather than hide it.
            kind = "gpu"
        target = readlink(host, f"{base}/driver")
        driver = os.path.basename(target.rstrip("/")) if target else None
        functions.append(PciFunction(addr.lower(), vendor, device, class_code, kind, driver or None))
    return PciFacts(True, None, tuple(functions), other, len(listing.entries), tuple(problems))


@fact("pci", timeout_s=10)
def pci_fact(ctx: FactContext) -> PciFacts:
    """NVIDIA GPUs and NVSwitches on the PCI bus, and which kernel driver owns each."""
    return read_pci(ctx)
