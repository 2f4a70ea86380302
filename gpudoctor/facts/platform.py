"""What kind of Linux this is, as far as GPUs are concerned: native, WSL2 (GPU through /dev/dxg), WSL1.

Source: failure-modes.md #39 `wsl2-specific`. WSL2 kernels report an osrelease like
"5.15.167.4-microsoft-standard-WSL2"; WSL1 reports "4.4.0-19041-Microsoft" and has no GPU at all.
Under WSL2 the GPU is paravirtualised: no PCI function, no nvidia.ko, no /dev/nvidia*; the Windows
driver's libraries appear in /usr/lib/wsl/lib, and a Linux driver installed inside the distro
shadows them.
"""

from __future__ import annotations

import re

from ..frozen import frozen
from ..install import Distro, parse_os_release
from .host import NotRecorded
from .hostfiles import DRIVER_LIBRARY_DIRS, list_dir, read_file
from .registry import FactContext, fact

# os-release(5): /etc/os-release, else /usr/lib/os-release.
OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")

WSL_LIB_DIR = "/usr/lib/wsl/lib"
WSL_REQUIRED_LIBS = ("libcuda.so.1", "libnvidia-ml.so.1")
_DISTRO_DRIVER_LIB = re.compile(r"^lib(nvidia-ml|cuda)\.so\.\d+\.\d+")


@frozen
class PlatformFacts:
    kind: str  # "linux" | "wsl2" | "wsl1"
    osrelease: str | None
    proc_version: str | None
    evidence: tuple[str, ...]  # why we think it is WSL
    dxg_present: bool
    wsl_lib_dir_present: bool
    wsl_libs: tuple[str, ...]  # names found in /usr/lib/wsl/lib
    distro_driver_libs: tuple[str, ...]  # versioned libnvidia-ml/libcuda files from a Linux driver package
    nvidia_dev_nodes: bool  # any /dev/nvidia* at all
    # The distro (os-release ID/ID_LIKE): which package manager the fixes use (gpudoctor/install.py).
    distro: Distro = Distro()

    @property
    def is_wsl2(self) -> bool:
        return self.kind == "wsl2"

    @property
    def is_wsl(self) -> bool:
        return self.kind in ("wsl1", "wsl2")

    @property
    def missing_wsl_libs(self) -> tuple[str, ...]:
        return tuple(lib for lib in WSL_REQUIRED_LIBS if lib not in self.wsl_libs)


def classify(osrelease: str | None, proc_version: str | None, dxg: bool) -> tuple[str, tuple[str, ...]]:
    evidence = []
    rel = (osrelease or "").strip()
    ver = (proc_version or "").strip()
    if "wsl2" in rel.lower() or "microsoft-standard" in rel.lower():
        evidence.append(f"kernel release {rel!r}")
    elif "WSL2" in ver or "microsoft-standard" in ver.lower():
        evidence.append("/proc/version names a WSL2 kernel")
    if dxg:
        evidence.append("/dev/dxg exists")
    if evidence:
        return "wsl2", tuple(evidence)
    # WSL1 has no Linux kernel: "4.4.0-19041-Microsoft" with a capital M, no dxg.
    if rel.endswith("-Microsoft") or "Microsoft" in ver:
        return "wsl1", (f"kernel release {rel!r} (WSL1)",)
    return "linux", ()


def read_distro(ctx: FactContext) -> Distro:
    for path in OS_RELEASE_PATHS:
        try:
            found = read_file(ctx.host, path)
        except NotRecorded:
            # A bundle recorded before gpudoctor read os-release: the distro is unknown, the rest replays.
            return Distro()
        if found.ok:
            return parse_os_release(found.text)
    return Distro()


def read_platform(ctx: FactContext) -> PlatformFacts:
    host = ctx.host
    rel = read_file(host, "/proc/sys/kernel/osrelease")
    ver = read_file(host, "/proc/version")
    dxg = host.exists("/dev/dxg")
    kind, evidence = classify(rel.text, ver.text, dxg)
    wsl_dir = list_dir(host, WSL_LIB_DIR)
    distro_libs: list[str] = []
    if kind != "linux":
        # Where a Linux driver package inside the distro would put its own versioned libraries.
        for d in DRIVER_LIBRARY_DIRS:
            distro_libs += [f"{d}/{n}" for n in list_dir(host, d).entries if _DISTRO_DRIVER_LIB.match(n)]
    dev = list_dir(host, "/dev")
    return PlatformFacts(
        kind=kind,
        osrelease=(rel.text or "").strip()[:200] or None,
        proc_version=(ver.text or "").strip()[:300] or None,
        evidence=evidence,
        dxg_present=dxg,
        wsl_lib_dir_present=wsl_dir.ok,
        wsl_libs=tuple(n for n in wsl_dir.entries if n.startswith("lib")),
        distro_driver_libs=tuple(distro_libs),
        nvidia_dev_nodes=any(n.startswith("nvidia") for n in dev.entries),
        distro=read_distro(ctx),
    )


@fact("platform", timeout_s=5)
def platform_fact(ctx: FactContext) -> PlatformFacts:
    """Native Linux, WSL2 or WSL1 (kernel release, /dev/dxg, /usr/lib/wsl/lib), and the distro (os-release)."""
    return read_platform(ctx)
