"""gpudoctor's own probe image, made on the host from the host's own files: no registry, no base image, no network.

Most hosts where gpudoctor runs have no `nvidia/cuda` image of the right tag, and many cannot pull one (air-gapped,
behind a proxy or a rate limit, CI). A probe needs little: a POSIX shell and the few tools probe.sh runs, and the C
library that the NVIDIA binaries the toolkit injects (nvidia-smi, libnvidia-ml) are linked against. All of that is
on the host already, so the image is made of it:

* the tools: the host's busybox where it has one (Debian's busybox-static is one static file), else the host's own
  `sh`, `ls`, `head`, `grep`, `sed` and `env`, with the libraries their ELF headers name (probes/elf.py);
* the glibc runtime the injected NVIDIA binaries load: the dynamic loader, libc, libm, libdl, libpthread and librt
  (what nvidia-smi and libnvidia-ml name in DT_NEEDED), from the host's library directories;
* empty directories the toolkit mounts into, and an /etc/ld.so.conf for the ldconfig it runs inside.

Every file is read under the host's root (`--root`), its symlinks resolved inside that root. The files go into one
tar, `docker import`ed as `gpudoctor-probe:<first 16 hex digits of the SHA-256 of what went in>` with the label
`io.gpudoctor.image=probe`. The same inputs give the same tag, so the image is made once and reused; an input that
changes (a glibc upgrade) gives a new tag, made on the next run, and gpudoctor's own older probe images are then
removed: by id, only those carrying the label, never one a container still uses, and not within minutes of their
creation (a concurrent run may be using it). gpudoctor never removes any other image. This is the one thing
gpudoctor adds to a daemon (README "The probe image").

With runner.py and gpudoctor/facts/, this is code that touches the machine; it is called only by
facts/probe_image.py, through `ctx.host.call("probe.host-image")`, so that support bundles replay its answer.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import time
from collections import deque
from typing import Any, Iterable, Sequence

from ..frozen import frozen
from ..facts.bounded import resolve_in_root
from .elf import ElfInfo, NotElf, read_elf

REPOSITORY = "gpudoctor-probe"
IMAGE_LABEL = "io.gpudoctor.image"
IMAGE_LABEL_VALUE = "probe"
INPUTS_LABEL = "io.gpudoctor.inputs"
# Part of the digest: a change to what this module puts into the image must give a new tag.
LAYOUT_VERSION = 1
# What probe.sh runs besides shell builtins (echo, printf, command, [).
PROBE_TOOLS = ("sh", "ls", "head", "grep", "sed", "env")
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox")
HOST_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# The libraries nvidia-smi, nvidia-persistenced and libnvidia-ml.so name in DT_NEEDED (glibc's; the loader comes
# from PT_INTERP or ARCHES). Without them an injected nvidia-smi cannot start in a busybox-only image.
NVIDIA_RUNTIME_LIBS = ("libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1")
# os.uname().machine → (Debian multiarch triplet, glibc's loader, ELF e_machine).
ARCHES = {
    "x86_64": ("x86_64-linux-gnu", "/lib64/ld-linux-x86-64.so.2", 62),
    "aarch64": ("aarch64-linux-gnu", "/lib/ld-linux-aarch64.so.1", 183),
}
LD_SO_CONF = b"include /etc/ld.so.conf.d/*.conf\n"
MAX_FILE_BYTES = 32 << 20  # a shell or libc is a few MiB; anything this big is not one
MAX_IMAGE_BYTES = 96 << 20
PRUNE_GRACE_S = 10 * 60


class ImageInputError(Exception):
    """The host lacks what the image needs (no shell, a library a tool names is missing, ...)."""


@frozen
class Member:
    """One entry of the image's file system."""

    path: str  # in the image, without a leading slash
    kind: str  # "dir" | "file" | "link"
    mode: int
    data: bytes = b""
    target: str = ""  # of a link
    source: str = ""  # the host path a file came from

    def fingerprint(self) -> list[Any]:
        what = hashlib.sha256(self.data).hexdigest() if self.kind == "file" else self.target
        return [self.path, self.kind, self.mode, what]


@frozen
class ImageInputs:
    members: tuple[Member, ...]
    tools: str  # how the shell and tools were found, for the report
    missing: tuple[str, ...]  # wanted libraries the host does not have (the image is made without them)
    digest: str

    @property
    def tag(self) -> str:
        return f"{REPOSITORY}:{self.digest[:16]}"

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(sorted({m.source for m in self.members if m.source}))

    @property
    def size(self) -> int:
        return sum(len(m.data) for m in self.members)

    def tar(self) -> bytes:
        """The image's file system as an uncompressed tar, byte for byte the same for the same inputs."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for m in self.members:
                info = tarfile.TarInfo(m.path)
                info.mode, info.mtime, info.uid, info.gid = m.mode, 0, 0, 0
                if m.kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif m.kind == "link":
                    info.type, info.linkname = tarfile.SYMTYPE, m.target
                    tar.addfile(info)
                else:
                    info.size = len(m.data)
                    tar.addfile(info, io.BytesIO(m.data))
        return buf.getvalue()


# -- reading the host's files under its root -------------------------------------------------------------------
@frozen
class _HostFile:
    path: str  # the host path asked for
    real: str  # where it is on this machine
    mode: int
    data: bytes


def _read(root: str, path: str) -> _HostFile | None:
    """A regular file of the host, or None when there is none at `path`."""
    try:
        real = resolve_in_root(root, path)
        st = os.stat(real)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    if st.st_size > MAX_FILE_BYTES:
        raise ImageInputError(f"{path} is {st.st_size} bytes, larger than any file the probe image takes")
    try:
        with open(real, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ImageInputError(f"cannot read {path}: {e.strerror or e}") from None
    return _HostFile(path, real, stat.S_IMODE(st.st_mode), data)


def _elf(f: _HostFile) -> ElfInfo:
    try:
        return read_elf(f.data)
    except NotElf as e:
        raise ImageInputError(f"{f.path} is not a program this host can run ({e})") from None


# -- what goes in ---------------------------------------------------------------------------------------------
class _Builder:
    def __init__(self, root: str, machine: str) -> None:
        if machine not in ARCHES:
            raise ImageInputError(f"gpudoctor does not know where glibc keeps its libraries on {machine}")
        self.root = root
        self.triplet, self.loader, self.e_machine = ARCHES[machine]
        self.lib_dirs = (f"/lib/{self.triplet}", f"/usr/lib/{self.triplet}", "/lib64", "/usr/lib64", "/lib", "/usr/lib")
        self.members: dict[str, Member] = {}
        self.by_real: dict[str, str] = {}  # a file already in the image, by its real path: later paths link to it
        self.sonames: dict[str, str] = {}  # soname → host path found
        self.missing: list[str] = []
        self.abi: ElfInfo | None = None

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        path = path.strip("/")
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in self.members:
                self.members[sub] = Member(sub, "dir", mode if i == len(parts) else 0o755)

    def add_file(self, image_path: str, f: _HostFile, mode: int | None = None) -> None:
        image_path = image_path.strip("/")
        if image_path in self.members:
            return
        self.add_dir(os.path.dirname(image_path))
        first = self.by_real.get(f.real)
        if first is not None and first != image_path:
            self.members[image_path] = Member(image_path, "link", 0o777, target="/" + first)
            return
        self.by_real[f.real] = image_path
        self.members[image_path] = Member(image_path, "file", mode if mode is not None else f.mode, f.data, source=f.path)

    def add_link(self, image_path: str, target: str) -> None:
        image_path = image_path.strip("/")
        self.add_dir(os.path.dirname(image_path))
        self.members.setdefault(image_path, Member(image_path, "link", 0o777, target=target))

    def check_abi(self, f: _HostFile, info: ElfInfo) -> bool:
        if info.machine != self.e_machine:
            return False
        if self.abi is None:
            self.abi = info
        return info.same_abi(self.abi)

    def program(self, f: _HostFile, image_path: str) -> None:
        """A program and everything its loader would load for it."""
        info = _elf(f)
        if not self.check_abi(f, info):
            raise ImageInputError(f"{f.path} is not built for this machine")
        self.add_file(image_path, f, 0o755)
        if info.interp:
            self.interp(info.interp, required_by=f.path)
        self.libraries(info.needed, f.path, info.runpath, required=True)

    def interp(self, path: str, required_by: str) -> None:
        f = _read(self.root, path)
        if f is None:
            raise ImageInputError(f"{required_by} needs the loader {path}, which is not on this host")
        self.add_file(path, f, 0o755)

    def find_library(self, name: str, runpath: Iterable[str]) -> tuple[_HostFile, ElfInfo] | None:
        for d in (*runpath, *self.lib_dirs):
            f = _read(self.root, f"{d.rstrip('/')}/{name}")
            if f is None:
                continue
            try:
                info = read_elf(f.data)
            except NotElf:
                continue  # a linker script or a stray file of that name
            if self.check_abi(f, info):
                return f, info
        return None

    def libraries(self, names: Sequence[str], owner: str, runpath: Sequence[str], required: bool) -> None:
        """The libraries `names` that `owner` needs and, transitively, what they need."""
        queue = deque([(n, owner, tuple(runpath)) for n in names])
        while queue:
            name, who, runpath = queue.popleft()
            if name in self.sonames:
                continue
            origin = os.path.dirname(who)
            found = self.find_library(name, [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in runpath])
            if found is None:
                if required:
                    raise ImageInputError(f"{who} needs {name}, which is in none of {', '.join(self.lib_dirs)}")
                self.missing.append(name)
                continue
            f, lib = found
            self.sonames[name] = f.path
            self.add_file(f.path, f)
            queue.extend((n, f.path, lib.runpath) for n in lib.needed)

    def busybox(self) -> str | None:
        """The host's busybox and the applets probe.sh runs, or None when the host has none."""
        for path in BUSYBOX_PATHS:
            f = _read(self.root, path)
            if f is None:
                continue
            self.program(f, "bin/busybox")
            for tool in PROBE_TOOLS:
                self.add_link(f"bin/{tool}", "busybox")
            return f"busybox {path} ({'static' if _elf(f).static else 'dynamic'})"
        return None

    def host_tools(self) -> str:
        found = []
        for tool in PROBE_TOOLS:
            f = next((g for d in HOST_PATH if (g := _read(self.root, f"{d}/{tool}")) is not None), None)
            if f is None:
                raise ImageInputError(f"this host has no busybox and no {tool} in {':'.join(HOST_PATH)}")
            self.program(f, f"bin/{tool}")
            found.append(f.path)
        return "the host's own " + ", ".join(found)

    def nvidia_runtime(self) -> None:
        f = _read(self.root, self.loader)
        if f is None:
            self.missing.append(self.loader)
        else:
            self.add_file(self.loader, f, 0o755)
        self.libraries(NVIDIA_RUNTIME_LIBS, "the injected NVIDIA tools", (), required=False)

    def skeleton(self) -> None:
        for d in ("dev", "proc", "sys", "etc/ld.so.conf.d", "usr/bin", f"usr/lib/{self.triplet}", "run"):
            self.add_dir(d)
        self.add_dir("tmp", 0o1777)
        self.members["etc/ld.so.conf"] = Member("etc/ld.so.conf", "file", 0o644, LD_SO_CONF)


def collect_inputs(root: str = "/", machine: str | None = None) -> ImageInputs:
    """What gpudoctor's probe image is made of on this host. Reads files only; raises ImageInputError."""
    machine = machine or os.uname().machine
    b = _Builder(root, machine)
    try:
        tools = b.busybox()
    except ImageInputError as e:  # a dynamic busybox whose libraries are missing: the host's own tools may do
        b, tools, unusable = _Builder(root, machine), None, f"; its busybox is unusable: {e}"
    else:
        unusable = ""
    if tools is None:
        try:
            tools = b.host_tools()
        except ImageInputError as e:
            raise ImageInputError(f"{e}{unusable}") from None
    b.nvidia_runtime()
    b.skeleton()
    members = tuple(b.members[k] for k in sorted(b.members))
    size = sum(len(m.data) for m in members)
    if size > MAX_IMAGE_BYTES:
        raise ImageInputError(f"the probe image would hold {size} bytes, more than {MAX_IMAGE_BYTES}")
    manifest = json.dumps([LAYOUT_VERSION, [m.fingerprint() for m in members]], separators=(",", ":"))
    return ImageInputs(members, tools, tuple(dict.fromkeys(b.missing)), hashlib.sha256(manifest.encode()).hexdigest())


# -- the daemon side ------------------------------------------------------------------------------------------
def ensure_host_image(root: str = "/", timeout_s: float = 60.0) -> dict[str, Any]:
    """gpudoctor's probe image on the daemon: found again by its tag, or made now. Answers like runner.ensure_image
    (present, id, env, ...) plus how it was made; `present` False with `error` when the host lacks what it needs
    or the daemon refused the import. Raises HostCallError when the daemon cannot be asked."""
    import docker

    from ..facts.docker_client import to_host_call_error
    from . import runner
    from .api import sdk_explanation

    started = time.monotonic()
    try:
        inputs = collect_inputs(root)
    except ImageInputError as e:
        return {"image": None, "present": False, "built": False, "pulled": False, "error": str(e), "env": [], "id": None}
    about = {"digest": inputs.digest, "tools": inputs.tools, "files": sum(m.kind == "file" for m in inputs.members),
             "bytes": inputs.size, "sources": list(inputs.sources), "missing": list(inputs.missing)}
    api = runner._api(timeout_s)
    built, removed = False, []
    try:
        try:
            labels = (api.inspect_image(inputs.tag).get("Config") or {}).get("Labels") or {}
            current = labels.get(INPUTS_LABEL) == inputs.digest
        except docker.errors.ImageNotFound:
            current = False
        if not current:
            changes = ['CMD ["/bin/sh"]', "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                       f"LABEL {IMAGE_LABEL}={IMAGE_LABEL_VALUE} {INPUTS_LABEL}={inputs.digest}"]
            repository, tag = inputs.tag.split(":")
            try:
                api.import_image_from_data(inputs.tar(), repository=repository, tag=tag, changes=changes)
            except docker.errors.APIError as e:
                return {"image": inputs.tag, "present": False, "built": False, "pulled": False, "id": None, "env": [],
                        "error": f"the daemon refused to import it: {sdk_explanation(e)}", **about}
            built = True
        info = runner.ensure_image(inputs.tag, False, timeout_s)
        if built and info.get("id"):
            removed = _prune(api, str(info["id"]))
    except docker.errors.DockerException as e:
        raise to_host_call_error(e) from None
    except OSError as e:
        raise to_host_call_error(e) from None
    return {**info, "built": built, "build_s": round(time.monotonic() - started, 3), "removed": removed, **about}


def _prune(api: Any, keep: str) -> list[str]:
    """Remove gpudoctor's own older probe images (see the module's docstring); the ids removed. An image that also
    carries a name of someone else's is left alone: removing it by id would take that name away."""
    import docker

    removed = []
    now = time.time()
    for image in api.images(filters={"label": f"{IMAGE_LABEL}={IMAGE_LABEL_VALUE}"}):
        if image.get("Id") == keep or now - float(image.get("Created") or now) < PRUNE_GRACE_S:
            continue
        tags = [t for t in image.get("RepoTags") or [] if t and t != "<none>:<none>"]
        if any(not t.startswith(f"{REPOSITORY}:") for t in tags):
            continue
        try:
            for name in tags or [image["Id"]]:
                api.remove_image(name, force=False)
            removed.append(str(image["Id"]))
        except docker.errors.APIError:
            pass  # a container still uses it: left alone
    return removed
