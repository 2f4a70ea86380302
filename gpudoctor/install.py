"""The one home of package-manager commands: installing and upgrading NVIDIA's packages on this host's distro.

Every install or upgrade fix follows NVIDIA Container Toolkit's install guide (links.TOOLKIT_INSTALL) for the
distro family, repository first (installing `nvidia-container-toolkit` from the distro's own archive fails with
"Unable to locate package"): apt (Debian, Ubuntu), dnf/yum (RHEL, CentOS, Fedora, Rocky, Alma, Amazon Linux,
Oracle), zypper (SLES, openSUSE). The family comes from /etc/os-release `ID` and `ID_LIKE` (os-release(5)),
read by the platform fact. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Distro:
    """What /etc/os-release says (None when it could not be read: a replay of an older bundle, a bare root)."""

    id: str | None = None
    id_like: tuple[str, ...] = ()
    name: str | None = None

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
    return Distro((values.get("ID") or "").lower() or None, like, values.get("PRETTY_NAME") or values.get("NAME"))


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
