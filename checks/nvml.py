"""Checks of the nvml layer: the driver's userspace answers, and its view agrees with PCI, kernel and /dev."""

from __future__ import annotations

from ..checking import Check, check
from ..facts.devices import DeviceFacts
from ..facts.kernel import KernelFacts
from ..facts.nvml import NvmlError, NvmlFacts, NvmlGpu
from ..facts.pci import PciFacts
from ..facts.platform import WSL_LIB_DIR, PlatformFacts
from ..install import Distro, driver_hold, driver_userspace, where
from ..links import DRIVER_GUIDE, TOOLKIT_TROUBLESHOOTING
from ..model import Fix, Layer, Result, errored, failed, passed, skipped, warned
from .devices import MODPROBE_LINK
from .kernel import kmod_fix
from .platform import WSL_GUIDE

NVML_API = "https://docs.nvidia.com/deploy/nvml-api/"
XID_LINK = "https://docs.nvidia.com/deploy/xid-errors/index.html"
MIG_GUIDE = "https://docs.nvidia.com/datacenter/tesla/mig-user-guide/index.html"

# nvmlDeviceGetComputeMode (nvml.h): 0 default, 1 exclusive-thread (removed), 2 prohibited, 3 exclusive-process.
COMPUTE_MODES = {0: "Default", 1: "Exclusive_Thread", 2: "Prohibited", 3: "Exclusive_Process"}

GPU_LOST_FIX = Fix(
    "A GPU fell off the bus or the driver hangs: look for Xid 79 / 'fallen off the bus' in the kernel log, "
    "drain the host and reboot; check power, cabling and thermals, and RMA the GPU if it repeats.",
    ("sudo dmesg | grep -E 'NVRM: Xid|fallen off the bus'", "sudo reboot"),
    XID_LINK,
)

# failure-modes.md #8 `driver-library-version-mismatch`: one fix whichever check sees it first.
def version_mismatch_fix(distro: Distro | None) -> Fix:
    return Fix(
        "The driver was upgraded but the old kernel module is still loaded: reboot (or, with no GPU "
        "users, reload the modules), then hold the driver packages so unattended upgrades cannot "
        f"repeat it {where(distro)}. Recreate existing GPU containers afterwards.",
        (
            "sudo reboot",
            "sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia",
            driver_hold(distro),
        ),
        DRIVER_GUIDE,
    )


def _branch(kernel: KernelFacts) -> str:
    v = kernel.version.version if kernel.version else None
    return v.split(".")[0] if v else "<branch>"


def _library_version(kernel: KernelFacts) -> str | None:
    """The installed libnvidia-ml version that differs from the module's, else any one found."""
    versions = sorted(set(kernel.library_versions.values()))
    module = kernel.version.version if kernel.version else None
    others = [v for v in versions if v != module]
    return next(iter(others or versions), None)


def _init_failure(platform: PlatformFacts, kernel: KernelFacts, e: NvmlError) -> Result:
    raw = f"NVML: {e.message}" + (f" (code {e.code})" if e.code is not None else "")
    ev = {"nvml_error": e.name, "code": e.code, "message": e.message}
    module = kernel.version.version if kernel.version else None
    if e.name == "library-not-found":
        if platform.is_wsl2:
            return failed(
                f"libnvidia-ml.so.1 cannot be loaded; on WSL2 it comes from the Windows driver in {WSL_LIB_DIR}",
                Fix(
                    "Install or update the NVIDIA driver on Windows, then restart WSL (in Windows PowerShell).",
                    ("wsl --update", "wsl --shutdown"),
                    WSL_GUIDE,
                ),
                details=(raw,),
                evidence={**ev, "failure_mode": "wsl2-specific"},
            )
        branch = _branch(kernel)
        details = [raw]
        if module:
            details.append(f"kernel module {module} is loaded: install the userspace of exactly that version")
        return failed(
            "NVML library libnvidia-ml.so.1 not found: the driver's userspace is not installed or not in the ld cache",
            Fix(
                "Install the driver's userspace libraries (same version as the kernel module) from NVIDIA's "
                f"repository and refresh the library cache {where(platform.distro)}.",
                (*driver_userspace(platform.distro, branch), "ldconfig -p | grep libnvidia-ml.so.1"),
                DRIVER_GUIDE,
            ),
            details=details,
            evidence={**ev, "failure_mode": "host-nvml-missing"},
        )
    if e.name == "driver-not-loaded":
        return failed(
            "NVML says the NVIDIA driver is not loaded (Driver Not Loaded)",
            kmod_fix(platform.distro),
            details=(raw,),
            evidence={**ev, "failure_mode": "kmod-not-loaded"},
        )
    if e.name == "lib-rm-version-mismatch":
        lib = _library_version(kernel)
        return failed(
            f"driver/library version mismatch: kernel module {module or 'unknown'}, NVML library {lib or 'unknown'}",
            version_mismatch_fix(platform.distro),
            details=(raw, *(f"{path}: {v}" for path, v in sorted(kernel.library_versions.items()))),
            evidence={**ev, "module_version": module, "library_version": lib, "failure_mode": "driver-library-version-mismatch"},
        )
    if e.name == "no-permission":
        return failed(
            "NVML: Insufficient Permissions — this user cannot open the NVIDIA device nodes",
            Fix(
                "Open the device nodes to all users (remove NVreg_DeviceFileMode/GID options) or run as a member "
                "of their group.",
                ("ls -ln /dev/nvidia*", "grep -rn NVreg_DeviceFile /etc/modprobe.d"),
                TOOLKIT_TROUBLESHOOTING,
            ),
            details=(raw,),
            evidence={**ev, "failure_mode": "device-node-permissions"},
        )
    if e.name in ("timeout", "gpu-is-lost"):
        what = "NVML did not answer in time and its worker was killed" if e.name == "timeout" else "NVML: GPU is lost"
        return failed(
            f"{what}: a GPU fell off the bus or the driver hangs",
            GPU_LOST_FIX,
            details=(raw,),
            evidence={**ev, "failure_mode": "gpu-lost-xid79"},
        )
    if e.name == "operating-system":
        if platform.is_wsl:
            return failed(
                "NVML: GPU access blocked by the operating system (WSL2)",
                Fix(
                    "Update the Windows NVIDIA driver (WDDM mode; TCC-mode GPUs are blocked) and WSL, and remove any "
                    "Linux driver installed in the distro.",
                    ("wsl --update", "wsl --shutdown"),
                    WSL_GUIDE,
                ),
                details=(raw,),
                evidence={**ev, "failure_mode": "wsl2-specific"},
            )
        return failed(
            "NVML: GPU access blocked by the operating system (a device cgroup or sandbox denies the nodes)",
            Fix(
                "Run gpudoctor on the host itself (not in a container without GPU access), or give its container the GPUs.",
                ("sudo gpudoctor check",),
                TOOLKIT_TROUBLESHOOTING,
            ),
            details=(raw,),
            evidence={**ev, "failure_mode": "cgroup-device-access-lost"},
        )
    if e.name == "bindings-missing":
        return errored(
            "gpudoctor cannot import NVIDIA's NVML bindings (nvidia-ml-py)",
            fix=Fix("Install gpudoctor's dependencies.", ("pip install nvidia-ml-py",), NVML_API),
            details=(e.message,),
            evidence=ev,
        )
    if e.name == "worker-crashed":
        return failed(
            f"the NVML query process died: {e.message}",
            Fix(
                "See whether NVML works outside gpudoctor and what the kernel log says.",
                ("nvidia-smi", "sudo dmesg | grep NVRM"),
                NVML_API,
            ),
            evidence=ev,
        )
    return failed(
        f"NVML failed to initialise: {e.message} ({e.name})",
        Fix(
            "See what nvidia-smi and the kernel log say; a reboot clears most driver states.",
            ("nvidia-smi", "sudo dmesg | grep NVRM"),
            NVML_API,
        ),
        evidence=ev,
    )


@check(
    "nvml.init",
    "NVML (libnvidia-ml.so.1) loads and initialises",
    layer=Layer.NVML,
    needs=("platform", "kernel", "nvml"),
    after=("pci.gpu.present", "kernel.module.loaded"),
)
def init(platform: PlatformFacts, kernel: KernelFacts, nvml: NvmlFacts) -> Result:
    """The host's NVML library loads and nvmlInit succeeds (queried in a worker that is killed on timeout).

    Why: the toolkit's hook and CDI generation both start by initialising NVML; its return code
    names the broken layer: "libnvidia-ml.so.1: cannot open shared object file" (`host-nvml-missing`),
    "Driver Not Loaded" (`kmod-not-loaded`), "Driver/library version mismatch"
    (`driver-library-version-mismatch`), "Insufficient Permissions" (`device-node-permissions`),
    "GPU access blocked by the operating system" (`wsl2-specific`), or no answer at all (a GPU that
    fell off the bus, `gpu-lost-xid79`).

    Fix: depends on the error — install the driver's userspace from NVIDIA's repository + `sudo ldconfig`; `sudo modprobe
    nvidia`; reboot after a driver upgrade; open the device nodes; reboot a hung GPU.
    """
    if nvml.init_error is not None:
        return _init_failure(platform, kernel, nvml.init_error)
    return passed(
        f"NVML initialised (library {nvml.nvml_version or 'version unknown'})",
        evidence={"nvml_version": nvml.nvml_version},
    )


@check(
    "nvml.driver-version",
    "NVML reports the driver version the kernel runs, and a CUDA driver version",
    layer=Layer.NVML,
    needs=("kernel", "nvml", "platform"),
    after=("nvml.init",),
)
def driver_version(kernel: KernelFacts, nvml: NvmlFacts, platform: PlatformFacts | None = None) -> tuple[Result, ...] | Result:
    """NVML's driver version equals the loaded kernel module's, and the CUDA driver version is known.

    Why: the container toolkit mounts the driver libraries of NVML's version; a different loaded
    module means "Driver/library version mismatch" inside containers (failure mode
    `driver-library-version-mismatch`). No CUDA driver version ("CUDA Version: N/A") means the CUDA
    driver library is missing (`host-libcuda-missing`): images fail their `cuda>=` requirement.

    Fix: reboot after a driver upgrade; install the CUDA driver library (NVIDIA's repository) and `sudo ldconfig`.
    """
    results: list[Result] = []
    distro = platform.distro if platform is not None else None
    module = kernel.version.version if kernel.version else None
    nv = nvml.driver_version
    ev = {"driver_version": nv, "module_version": module, "cuda_driver_version": nvml.cuda_driver_version}
    if nv is None:
        results.append(warned("NVML did not report a driver version", evidence=ev))
    elif module and module != nv:
        results.append(
            failed(
                f"driver/library version mismatch: kernel module {module}, NVML library {nv}",
                version_mismatch_fix(distro),
                evidence={**ev, "failure_mode": "driver-library-version-mismatch"},
            )
        )
    if not nvml.cuda_driver_version:
        results.append(
            warned(
                f"NVML reports no CUDA driver version (driver {nv or 'unknown'}): libcuda.so.1 may be missing",
                fix=Fix(
                    "Install the CUDA driver library of the same driver version from NVIDIA's repository and refresh "
                    f"the library cache {where(distro)}.",
                    driver_userspace(distro, _branch(kernel)),
                    DRIVER_GUIDE,
                ),
                evidence={**ev, "failure_mode": "host-libcuda-missing"},
            )
        )
    if not results:
        results.append(passed(f"driver {nv}, CUDA {nvml.cuda_version_text}", evidence=ev))
    return tuple(results)


def _gib(n: int | None) -> str:
    return f"{n / 2**30:.0f} GiB" if n else "? GiB"


def _handle_failure(g: NvmlGpu, e: NvmlError) -> Result:
    subject = f"GPU {g.index}"
    raw = f"NVML: {e.message}"
    ev = {"index": g.index, "nvml_error": e.name}
    if e.name in ("gpu-is-lost", "unknown", "timeout"):
        return failed(f"GPU {g.index}: {e.message} — the GPU is lost or hung", GPU_LOST_FIX, subject=subject, details=(raw,),
                      evidence={**ev, "failure_mode": "gpu-lost-xid79"})
    if e.name == "reset-required":
        return failed(
            f"GPU {g.index}: GPU requires reset (uncorrectable ECC / pending row remap)",
            Fix(
                "Drain the GPU's workloads and reset it (or reboot); RMA if it recurs.",
                (f"sudo nvidia-smi -r -i {g.index}", "sudo reboot"),
                XID_LINK,
            ),
            subject=subject,
            evidence={**ev, "failure_mode": "ecc-remap-reset-required"},
        )
    if e.name == "insufficient-power":
        return failed(
            f"GPU {g.index}: insufficient power (auxiliary power cables unplugged?)",
            Fix("Power the host off and connect the GPU's auxiliary power cables.", ("sudo poweroff",), XID_LINK),
            subject=subject,
            evidence=ev,
        )
    return failed(
        f"GPU {g.index} cannot be opened: {e.message} ({e.name})",
        Fix("See what nvidia-smi and the kernel log say about this GPU.", ("nvidia-smi", "sudo dmesg | grep NVRM"), NVML_API),
        subject=subject,
        evidence=ev,
    )


def _gpu_result(g: NvmlGpu, wsl: bool) -> Result:
    if "handle" in g.errors:
        return _handle_failure(g, g.errors["handle"])
    subject = g.label
    ev = {
        "index": g.index,
        "uuid": g.uuid,
        "name": g.name,
        "pci_bus_id": g.pci_bus_id,
        "minor": g.minor,
        "memory_total": g.memory_total,
        "persistence_mode": g.persistence_mode,
        "compute_mode": g.compute_mode,
    }
    mode = g.compute_mode
    if mode in (1, 2, 3):
        name = COMPUTE_MODES[mode]
        fix = Fix(
            "Set the compute mode back to Default if your scheduler allows it (or run one process per GPU).",
            (f"sudo nvidia-smi -i {g.index} -c DEFAULT",),
            NVML_API,
        )
        ev = {**ev, "failure_mode": "compute-mode-not-default"}
        if mode == 2:
            # Prohibited: no process can create a CUDA context at all ("all CUDA-capable devices are busy or unavailable").
            return failed(f"GPU {g.index} compute mode is Prohibited: no CUDA context can be created on it", fix,
                          subject=subject, evidence=ev)
        return warned(
            f"GPU {g.index} compute mode is {name}: a second process (or a container next to a host process) "
            "gets 'all CUDA-capable devices are busy or unavailable'",
            fix=fix,
            subject=subject,
            evidence=ev,
        )
    # Queries that are legitimately unsupported (not-supported) are not worth a warning; on WSL2
    # there are no minor numbers.
    odd = {
        k: e
        for k, e in g.errors.items()
        if e.name != "not-supported" and not (wsl and k == "minor") and k not in ("mig_mode", "mig_devices")
    }
    text = (
        f"{g.name or 'GPU'} at {g.pci_address or '?'}, {g.uuid or 'no UUID'}, minor "
        f"{g.minor if g.minor is not None else '?'}, {_gib(g.memory_total)}, persistence "
        f"{'on' if g.persistence_mode == 1 else 'off' if g.persistence_mode == 0 else '?'}"
    )
    if odd:
        return warned(
            f"GPU {g.index}: {text}; NVML could not tell " + ", ".join(f"{k} ({e.message})" for k, e in odd.items()),
            subject=subject,
            evidence=ev,
        )
    return passed(f"GPU {g.index}: {text}", subject=subject, evidence=ev)


@check(
    "nvml.gpus",
    "NVML can open every GPU, in Default compute mode",
    layer=Layer.NVML,
    needs=("platform", "nvml"),
    after=("nvml.init", "kernel.gpus.known"),
)
def gpus(platform: PlatformFacts, nvml: NvmlFacts) -> tuple[Result, ...] | Result:
    """NVML lists at least one GPU, opens each one, and each is in the Default compute mode.

    Why: a GPU NVML cannot open ("GPU is lost", "Unknown Error") breaks every container start that
    enumerates GPUs: "nvidia-container-cli: detection error: nvml error: unknown error: unknown"
    (`gpu-lost-xid79`). A GPU in Prohibited compute mode accepts no CUDA context;
    Exclusive_Process allows only one ("all CUDA-capable devices are busy or unavailable",
    `compute-mode-not-default`).

    Fix: reboot a lost GPU (check the kernel log for Xid 79); `sudo nvidia-smi -i <idx> -c DEFAULT`.
    """
    if nvml.count_error is not None:
        e = nvml.count_error
        return failed(f"NVML cannot count the GPUs: {e.message} ({e.name})", GPU_LOST_FIX, evidence={"nvml_error": e.name})
    if not nvml.gpus:
        return failed(
            "NVML sees no GPU (nvidia-smi would say 'No devices were found')",
            Fix(
                "Read why the driver has no usable GPU in the kernel log; reboot.",
                ("sudo dmesg | grep -E 'NVRM|nvidia'", "sudo reboot"),
                DRIVER_GUIDE,
            ),
            evidence={"device_count": nvml.device_count},
        )
    return tuple(_gpu_result(g, platform.is_wsl2) for g in nvml.gpus)


@check(
    "nvml.mig",
    "MIG is off, or on with GPU instances and no pending mode change",
    layer=Layer.NVML,
    needs=("nvml",),
    after=("nvml.init",),
)
def mig(nvml: NvmlFacts) -> tuple[Result, ...] | Result:
    """A GPU in MIG mode has MIG devices, and no MIG mode change is waiting for a reset.

    Why: with MIG on, a GPU is usable only through its GPU/compute instances; with none created,
    containers see the GPU but CUDA finds no device ("No MIG devices found"). A pending mode change
    takes effect only after a GPU reset (failure mode `mig-misconfigured`).

    Fix: `sudo nvidia-smi mig -i <idx> -lgip` then `sudo nvidia-smi mig -i <idx> -cgi <profiles> -C`,
    or turn MIG off with `sudo nvidia-smi -i <idx> -mig 0`; reset with `sudo nvidia-smi -r -i <idx>`.
    """
    results: list[Result] = []
    for g in nvml.gpus:
        if g.mig_current is None:
            continue
        subject = g.label
        ev = {"index": g.index, "mig_current": g.mig_current, "mig_pending": g.mig_pending, "mig_devices": len(g.mig_devices)}
        if g.mig_pending is not None and g.mig_pending != g.mig_current:
            results.append(
                warned(
                    f"GPU {g.index}: MIG mode change pending ({'on' if g.mig_current else 'off'} → "
                    f"{'on' if g.mig_pending else 'off'}): it applies after a GPU reset",
                    fix=Fix(
                        "Reset the GPU (no processes may use it) or reboot, then recreate GPU containers and CDI specs.",
                        (f"sudo nvidia-smi -r -i {g.index}", "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"),
                        MIG_GUIDE,
                    ),
                    subject=subject,
                    evidence={**ev, "failure_mode": "mig-misconfigured"},
                )
            )
        if g.mig_current != 1:
            continue
        if "mig_devices" in g.errors:
            e = g.errors["mig_devices"]
            results.append(warned(f"GPU {g.index}: MIG on, but its MIG devices could not be listed: {e.message}",
                                  subject=subject, evidence=ev))
        elif not g.mig_devices:
            results.append(
                failed(
                    f"GPU {g.index}: MIG is enabled but has no MIG devices: containers get no usable GPU from it",
                    Fix(
                        "Create GPU and compute instances (list the profiles first), or turn MIG off; then "
                        "regenerate CDI specs.",
                        (
                            f"sudo nvidia-smi mig -i {g.index} -lgip",
                            f"sudo nvidia-smi mig -i {g.index} -cgi <profile-ids> -C",
                            f"sudo nvidia-smi -i {g.index} -mig 0",
                        ),
                        MIG_GUIDE,
                    ),
                    subject=subject,
                    evidence={**ev, "failure_mode": "mig-misconfigured"},
                )
            )
        else:
            names = ", ".join(f"{m.name or 'MIG'} ({m.uuid or '?'})" for m in g.mig_devices)
            results.append(passed(f"GPU {g.index}: MIG on with {len(g.mig_devices)} MIG device(s): {names}",
                                  subject=subject, evidence=ev))
    if results:
        return tuple(results)
    if any(g.mig_current == 0 for g in nvml.gpus):
        return passed("MIG is off")
    return skipped("no GPU reports a MIG mode (MIG not supported here)")


@check(
    "nvml.gpu-count.agree",
    "PCI, the kernel driver, /dev and NVML see the same GPUs",
    layer=Layer.NVML,
    needs=("platform", "pci", "kernel", "devices", "nvml"),
    after=("nvml.init", "kernel.gpus.known", "devices.gpu-nodes"),
)
def gpu_count_agree(
    platform: PlatformFacts, pci: PciFacts, kernel: KernelFacts, devices: DeviceFacts, nvml: NvmlFacts
) -> tuple[Result, ...] | Result:
    """Every GPU on the PCI bus (bound to nvidia) is listed by NVML, and every NVML GPU's minor has /dev/nvidiaN.

    Why: a GPU the kernel enumerated but NVML lacks has usually fallen off the bus or failed to
    initialise; containers asking for `--gpus all` or a given index then get fewer GPUs or fail
    (failure mode `gpu-lost-xid79`). An NVML GPU without its node cannot be injected into containers.

    Fix: `sudo dmesg | grep -E 'NVRM: Xid|fallen off the bus'`, reboot; `sudo nvidia-modprobe -c=<minor>`
    for a missing node.
    """
    if platform.is_wsl:
        return skipped(f"WSL2: no PCI/kernel/dev view to compare; NVML sees {len(nvml.gpus)} GPU(s)")
    results: list[Result] = []
    nvml_bus = {g.pci_address for g in nvml.gpus if g.pci_address}
    unopened = [g for g in nvml.gpus if "handle" in g.errors]
    usable_pci = [g for g in pci.gpus if g.driver in ("nvidia", None)] if pci.readable else []
    missing = [g for g in usable_pci if g.address not in nvml_bus]
    for fn in missing:
        results.append(
            failed(
                f"{fn.label} is on the PCI bus but NVML does not list it",
                GPU_LOST_FIX,
                subject=f"PCI {fn.address}",
                details=(f"{len(unopened)} NVML GPU(s) could not be opened at all",) if unopened else (),
                evidence={"address": fn.address, "failure_mode": "gpu-lost-xid79"},
            )
        )
    if pci.readable:
        pci_addrs = {g.address for g in pci.gpus}
        for g in nvml.gpus:
            if g.pci_address and g.pci_address not in pci_addrs:
                results.append(warned(f"NVML lists GPU {g.index} at {g.pci_address}, which is not on the PCI bus"))
    elif kernel.gpus and len(kernel.gpus) != len(nvml.gpus):
        results.append(
            failed(
                f"the kernel driver knows {len(kernel.gpus)} GPU(s), NVML lists {len(nvml.gpus)}",
                GPU_LOST_FIX,
                evidence={"failure_mode": "gpu-lost-xid79"},
            )
        )
    node_minors = devices.gpu_nodes
    for g in nvml.gpus:
        if g.minor is not None and g.minor not in node_minors and devices.dev_readable:
            results.append(
                failed(
                    f"NVML GPU {g.index} has minor {g.minor}, but /dev/nvidia{g.minor} does not exist",
                    Fix("Create the GPU's device node.", (f"sudo nvidia-modprobe -c={g.minor}",), MODPROBE_LINK),
                    subject=g.label,
                    evidence={"minor": g.minor, "failure_mode": "uvm-or-control-nodes-missing"},
                )
            )
    if results:
        return tuple(results)
    counts = {
        "pci": len(usable_pci) if pci.readable else None,
        "kernel": len(kernel.gpus),
        "dev": len(node_minors),
        "nvml": len(nvml.gpus),
    }
    text = ", ".join(f"{k} {v}" for k, v in counts.items() if v is not None)
    return passed(f"GPU counts agree: {text}", evidence=counts)


CHECKS: tuple[Check, ...] = (init, driver_version, gpus, mig, gpu_count_agree)
