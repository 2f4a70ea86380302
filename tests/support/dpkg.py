"""A dpkg database under a host tree, as `apt-get install nvidia-container-toolkit` leaves it.

gpudoctor never runs the binaries of a `--root` tree; it reads their versions from the tree's dpkg
database instead (`/var/lib/dpkg/status` and `/var/lib/dpkg/info/<package>.list`). Test trees that
hold toolkit binaries therefore need that database too. The package each binary comes in is the
toolkit's own packaging (NVIDIA/nvidia-container-toolkit packaging/debian/*.install, 1.17+;
nvidia-container-cli comes from libnvidia-container-tools).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

PACKAGE_OF = {
    "nvidia-ctk": "nvidia-container-toolkit-base",
    "nvidia-container-runtime": "nvidia-container-toolkit-base",
    "nvidia-cdi-hook": "nvidia-container-toolkit-base",
    "nvidia-container-runtime-hook": "nvidia-container-toolkit",
    "nvidia-container-cli": "libnvidia-container-tools",
}
# A package installed on every Debian host, so that the status file is not only ours.
_BASE = ("base-files", "12.4+deb12u5", ["/etc/debian_version"])


def write_dpkg(root: Path, packages: Mapping[str, tuple[str, list[str]]]) -> None:
    """`packages`: name → (Debian version, files it installs). Writes status and the .list files."""
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True, exist_ok=True)
    stanzas = []
    for name, (version, files) in {_BASE[0]: (_BASE[1], _BASE[2]), **packages}.items():
        stanzas.append(
            f"Package: {name}\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\n"
            f"Version: {version}\nDescription: {name}\n multi-line description\n"
        )
        dirs = sorted({str(Path(f).parent) for f in files})
        (info / f"{name}.list").write_text("/.\n" + "".join(f"{d}\n" for d in dirs) + "".join(f"{f}\n" for f in files))
    (root / "var/lib/dpkg/status").write_text("\n".join(stanzas))


def write_toolkit_packages(root: Path, versions: Mapping[str, str], bin_dir: str = "/usr/bin") -> None:
    """The toolkit's packages at the versions given per binary (binaries of one package share its version)."""
    packages: dict[str, tuple[str, list[str]]] = {}
    for binary, version in versions.items():
        pkg = PACKAGE_OF[binary]
        deb_version = f"{version}-1"
        if pkg in packages and packages[pkg][0] != deb_version:
            raise ValueError(f"{binary} {version}: {pkg} is already at {packages[pkg][0]}")
        packages.setdefault(pkg, (deb_version, []))[1].append(f"{bin_dir}/{binary}")
    write_dpkg(root, packages)
