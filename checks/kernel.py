"""Checks of the kernel layer: nvidia.ko loaded, in the right flavour, with every GPU probed."""

from __future__ import annotations

from ..checking import Check, check
from ..facts.kernel import KernelFacts
from ..facts.pci import PciFacts
from ..facts.platform import PlatformFacts
from ..install import OPEN_DRIVER, PROPRIETARY_DRIVER, Distro, driver_install, module_rebuild, where
from ..links import DRIVER_GUIDE
from ..model import Fix, Layer, Result, failed, passed, skipped, warned
from .pci import blacklist_fix
from .platform import not_on_wsl


def kmod_fix(distro: Distro | None) -> Fix:
    """Load nvidia.ko, else rebuild it for the running kernel with that kernel's headers (gpudoctor/install.py)."""
    return Fix(
        "Load the NVIDIA kernel module; if modprobe fails, rebuild it for the running kernel (DKMS needs the "
        "headers of the running kernel). If the log says 'Key was rejected by service', Secure Boot blocks the "
        f"unsigned module: enrol the DKMS key with mokutil {where(distro)}.",
        (
            "sudo modprobe nvidia",
            *module_rebuild(distro),
            "sudo dmesg | grep -i -E 'NVRM|nvidia|Key was rejected'",
            "mokutil --sb-state",
        ),
        DRIVER_GUIDE,
    )

UVM_FIX = Fix(
    "Load nvidia-uvm and create its device nodes (CUDA needs them; nothing loads them on a headless "
    "host until something runs CUDA), then refresh CDI specs if you use CDI.",
    ("sudo nvidia-modprobe -u -c=0", "sudo modprobe nvidia-uvm"),
    "https://github.com/NVIDIA/nvidia-modprobe",
)


def uvm_loaded(kernel: KernelFacts) -> bool:
    return kernel.loaded("nvidia_uvm") or kernel.uvm_major is not None


def _version_text(kernel: KernelFacts) -> str:
    v = kernel.version
    if v is None or not v.version:
        return "nvidia"
    flavor = {"open": " (open kernel module)", "proprietary": " (proprietary kernel module)"}.get(v.flavor or "", "")
    return f"nvidia {v.version}{flavor}"


@check(
    "kernel.module.loaded",
    "The nvidia and nvidia_uvm kernel modules are loaded",
    layer=Layer.KERNEL,
    needs=("platform", "kernel"),
    after=("pci.gpu.present", "pci.gpu.driver-bound"),
)
def module_loaded(platform: PlatformFacts, kernel: KernelFacts) -> tuple[Result, ...] | Result:
    """nvidia.ko is loaded (/proc/driver/nvidia/version exists) and so is nvidia_uvm.

    Why: without nvidia.ko nothing can reach the GPU: nvidia-smi says "NVIDIA-SMI has failed because
    it couldn't communicate with the NVIDIA driver", containers fail with "nvidia-container-cli:
    initialization error: nvml error: driver not loaded: unknown." (failure mode `kmod-not-loaded`;
    often a kernel update without a DKMS rebuild, or Secure Boot rejecting the module). Without
    nvidia_uvm, nvidia-smi works but CUDA fails ("no CUDA-capable device is detected") — failure
    mode `uvm-or-control-nodes-missing`.

    Fix: `sudo modprobe nvidia` (rebuild with `sudo dkms autoinstall` if that fails; enrol the MOK
    key under Secure Boot); `sudo nvidia-modprobe -u -c=0` for nvidia_uvm.
    """
    skip = not_on_wsl(platform, "WSL2 has no nvidia.ko; the Windows driver serves the GPU")
    if skip:
        return skip
    if not kernel.nvidia_loaded:
        details = []
        if kernel.proc_modules_problem:
            details.append(kernel.proc_modules_problem)
        if kernel.version_problem:
            details.append(kernel.version_problem)
        if kernel.library_versions:
            vs = sorted(set(kernel.library_versions.values()))
            details.append(f"driver userspace {', '.join(vs)} is installed (libnvidia-ml.so), but its module is not loaded")
        # No driver userspace either: nothing to load, the driver is not installed (driver installation guide).
        fix = kmod_fix(platform.distro) if kernel.library_versions else Fix(
            f"Install the NVIDIA driver from NVIDIA's repository and reboot {where(platform.distro)} (`nvidia-open`; "
            f"`{PROPRIETARY_DRIVER}` for GPUs older than Turing).",
            (*driver_install(platform.distro), "sudo reboot"),
            DRIVER_GUIDE,
        )
        return failed(
            "the nvidia kernel module is not loaded (no /proc/driver/nvidia/version)",
            fix,
            details=details,
            evidence={"failure_mode": "kmod-not-loaded", "modules": dict(kernel.modules)},
        )
    results: list[Result] = []
    v = kernel.version
    ev = {"version": v.version if v else None, "flavor": v.flavor if v else None}
    if kernel.version_problem:
        results.append(
            warned(
                f"nvidia is loaded, but its version is unknown: {kernel.version_problem}",
                evidence=ev,
            )
        )
    else:
        results.append(passed(f"{_version_text(kernel)} is loaded", details=(v.raw,) if v else (), evidence=ev))
    if uvm_loaded(kernel):
        results.append(passed("nvidia_uvm is loaded", evidence={"uvm_major": kernel.uvm_major}))
    else:
        results.append(
            failed(
                "nvidia_uvm is not loaded: nvidia-smi works, but CUDA in containers will not",
                UVM_FIX,
                evidence={"failure_mode": "uvm-or-control-nodes-missing"},
            )
        )
    return tuple(results)


@check(
    "kernel.nouveau",
    "No open-source NVIDIA driver (nouveau, nova_core) is loaded",
    layer=Layer.KERNEL,
    needs=("platform", "kernel"),
    after=("pci.gpu.present", "pci.gpu.driver-bound"),
)
def nouveau(platform: PlatformFacts, kernel: KernelFacts) -> Result:
    """nouveau and nova_core are not loaded next to the NVIDIA driver.

    Why: if nouveau or nova_core is loaded it can claim a GPU first (at boot, after a rebind, on a
    hot-plugged GPU); nvidia.ko then logs "NVRM: The NVIDIA probe routine was not called for 1
    device(s)." and the GPU is lost to containers (failure mode `gpu-claimed-by-other-driver`). A GPU
    already claimed is reported by pci.gpu.driver-bound.

    Fix: `printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' | sudo tee
    /etc/modprobe.d/blacklist-nouveau.conf`, `sudo update-initramfs -u`, reboot.
    """
    skip = not_on_wsl(platform, "no Linux GPU driver runs inside WSL2")
    if skip:
        return skip
    loaded = [m for m in ("nouveau", "nova_core", "nova_drm") if kernel.loaded(m)]
    if loaded:
        return warned(
            f"{', '.join(loaded)} loaded (bound to no NVIDIA GPU now, but it can claim one at the next boot or rebind)",
            fix=blacklist_fix(platform.distro),
            evidence={"loaded": loaded, "failure_mode": "gpu-claimed-by-other-driver"},
        )
    return passed("neither nouveau nor nova_core is loaded")


def generation(device_id: int | None) -> str | None:
    """Coarse GPU generation from the PCI device id: enough to judge the kernel-module flavour.

    NVIDIA allocates device ids in ascending blocks per generation: Turing starts at 0x1e00 (TU102),
    Blackwell at 0x2900 (GB100; GB20x are 0x2bxx-0x2fxx). Everything below 0x1e00 (Maxwell, Pascal,
    Volta) has no GSP and cannot run the open module.
    """
    if device_id is None:
        return None
    if device_id < 0x1E00:
        return "pre-turing"
    if device_id >= 0x2900:
        return "blackwell+"
    return "turing-to-hopper"


@check(
    "kernel.module.flavor",
    "The kernel module flavour (open / proprietary) supports these GPUs",
    layer=Layer.KERNEL,
    needs=("platform", "kernel", "pci"),
    after=("kernel.module.loaded",),
)
def module_flavor(platform: PlatformFacts, kernel: KernelFacts, pci: PciFacts) -> Result:
    """The open kernel module is not used on pre-Turing GPUs, nor the proprietary one on Blackwell.

    Why: the open module needs the GPU System Processor (Turing and newer): on Maxwell/Pascal/Volta
    it logs "NVRM: ... is not supported by open nvidia.ko because it does not include the required
    GPU System Processor (GSP)." Blackwell and newer are supported only by the open module; the
    proprietary one fails with "RmInitAdapter failed!" and nvidia-smi says "No devices were found"
    (failure mode `kernel-module-flavor-wrong`).

    Fix: install the matching flavour from NVIDIA's repository (the driver installation guide) — `nvidia-open`
    for Blackwell, `cuda-drivers` (the proprietary modules, or a legacy branch) for older GPUs — and reboot.
    """
    skip = not_on_wsl(platform, "no Linux kernel module inside WSL2")
    if skip:
        return skip
    v = kernel.version
    if v is None or v.flavor is None:
        return skipped("kernel module flavour unknown (no NVRM version line)")
    gpus = [g for g in pci.gpus if g.driver in ("nvidia", None)]
    distro = platform.distro
    wrong_open = [g for g in gpus if v.flavor == "open" and generation(g.device) == "pre-turing"]
    wrong_prop = [g for g in gpus if v.flavor == "proprietary" and generation(g.device) == "blackwell+"]
    if wrong_open:
        return failed(
            f"open kernel module {v.version} loaded, but {', '.join(g.label for g in wrong_open)} predates Turing "
            "and needs the proprietary module",
            Fix(
                "Install the proprietary kernel modules from NVIDIA's repository (or a legacy branch for this GPU) "
                f"and reboot {where(distro)}.",
                (*driver_install(distro, PROPRIETARY_DRIVER), "sudo reboot"),
                DRIVER_GUIDE,
            ),
            evidence={"flavor": v.flavor, "gpus": [g.address for g in wrong_open], "failure_mode": "kernel-module-flavor-wrong"},
        )
    if wrong_prop:
        return failed(
            f"proprietary kernel module {v.version} loaded, but {', '.join(g.label for g in wrong_prop)} is "
            "Blackwell or newer and needs the open module",
            Fix(
                f"Install the open kernel modules from NVIDIA's repository and reboot {where(distro)}.",
                (*driver_install(distro, OPEN_DRIVER), "sudo reboot"),
                DRIVER_GUIDE,
            ),
            evidence={"flavor": v.flavor, "gpus": [g.address for g in wrong_prop], "failure_mode": "kernel-module-flavor-wrong"},
        )
    return passed(f"{v.flavor} kernel module suits the GPUs on the bus", evidence={"flavor": v.flavor})


@check(
    "kernel.gpus.known",
    "The nvidia driver probed every NVIDIA GPU on the PCI bus",
    layer=Layer.KERNEL,
    needs=("platform", "kernel", "pci"),
    after=("kernel.module.loaded", "kernel.module.flavor"),
)
def gpus_known(platform: PlatformFacts, kernel: KernelFacts, pci: PciFacts) -> tuple[Result, ...] | Result:
    """Each NVIDIA GPU on the PCI bus has /proc/driver/nvidia/gpus/<bus id>/information.

    Why: a GPU the driver did not probe (probe failure, RmInitAdapter failed, excluded with
    NVreg_ExcludedGpus, wrong module flavour, or a GPU that fell off the bus) has no device node and
    is invisible to NVML and containers (failure modes `gpu-lost-xid79`, `kernel-module-flavor-wrong`).

    Fix: read the driver's reason in the kernel log (`sudo dmesg | grep -E 'NVRM|nvidia'`); remove
    NVreg_ExcludedGpus if set; reboot; check power/cabling if the GPU fell off the bus.
    """
    skip = not_on_wsl(platform, "the WSL2 kernel has no /proc/driver/nvidia")
    if skip:
        return skip
    if kernel.gpus_problem:
        return warned(f"cannot list the GPUs the driver knows: {kernel.gpus_problem}")
    known = {g.bus_id: g for g in kernel.gpus if g.bus_id}
    expected = [g for g in pci.gpus if g.driver in ("nvidia", None)]
    results: list[Result] = []
    log_fix = Fix(
        "Read why the driver did not take the GPU in the kernel log, fix that (power, firmware, module "
        "options), then reload the driver or reboot.",
        ("sudo dmesg | grep -E 'NVRM|nvidia'", "sudo reboot"),
        DRIVER_GUIDE,
    )
    for g in expected:
        kg = known.get(g.address)
        subject = f"PCI {g.address}"
        if kg is None:
            results.append(
                failed(
                    f"{g.label} is on the PCI bus but the nvidia driver did not probe it "
                    f"(no /proc/driver/nvidia/gpus/{g.address})",
                    log_fix,
                    subject=subject,
                    details=(f"bound PCI driver: {g.driver or 'none'}",),
                    evidence={"address": g.address, "failure_mode": "gpu-lost-xid79"},
                )
            )
        elif kg.excluded:
            results.append(
                failed(
                    f"{g.label} is excluded by the driver (NVreg_ExcludedGpus)",
                    Fix(
                        "Remove the GPU from the NVreg_ExcludedGpus module option and reload the driver or reboot.",
                        ("grep -rn ExcludedGpus /etc/modprobe.d", "sudo reboot"),
                        DRIVER_GUIDE,
                    ),
                    subject=subject,
                    evidence={"address": g.address},
                )
            )
        elif kg.problem:
            results.append(
                warned(f"{g.label}: the driver knows it, but its information file is odd: {kg.problem}", subject=subject)
            )
        else:
            results.append(
                passed(
                    f"{kg.model or g.label} at {g.address}, minor {kg.minor if kg.minor is not None else '?'}",
                    subject=subject,
                    evidence={"address": g.address, "uuid": kg.uuid, "minor": kg.minor, "model": kg.model},
                )
            )
    pci_addrs = {g.address for g in pci.gpus}
    for kg in kernel.gpus:
        if kg.bus_id in pci_addrs:
            continue
        if kg.problem:
            results.append(warned(f"/proc/driver/nvidia/gpus/{kg.entry}: {kg.problem}"))
        elif not pci.readable:
            results.append(passed(f"{kg.model or 'GPU'} at {kg.bus_id or kg.entry}, minor {kg.minor}"))
        else:
            results.append(
                warned(f"the driver lists {kg.bus_id or kg.entry} ({kg.model or 'unknown model'}), which is not on the PCI bus")
            )
    if not results:
        return failed(
            "the nvidia driver is loaded but probed no GPU (/proc/driver/nvidia/gpus is empty)",
            log_fix,
            evidence={"failure_mode": "no-nvidia-pci-function"},
        )
    return tuple(results)


CHECKS: tuple[Check, ...] = (module_loaded, nouveau, module_flavor, gpus_known)
