#!/usr/bin/env python3
"""Writes a tar of a minimal root filesystem holding this machine's Debian python3, for `docker import`: the base
image the Dockerfile builds gpudoctor on where no registry is reachable (CI).

    python3 scripts/python_base_rootfs.py --output base.tar
    docker import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' base.tar gpudoctor-base:local
    docker build --build-arg BASE=gpudoctor-base:local --build-arg PIP_NO_INDEX=1 \
        --build-arg PIP_FIND_LINKS=/src/.wheels -t gpudoctor:local .

Why not debootstrap: it fetches and unpacks about 100 packages (minutes on 2 cores) to get what this machine's
Debian packages already installed. What goes in, all from those packages (python3.11, libpython3.11-stdlib,
python3-pip-whl and the libraries they link):
* the interpreter (`/usr/bin/python3.X`, `python3` beside it) and the standard library, without tests, IDLE,
  tkinter, `__pycache__` and Debian's EXTERNALLY-MANAGED marker (PEP 668: this image's Python is not managed by
  dpkg, so pip may install into it, as in the official python images);
* every shared library that the interpreter and its extension modules (`lib-dynload`) load, found by `ldd`,
  the dynamic loader, and every library of libc6 and libgcc-s1 (wheels link or dlopen them);
* pip, from Debian's python3-pip-whl wheel, unpacked into `/usr/lib/python3/dist-packages`;
* `/etc/passwd` and `/etc/group` with root and `gpudoctor` (65532, the "nonroot" id of distroless images), and
  world-writable `/tmp`. No shell: the Dockerfile uses exec-form RUN.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

SKIP_DIRS = {"test", "tests", "idlelib", "tkinter", "turtledemo", "__pycache__", "ensurepip", "lib2to3", "config-3"}
SKIP_FILES = {"EXTERNALLY-MANAGED"}
NONROOT = 65532


def shared_libraries(elves: list[str]) -> set[str]:
    """Every library `ldd` resolves for these ELF files (absolute paths), the loader included."""
    found: set[str] = set()
    for chunk in range(0, len(elves), 50):
        out = subprocess.run(["ldd", *elves[chunk : chunk + 50]], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s+(/\S+)\s+\(", line)
            if m:
                found.add(m.group(1))
    return found


def package_libraries(packages: tuple[str, ...]) -> set[str]:
    """The shared libraries (`*.so*` files) that these installed Debian packages ship (`dpkg-query -L`)."""
    out = subprocess.run(["dpkg-query", "-L", *packages], capture_output=True, text=True, check=True).stdout
    return {p for p in out.splitlines() if re.search(r"\.so(\.[0-9.]+)?$", p) and os.path.isfile(p) and "/gconv/" not in p}


def _skipped(rel: str) -> bool:
    parts = rel.split("/")
    return any(p in SKIP_DIRS or p.startswith("config-3") for p in parts[:-1]) or parts[-1] in SKIP_FILES


def _dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _add_path(tar: tarfile.TarFile, path: str, added: set[str]) -> None:
    """A file, with its parent directories, and, when it is a symlink, the link and its target. The directory
    part is resolved (`/lib/x86_64-linux-gnu` is `/usr/lib/x86_64-linux-gnu` on merged-/usr Debian), so that no
    directory entry ever goes through one of the top-level links."""
    if os.path.dirname(path) != "/":
        path = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    rel = path.lstrip("/")
    if rel in added:
        return
    parents = Path(rel).parents
    for parent in reversed(list(parents)[:-1]):
        if str(parent) not in added:
            added.add(str(parent))
            _dir(tar, str(parent))
    added.add(rel)
    if os.path.islink(path):
        target = os.readlink(path)
        info = tarfile.TarInfo(rel)
        info.type, info.linkname = tarfile.SYMTYPE, target
        tar.addfile(info)
        _add_path(tar, os.path.normpath(os.path.join(os.path.dirname(path), target)), added)
    else:
        tar.add(path, arcname=rel, recursive=False)


def build(python: str, output: str) -> dict[str, int]:
    python = os.path.realpath(python)
    version = subprocess.run(
        [python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    stdlib = f"/usr/lib/python{version}"
    if not python.startswith("/usr/bin/") or not os.path.isdir(stdlib):
        raise SystemExit(f"{python}: not a Debian python (no {stdlib})")
    wheels = sorted(glob.glob("/usr/share/python-wheels/pip-*.whl"))
    if not wheels:
        raise SystemExit("no pip wheel in /usr/share/python-wheels (install Debian's python3-pip-whl)")
    elves = [python, *glob.glob(f"{stdlib}/lib-dynload/*.so")]
    # Wheels' extension modules link glibc libraries the interpreter does not (librt, libpthread, libdl), and glibc
    # loads libgcc_s by dlopen (thread cancellation, unwinding), which ldd never lists: pydantic-core fails to
    # import without them. So every shared library of Debian's libc6 and libgcc-s1 goes in, as in any Debian base.
    libs = shared_libraries(elves) | package_libraries(("libc6", "libgcc-s1"))
    added: set[str] = set()
    counts = {"stdlib_files": 0, "libraries": len(libs)}
    with tarfile.open(output, "w") as tar:
        for d in ("etc", "tmp", "usr", "usr/bin", "usr/local", "usr/local/bin", "proc", "sys", "dev", "home"):
            _dir(tar, d, 0o1777 if d == "tmp" else 0o755)
            added.add(d)
        _file(tar, "etc/passwd", f"root:x:0:0:root:/root:/sbin/nologin\ngpudoctor:x:{NONROOT}:{NONROOT}:gpudoctor:/home/gpudoctor:/sbin/nologin\n".encode())
        _file(tar, "etc/group", f"root:x:0:\ngpudoctor:x:{NONROOT}:\n".encode())
        home = tarfile.TarInfo("home/gpudoctor")
        home.type, home.mode, home.uid, home.gid = tarfile.DIRTYPE, 0o755, NONROOT, NONROOT
        tar.addfile(home)
        # Debian's /bin, /lib and /lib64 are links into /usr (merged /usr): keep them so the loader path resolves.
        for link in ("bin", "lib", "lib64", "sbin"):
            if os.path.islink(f"/{link}"):
                _add_path(tar, f"/{link}", added)
        _add_path(tar, python, added)
        info = tarfile.TarInfo("usr/bin/python3")
        info.type, info.linkname = tarfile.SYMTYPE, os.path.basename(python)
        tar.addfile(info)
        for lib in sorted(libs):
            _add_path(tar, lib, added)
        for root, dirs, files in os.walk(stdlib):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("config-3"))
            for name in sorted(files):
                path = os.path.join(root, name)
                if not _skipped(os.path.relpath(path, "/")):
                    _add_path(tar, path, added)
                    counts["stdlib_files"] += 1
        with zipfile.ZipFile(wheels[-1]) as whl:
            for member in whl.infolist():
                if member.is_dir():
                    continue
                name = f"usr/lib/python3/dist-packages/{member.filename}"
                for parent in reversed(list(Path(name).parents)[:-1]):
                    if str(parent) not in added:
                        added.add(str(parent))
                        _dir(tar, str(parent))
                _file(tar, name, whl.read(member))
    counts["bytes"] = os.path.getsize(output)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="/usr/bin/python3", help="the Debian interpreter to copy")
    parser.add_argument("--output", required=True, help="the tar to write")
    args = parser.parse_args()
    counts = build(args.python, args.output)
    print(f"{args.output}: {counts['bytes'] >> 20} MiB, {counts['stdlib_files']} stdlib files, "
          f"{counts['libraries']} shared libraries", file=sys.stderr)


if __name__ == "__main__":
    main()
