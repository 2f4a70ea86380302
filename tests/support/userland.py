"""A host userland inside a test tree (`gpudoctor --root <tree>`): this machine's own files, laid out as here.

gpudoctor makes its probe image from the host's files under `--root` (gpudoctor/probes/image.py), so a simulated
host needs what a real one has: a shell and the C library. The files are copied from this machine with the
symlinks on their way recreated as symlinks (`/lib -> usr/lib`, `/lib64/ld-linux-x86-64.so.2 ->
/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`), so an absolute link in the tree names a path of the tree's host, as it
does on a real one. What a program needs is asked of `ldd`, not of gpudoctor's own ELF reader.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

LOADER = "/lib64/ld-linux-x86-64.so.2"
GLIBC = ("libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1")
LIB_DIR = "/lib/x86_64-linux-gnu"


def copy_host_path(root: Path | str, path: str) -> None:
    """Copy this machine's `path` to the same path under `root`, recreating the symlinks met on the way."""
    root = Path(root)
    parts = [p for p in path.split("/") if p]
    here = "/"
    for i, part in enumerate(parts):
        host = os.path.join(here, part)
        dest = root / host.lstrip("/")
        # Where the tree already has a real directory, files go into it (the tree's layout wins).
        if os.path.islink(host) and not (dest.is_dir() and not dest.is_symlink()):
            target = os.readlink(host)
            if not dest.is_symlink():
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.symlink_to(target)
            resolved = target if target.startswith("/") else os.path.normpath(os.path.join(here, target))
            copy_host_path(root, "/".join([resolved, *parts[i + 1:]]))
            return
        if i == len(parts) - 1:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(host, dest)
        here = host


def needed_by(program: str) -> list[str]:
    """The libraries and the loader `program` loads, as `ldd` lists them."""
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=False).stdout
    paths = re.findall(r"=> (/\S+)", out) + re.findall(r"^\s*(/\S+) \(", out, re.M)
    return list(dict.fromkeys(paths))


def install_glibc(root: Path | str) -> None:
    """The loader and the glibc libraries that injected NVIDIA tools load."""
    copy_host_path(root, LOADER)
    for lib in GLIBC:
        copy_host_path(root, f"{LIB_DIR}/{lib}")


def install_busybox(root: Path | str) -> str:
    """Debian's busybox-static, as installed: /bin/busybox (through /bin -> usr/bin on a merged-/usr system)."""
    copy_host_path(root, "/bin/busybox")
    return "/bin/busybox"


def install_tools(root: Path | str, tools: Iterable[str]) -> list[str]:
    """This machine's own `tools` (sh, ls, …) at their paths, with what each loads. Returns their host paths."""
    found = []
    for tool in tools:
        path = shutil.which(tool, path="/usr/bin:/bin")
        assert path, tool
        copy_host_path(root, path)
        for lib in needed_by(os.path.realpath(path)):
            copy_host_path(root, lib)
        found.append(path)
    return found
