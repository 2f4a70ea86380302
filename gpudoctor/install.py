"""The one home of package-manager commands: installing and upgrading NVIDIA's packages on this host's distro.

The driver (kernel modules, their headers and DKMS rebuild, the userspace libraries, nouveau's blacklist and the
initramfs) follows NVIDIA's driver installation guide (links.DRIVER_GUIDE): NVIDIA's CUDA repository for the
distro (Ubuntu/Debian through the cuda-keyring package, RHEL/Rocky/Alma/Fedora/Amazon Linux through dnf's
repository file, SUSE through zypper's), then `nvidia-open` (the open kernel modules: Turing and newer, and the only
ones Blackwell supports) or `cuda-drivers` (the proprietary modules, for GPUs older than Turing).

Every toolkit install or upgrade fix follows NVIDIA Container Toolkit's install guide (links.TOOLKIT_INSTALL) for the
distro family, repository first (installing `nvidia-container-toolkit` from the distro's own archive fails with
"Unable to locate package"): apt (Debian, Ubuntu), dnf/yum (RHEL, CentOS, Fedora, Rocky, Alma, Amazon Linux,
Oracle), zypper (SLES, openSUSE). The family comes from /etc/os-release `ID` and `ID_LIKE` (os-release(5)),
read by the platform fact. Pure: no I/O.
"""

from __future__ import annotations


from .frozen import frozen
from .links import TOOLKIT_INSTALL

APT, DNF, ZYPPER = "apt", "dnf", "zypper"
_FAMILIES = {
    APT: ("debian", "ubuntu"),
    DNF: ("rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn"),
    ZYPPER: ("suse", "sles", "opensuse", "opensuse-leap", "opensuse-tumbleweed"),
}
TOOLKIT_PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
                    "libnvidia-container1")
_REPO = "https://nvidia.github.io/libnvidia-container"


@frozen
class Distro:
    """What /etc/os-release says (None when it could not be read: a replay of an older bundle, a bare root)."""

    id: str | None = None
    id_like: tuple[str, ...] = ()
    name: str | None = None
    version_id: str | None = None  # os-release VERSION_ID ("24.04", "9.4"): names NVIDIA's CUDA repository

    @property
    def family(self) -> str | None:
        """The package family from ID, then ID_LIKE (os-release(5): "rocky" is ID_LIKE="rhel centos fedora")."""
        for word in (self.id, *self.id_like):
            if not word:
                continue
            if word.startswith(("opensuse", "sles", "suse")):
                return ZYPPER
            for family, ids in _FAMILIES.items():
                if word in ids:
                    return family
        return None


def parse_os_release(text: str | None) -> Distro:
    """os-release(5): KEY=value lines, values optionally quoted."""
    if not text:
        return Distro()
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key] = value.strip().strip('"').strip("'")
    like = tuple(w.lower() for w in values.get("ID_LIKE", "").split())
    return Distro((values.get("ID") or "").lower() or None, like, values.get("PRETTY_NAME") or values.get("NAME"),
                  values.get("VERSION_ID") or None)


def _repository(family: str) -> tuple[str, ...]:
    """NVIDIA's package repository, as the install guide adds it."""
    if family == DNF:
        return (f"curl -s -L {_REPO}/stable/rpm/nvidia-container-toolkit.repo | "
                "sudo tee /etc/yum.repos.d/nvidia-container-toolkit.repo",)
    if family == ZYPPER:
        return (f"sudo zypper ar {_REPO}/stable/rpm/nvidia-container-toolkit.repo",
                "sudo zypper --gpg-auto-import-keys refresh")
    return (
        f"curl -fsSL {_REPO}/gpgkey | sudo gpg --dearmor -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg",
        f"curl -s -L {_REPO}/stable/deb/nvidia-container-toolkit.list | "
        "sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#g' | "
        "sudo tee /etc/apt/sources.list.d/nvidia-container-toolkit.list",
        "sudo apt-get update",
    )


def _install(family: str, packages: tuple[str, ...], how: str = "install") -> str:
    names = " ".join(packages)
    if family == DNF:
        return f"sudo dnf {'reinstall' if how == 'reinstall' else 'install'} -y {names}"
    if family == ZYPPER:
        return f"sudo zypper --non-interactive {'install -f' if how == 'reinstall' else 'install'} {names}"
    return f"sudo apt-get install -y {'--reinstall ' if how == 'reinstall' else ''}{names}"


def _by_family(distro: Distro | None, commands: dict[str, str]) -> str:
    """The command for the host's package family (apt where the family is not known)."""
    return commands.get(_family(distro), commands[APT])


def _family(distro: Distro | None) -> str:
    return (distro.family if distro else None) or APT


def where(distro: Distro | None) -> str:
    """Words for a fix summary: which distro the commands are for."""
    family = distro.family if distro else None
    if family is None:
        return "(commands for Debian/Ubuntu: the distro was not identified; the guide has dnf and zypper)"
    return f"(for {distro.name or distro.id}, {family})" if distro else ""


def toolkit_install(distro: Distro | None, packages: tuple[str, ...] = ("nvidia-container-toolkit",)) -> tuple[str, ...]:
    """Add NVIDIA's repository, then install the toolkit packages."""
    family = _family(distro)
    return (*_repository(family), _install(family, packages))


def toolkit_upgrade(distro: Distro | None, packages: tuple[str, ...] = TOOLKIT_PACKAGES) -> tuple[str, ...]:
    """All toolkit packages to one (the newest) version, from NVIDIA's repository (added if it is not there)."""
    return toolkit_install(distro, packages)


def toolkit_reinstall(distro: Distro | None) -> tuple[str, ...]:
    family = _family(distro)
    return (*_repository(family), _install(family, ("nvidia-container-toolkit",), how="reinstall"))


def toolkit_package_query(distro: Distro | None) -> str:
    """List the installed toolkit packages with their versions."""
    if _family(distro) == APT:
        return "dpkg-query -W 'nvidia-container-toolkit*' 'libnvidia-container*'"
    return "rpm -qa 'nvidia-container-toolkit*' 'libnvidia-container*'"


GUIDE = TOOLKIT_INSTALL

# -- the driver (links.DRIVER_GUIDE) ---------------------------------------------------------------------------------
CUDA_REPOS = "https://developer.download.nvidia.com/compute/cuda/repos"
# The repository's architecture directory: x86_64, and sbsa for 64-bit Arm servers.
_ARCH = "$(uname -m | sed s/aarch64/sbsa/)"
OPEN_DRIVER, PROPRIETARY_DRIVER = "nvidia-open", "cuda-drivers"


def _cuda_repo_prefix(distro_id: str) -> str | None:
    """The repository directory's name before its version: the RHEL rebuilds share RHEL's, SUSE's flavours theirs."""
    if distro_id in ("ubuntu", "debian", "fedora", "amzn"):
        return distro_id
    if distro_id in ("rhel", "rocky", "almalinux", "centos", "ol"):
        return "rhel"
    return next((p for p in ("sles", "opensuse") if distro_id.startswith(p)), None)


def cuda_repo_name(distro: Distro | None) -> str:
    """The directory of NVIDIA's CUDA repository for this distro ("ubuntu2404", "debian12", "rhel9", "fedora41",
    "amzn2023", "sles15", "opensuse15"), or "$distro" where os-release does not say."""
    prefix = _cuda_repo_prefix(distro.id) if distro is not None and distro.id else None
    version = (distro.version_id or "") if distro is not None else ""
    # Ubuntu's directory names the whole release ("2404"); the others their major version only.
    suffix = version.replace(".", "") if prefix == "ubuntu" else version.split(".")[0]
    return f"{prefix}{suffix}" if prefix and suffix else "$distro"


def driver_repository(distro: Distro | None) -> tuple[str, ...]:
    """NVIDIA's CUDA repository, as the driver installation guide adds it for the distro family."""
    family, repo = _family(distro), cuda_repo_name(distro)
    base = f"{CUDA_REPOS}/{repo}/{_ARCH}"
    if family == DNF:
        return (f"sudo dnf config-manager --add-repo {base}/cuda-{repo}.repo",)
    if family == ZYPPER:
        return (f"sudo zypper addrepo {base}/cuda-{repo}.repo", "sudo zypper --gpg-auto-import-keys refresh")
    return (f"wget {base}/cuda-keyring_1.1-1_all.deb", "sudo dpkg -i cuda-keyring_1.1-1_all.deb", "sudo apt-get update")


def kernel_headers(distro: Distro | None) -> str:
    """The headers of the running kernel, which DKMS builds the modules against."""
    return _by_family(distro, {
        DNF: "sudo dnf install -y kernel-devel-$(uname -r) kernel-headers-$(uname -r)",
        ZYPPER: "sudo zypper install -y kernel-default-devel=$(uname -r | sed 's/-default//')",
        APT: "sudo apt-get install -y linux-headers-$(uname -r)",
    })


def driver_install(distro: Distro | None, flavor: str = OPEN_DRIVER) -> tuple[str, ...]:
    """NVIDIA's repository, the running kernel's headers, then the driver: `nvidia-open` or `cuda-drivers`."""
    family = _family(distro)
    return (*driver_repository(distro), kernel_headers(distro), _install(family, (flavor,)))


def module_rebuild(distro: Distro | None) -> tuple[str, ...]:
    """Rebuild the driver's DKMS modules for the running kernel (after a kernel update without its headers)."""
    return (kernel_headers(distro), "sudo dkms autoinstall")


def initramfs_rebuild(distro: Distro | None) -> str:
    """Rebuild the initramfs, so that a module blacklist holds at boot: update-initramfs on Debian/Ubuntu, dracut on
    RHEL, Fedora and SUSE."""
    return "sudo update-initramfs -u" if _family(distro) == APT else "sudo dracut -f"


def driver_userspace(distro: Distro | None, branch: str) -> tuple[str, ...]:
    """The driver's userspace (libnvidia-ml, libcuda, nvidia-smi) of the loaded module's branch, from NVIDIA's
    repository, then the library cache."""
    family = _family(distro)
    if family == DNF:
        packages: tuple[str, ...] = ("nvidia-driver-cuda", "nvidia-driver-cuda-libs")
    elif family == ZYPPER:
        packages = ("nvidia-compute-G06", "nvidia-compute-utils-G06")
    else:
        packages = (f"nvidia-utils-{branch}", f"libnvidia-compute-{branch}")
    return (*driver_repository(distro), _install(family, packages), "sudo ldconfig")


def driver_hold(distro: Distro | None) -> str:
    """Keep unattended upgrades from replacing the driver under a loaded module."""
    return _by_family(distro, {
        DNF: "sudo dnf versionlock add 'nvidia-*' 'kmod-nvidia*'",
        ZYPPER: "sudo zypper addlock 'nvidia-*'",
        APT: "sudo apt-mark hold 'nvidia-*' 'libnvidia-*'",
    })


def driver_remove(distro: Distro | None) -> str:
    """Remove Linux driver packages (inside WSL2 they shadow the Windows driver's libraries)."""
    return _by_family(distro, {
        DNF: "sudo dnf remove -y 'nvidia-driver*' 'kmod-nvidia*' nvidia-open cuda-drivers",
        ZYPPER: "sudo zypper --non-interactive remove 'nvidia-compute*' 'nvidia-open-driver*' nvidia-open cuda-drivers",
        APT: "sudo apt-get remove --purge '^nvidia-driver-[0-9]+' '^nvidia-utils-[0-9]+' '^libnvidia-compute-[0-9]+'",
    })

