"""Checks of the platform layer: is this native Linux, or WSL2 with its own GPU rules?"""

from __future__ import annotations

from ..checking import Check, check
from ..facts.platform import WSL_LIB_DIR, PlatformFacts
from ..install import driver_remove
from ..model import Fix, Layer, Result, failed, passed, skipped

WSL_GUIDE = "https://docs.nvidia.com/cuda/wsl-user-guide/index.html"


def not_on_wsl(platform: PlatformFacts, what: str) -> Result | None:
    """The skip row a native-Linux check returns under WSL, where the GPU is paravirtualised
    through /dev/dxg (failure mode `wsl2-specific`): no PCI function, no nvidia.ko, no /dev/nvidia*."""
    if platform.is_wsl:
        label = "WSL2" if platform.is_wsl2 else "WSL1"
        return skipped(
            f"not applicable on {label}: {what}",
            evidence={"platform": platform.kind},
        )
    return None


@check("platform.wsl", "WSL2 exposes the Windows NVIDIA driver to Linux", layer=Layer.PLATFORM, needs=("platform",))
def wsl(platform: PlatformFacts) -> Result:
    """Under WSL2, the GPU is reachable through /dev/dxg and the Windows driver's libraries.

    Why: WSL2 has no NVIDIA PCI function, kernel module or /dev/nvidia* nodes; the Windows driver
    provides /dev/dxg and libcuda.so.1 / libnvidia-ml.so.1 in /usr/lib/wsl/lib. Without them, or with a
    Linux driver installed inside the distro (it shadows the WSL libraries), NVML fails with "GPU access
    blocked by the operating system" and containers see no GPU (failure mode `wsl2-specific`). WSL1 has
    no GPU support at all. On native Linux this check does not apply.

    Fix: update the Windows NVIDIA driver and WSL (`wsl --update` in Windows), remove Linux driver
    packages from the distro (`sudo apt-get remove --purge '^nvidia-driver-[0-9]+' '^libnvidia-compute-[0-9]+'`),
    and use Docker Desktop's WSL2 backend.
    """
    if platform.kind == "linux":
        return skipped("native Linux, not WSL: judged by its PCI, kernel and device-node layers")
    if platform.kind == "wsl1":
        return failed(
            "WSL1 has no GPU support (kernel release " + repr(platform.osrelease) + ")",
            Fix(
                "Convert the distro to WSL2 (in Windows PowerShell), then run gpudoctor again.",
                ("wsl --set-version <distro> 2", "wsl --update"),
                WSL_GUIDE,
            ),
            evidence={"platform": "wsl1", "failure_mode": "wsl2-specific"},
        )
    seen = {"platform": "wsl2", "why": list(platform.evidence)}
    evidence = {**seen, "failure_mode": "wsl2-specific"}
    if not platform.dxg_present:
        return failed(
            "WSL2 without /dev/dxg: the Windows GPU driver is not exposed to this distro",
            Fix(
                "Install or update the NVIDIA driver on Windows (a WDDM driver, Pascal or newer), update WSL, "
                "and restart it (all in Windows PowerShell).",
                ("wsl --update", "wsl --shutdown"),
                WSL_GUIDE,
            ),
            evidence=evidence,
        )
    if platform.missing_wsl_libs:
        return failed(
            f"WSL2 with /dev/dxg, but {WSL_LIB_DIR} lacks {', '.join(platform.missing_wsl_libs)}",
            Fix(
                "Reinstall the NVIDIA driver on Windows (it provides the WSL libraries), then restart WSL "
                "(in Windows PowerShell).",
                ("wsl --update", "wsl --shutdown"),
                WSL_GUIDE,
            ),
            evidence={**evidence, "wsl_libs": list(platform.wsl_libs)},
        )
    if platform.distro_driver_libs:
        return failed(
            "a Linux NVIDIA driver is installed inside the WSL2 distro and shadows the Windows driver's libraries",
            Fix(
                "Remove the Linux driver packages from the distro (WSL2 must use the Windows driver's "
                f"libraries in {WSL_LIB_DIR}), then refresh the library cache.",
                (driver_remove(platform.distro), "sudo ldconfig"),
                WSL_GUIDE,
            ),
            details=platform.distro_driver_libs,
            evidence={**evidence, "distro_driver_libs": list(platform.distro_driver_libs)},
        )
    return passed(
        f"WSL2: /dev/dxg present and {WSL_LIB_DIR} has {', '.join(platform.wsl_libs[:4]) or 'the driver libraries'}",
        details=(f"detected by {', '.join(platform.evidence)}",),
        evidence=seen,
    )


CHECKS: tuple[Check, ...] = (wsl,)
