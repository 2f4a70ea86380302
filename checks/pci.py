"""Checks of the pci layer: is there an NVIDIA GPU on the bus, and does the nvidia driver own it?"""

from __future__ import annotations

from ..checking import Check, check
from ..facts.pci import PciFacts, PciFunction
from ..facts.platform import PlatformFacts
from ..install import Distro, initramfs_rebuild, where
from ..links import DRIVER_GUIDE
from ..model import Fix, Layer, Result, failed, passed, skipped, warned
from .platform import not_on_wsl

VERIFY_GPU_LINK = "https://docs.nvidia.com/cuda/cuda-installation-guide-linux/#verify-you-have-a-cuda-capable-gpu"

# PCI drivers that take an NVIDIA GPU away from nvidia.ko (failure mode `gpu-claimed-by-other-driver`).
OPEN_SOURCE_DRIVERS = ("nouveau", "nova_core", "nova-core", "nova_drm")
PASSTHROUGH_DRIVERS = ("vfio-pci", "pci-stub")

def blacklist_fix(distro: Distro | None) -> Fix:
    """The driver installation guide's nouveau blacklist, with the distro's initramfs rebuild (gpudoctor/install.py)."""
    return Fix(
        "Blacklist the in-kernel open-source driver so nvidia.ko can claim the GPU, rebuild the initramfs "
        f"and reboot {where(distro)}.",
        (
            "printf 'blacklist nouveau\\noptions nouveau modeset=0\\nblacklist nova_core\\nblacklist nova_drm\\n' "
            "| sudo tee /etc/modprobe.d/blacklist-nouveau.conf",
            initramfs_rebuild(distro),
            "sudo reboot",
        ),
        DRIVER_GUIDE,
    )


def vfio_fix(addresses: list[str], distro: Distro | None = None) -> Fix:
    return Fix(
        "The GPU is reserved for VM passthrough. If this host should use it, remove the vfio-pci "
        f"`ids=` option / driverctl override and give the GPU back to nvidia (or reboot) {where(distro)}.",
        (
            "grep -rn 'vfio' /etc/modprobe.d /etc/default/grub",
            *(f"sudo driverctl unset-override {a}" for a in addresses),
            f"{initramfs_rebuild(distro)} && sudo reboot",
        ),
        DRIVER_GUIDE,
    )


@check(
    "pci.gpu.present",
    "An NVIDIA GPU is on the PCI bus",
    layer=Layer.PCI,
    needs=("platform", "pci"),
    after=("platform.wsl",),
)
def gpu_present(platform: PlatformFacts, pci: PciFacts) -> Result:
    """At least one NVIDIA display or 3D controller (vendor 0x10de, class 0x0300/0x0302) is on the PCI bus.

    Why: without a PCI function the kernel driver has nothing to drive, NVML reports "No devices
    were found" and every GPU container fails (failure mode `no-nvidia-pci-function`): wrong cloud
    instance type, GPU not passed through to the VM, card unseated or unpowered, or firmware settings
    (Above 4G decoding) that keep the BARs from being assigned. Not applicable on WSL2.

    Fix: attach a GPU — pick a GPU instance type, pass the GPU through to the VM
    (`virsh attach-device`), reseat/power the card, enable Above 4G decoding; confirm with
    `lspci -nnk -d 10de:`.
    """
    skip = not_on_wsl(platform, "the GPU is paravirtualised through /dev/dxg, not a PCI function")
    if skip:
        return skip
    if not pci.readable:
        return warned(
            f"PCI bus not checked: {pci.error}",
            fix=Fix(
                "Run gpudoctor on the host itself, or mount the host's /sys into its container "
                "(gpudoctor reads the host under --root).",
                ("sudo gpudoctor check",),
                VERIFY_GPU_LINK,
            ),
            evidence={"error": pci.error},
        )
    gpus = pci.gpus
    if not gpus:
        details = [f"{pci.total_functions} PCI functions scanned, none an NVIDIA display/3D controller"]
        if pci.nvswitches:
            details.append(f"{len(pci.nvswitches)} NVSwitch bridge(s) found, but no GPU")
        details += [f"unreadable: {p}" for p in pci.problems]
        return failed(
            "no NVIDIA GPU on the PCI bus",
            Fix(
                "Attach an NVIDIA GPU to this machine: pick a GPU instance type, pass the GPU through to "
                "the VM, or reseat/power the card (enable Above 4G decoding in the firmware). There is no "
                "software fix on this host; confirm with lspci.",
                ("lspci -nnk -d 10de:", "sudo dmesg | grep -i -E 'NVRM|BAR'"),
                VERIFY_GPU_LINK,
            ),
            details=details,
            evidence={"functions_scanned": pci.total_functions, "failure_mode": "no-nvidia-pci-function"},
        )
    details = [f"{g.label}: class 0x{g.class_code or 0:06x}, driver {g.driver or 'none'}" for g in gpus]
    if pci.nvswitches:
        details.append(f"{len(pci.nvswitches)} NVSwitch bridge(s): " + ", ".join(s.address for s in pci.nvswitches))
    details += [f"unreadable: {p}" for p in pci.problems]
    n = len(gpus)
    return passed(
        f"{n} NVIDIA GPU{'s' if n != 1 else ''} on the PCI bus: " + ", ".join(g.label for g in gpus),
        details=details,
        evidence={"gpus": [g.address for g in gpus], "nvswitches": [s.address for s in pci.nvswitches]},
    )


def _bound_result(g: PciFunction, any_nvidia: bool, distro: Distro | None = None) -> Result:
    subject = f"PCI {g.address}"
    ev = {"address": g.address, "pci_id": g.pci_id, "driver": g.driver}
    if g.driver == "nvidia":
        return passed(f"{g.label} is bound to nvidia", subject=subject, evidence=ev)
    if g.driver in OPEN_SOURCE_DRIVERS:
        return failed(
            f"{g.label} is bound to {g.driver}, not nvidia",
            blacklist_fix(distro),
            subject=subject,
            details=(
                "the kernel log says: NVRM: The NVIDIA probe routine was not called for 1 device(s). "
                f"(or: NVRM: GPU {g.address} is already bound to {g.driver})",
            ),
            evidence={**ev, "failure_mode": "gpu-claimed-by-other-driver"},
        )
    if g.driver in PASSTHROUGH_DRIVERS:
        text = f"{g.label} is bound to {g.driver} (reserved for VM passthrough), not nvidia"
        ev = {**ev, "failure_mode": "gpu-claimed-by-other-driver"}
        if any_nvidia:
            # Another GPU is driven by nvidia: this one is most likely set aside on purpose.
            return warned(text + "; containers cannot use it", subject=subject, fix=vfio_fix([g.address], distro), evidence=ev)
        return failed(text, vfio_fix([g.address], distro), subject=subject, evidence=ev)
    if g.driver is None:
        # Normal when nvidia.ko is not loaded; the kernel layer names the cause.
        return warned(
            f"{g.label} is bound to no kernel driver",
            subject=subject,
            details=("see kernel.module.loaded and kernel.gpus.known for why nvidia did not take it",),
            evidence=ev,
        )
    return failed(
        f"{g.label} is bound to {g.driver}, not nvidia",
        Fix(
            f"Unbind {g.driver} from the GPU and let nvidia claim it (or reboot after removing whatever binds it).",
            (
                f"echo {g.address} | sudo tee /sys/bus/pci/drivers/{g.driver}/unbind",
                "sudo modprobe nvidia",
            ),
            DRIVER_GUIDE,
        ),
        subject=subject,
        evidence={**ev, "failure_mode": "gpu-claimed-by-other-driver"},
    )


@check(
    "pci.gpu.driver-bound",
    "Each NVIDIA GPU is bound to the nvidia kernel driver",
    layer=Layer.PCI,
    needs=("platform", "pci"),
    after=("pci.gpu.present",),
)
def gpu_driver_bound(platform: PlatformFacts, pci: PciFacts) -> tuple[Result, ...] | Result:
    """Every NVIDIA GPU on the PCI bus is bound to nvidia, not nouveau, nova_core or vfio-pci.

    Why: a GPU bound to another driver is invisible to nvidia.ko: the kernel log shows "NVRM: The
    NVIDIA probe routine was not called for 1 device(s)." or "NVRM: GPU 0000:01:00.0 is already
    bound to vfio-pci.", NVML skips it and containers cannot use it (failure mode
    `gpu-claimed-by-other-driver`). A GPU bound to no driver at all means nvidia.ko is not loaded or
    did not take it; the kernel checks say why.

    Fix: blacklist nouveau / nova_core
    (`printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' | sudo tee /etc/modprobe.d/blacklist-nouveau.conf`),
    `sudo update-initramfs -u`, reboot; for vfio-pci remove the `ids=` option or driverctl override.
    """
    skip = not_on_wsl(platform, "no PCI function on WSL2")
    if skip:
        return skip
    if not pci.readable:
        return skipped("PCI bus not readable: " + str(pci.error))
    if not pci.gpus:
        return skipped("no NVIDIA GPU on the PCI bus")
    any_nvidia = any(g.driver == "nvidia" for g in pci.gpus)
    return tuple(_bound_result(g, any_nvidia, platform.distro) for g in pci.gpus)


CHECKS: tuple[Check, ...] = (gpu_present, gpu_driver_bound)
