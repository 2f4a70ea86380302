"""Reading small /proc and /sys files for the host-layer facts, turning every odd answer into data.

The PCI, kernel, device-node and platform facts read dozens of tiny files whose absence is normal
(no module loaded ⇒ no /proc/driver/nvidia) and whose oddities (a directory where a file should
be, a huge or unreadable file, garbage) must become a clear finding, never a traceback. Everything
goes through `ctx.host`, so it works under `--root` and in replays.
"""

from __future__ import annotations

import errno

from ..frozen import frozen
from .host import Host

# The usual homes of the driver's versioned userspace libraries (libnvidia-ml.so.<version>,
# libcuda.so.<version>): Debian/Ubuntu multiarch, RPM distros, aarch64, and /usr/local/nvidia/lib64
# where GPU-operator/cloud images put the driver, as on our real H100 capture.
DRIVER_LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/lib/x86_64-linux-gnu",
    "/lib64",
    "/lib",
    "/usr/local/nvidia/lib64",
)

# /proc and /sys files we read are a few hundred bytes; anything bigger is not what we expect.
SMALL_FILE_LIMIT = 64 * 1024


@frozen
class FileRead:
    """The outcome of reading one file: its text, or why there is none."""

    path: str
    text: str | None
    missing: bool = False  # ENOENT/ENOTDIR: the file is simply not there
    problem: str | None = None  # any other failure, in words ("is a directory", ...)

    @property
    def ok(self) -> bool:
        return self.text is not None


def describe_oserror(path: str, e: OSError) -> str:
    """One human line for an OSError on `path` (the host path, not the path under the root)."""
    code = e.errno
    if code == errno.EACCES or code == errno.EPERM:
        return f"{path}: permission denied"
    if code == errno.EISDIR:
        return f"{path} is a directory, expected a file"
    if code == errno.EFBIG:
        return f"{path} is too large to be what we expect (over {SMALL_FILE_LIMIT // 1024} KiB)"
    if code == errno.ENOTDIR:
        return f"{path}: a path component is not a directory"
    return f"{path}: {e.strerror or e}"


def read_file(host: Host, path: str, limit: int = SMALL_FILE_LIMIT) -> FileRead:
    try:
        return FileRead(path, host.read_text(path, limit=limit))
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return FileRead(path, None, missing=True)
        return FileRead(path, None, problem=describe_oserror(path, e))


@frozen
class DirList:
    path: str
    entries: tuple[str, ...]
    missing: bool = False
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return not self.missing and self.problem is None


def list_dir(host: Host, path: str) -> DirList:
    try:
        return DirList(path, tuple(host.list_dir(path)))
    except OSError as e:
        if e.errno == errno.ENOENT:
            return DirList(path, (), missing=True)
        if e.errno == errno.ENOTDIR:
            return DirList(path, (), problem=f"{path} is not a directory")
        return DirList(path, (), problem=describe_oserror(path, e))


def readlink(host: Host, path: str) -> str | None:
    try:
        return host.readlink(path)
    except OSError:
        return None
