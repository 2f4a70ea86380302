"""The Docker engines the real-Docker tests run against.

Two sources, so that a fresh clone passes with Debian's docker.io alone and CI also covers a current
engine (issue 9, "Docker 29 in CI"):

* the system engine: `dockerd` on PATH (Debian 12's docker.io 20.10), with its own containerd/runc;
* every bin dir listed in `GPUDOCTOR_TEST_ENGINE_DIRS` (os.pathsep-separated), each holding a static
  engine: dockerd, containerd, containerd-shim-runc-v2, runc, docker-proxy and, optionally, a docker
  CLI. `scripts/test` unpacks `../shared/kits/docker-engine-*.tar.xz` into `.cache/engines/` and sets it.

Each engine is a test id `docker<major>` (`docker20`, `docker29`). An engine major that CI is meant to
cover (`WANTED_MAJORS`) but that this machine lacks still gets its id, and its variants skip with the
reason; a listed dir without a working dockerd fails its variants instead (CI lost its engine).

A listed engine's bin dir goes on its private dockerd's PATH ahead of the system dirs (after a test's
own dirs), so that dockerd starts that engine's containerd and shim and runs containers with that
engine's runc, never the system's.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ENGINE_DIRS_ENV = "GPUDOCTOR_TEST_ENGINE_DIRS"
# Engine majors CI covers besides the system one (the kit in ../shared/kits: Docker Engine 29.7.2).
WANTED_MAJORS = (29,)
SYSTEM_DOCKERD_PATHS = ("/usr/sbin/dockerd", "/usr/bin/dockerd", "/usr/local/bin/dockerd")
SYSTEM_CLI_PATHS = ("/usr/bin/docker", "/usr/local/bin/docker")


@dataclass(frozen=True)
class Engine:
    """One Docker engine: where its binaries are and what it is. `unavailable` says why it cannot run
    here (its tests skip); `broken` says why a listed engine is unusable (its tests fail)."""

    id: str
    dockerd: str | None = None
    bin_dir: str | None = None  # None: the system PATH provides containerd, runc, docker-proxy
    cli: str | None = None
    version: tuple[int, ...] = ()
    unavailable: str | None = None
    broken: str | None = None

    @property
    def version_text(self) -> str:
        return ".".join(str(v) for v in self.version) or "unknown"

    @property
    def major(self) -> int:
        return self.version[0] if self.version else 0

    def at_least(self, *version: int) -> bool:
        return self.version >= version

    def __str__(self) -> str:
        return f"{self.id} ({self.dockerd or 'absent'}, {self.version_text})"

    # -- what this engine really answers (ground truth the tests compare gpudoctor with) ----------
    @property
    def no_gpu_driver_error(self) -> str:
        """`--gpus all` on a dockerd that found no NVIDIA hook on its PATH at start. 29.x first asks CDI
        for a GPU vendor (seen on 29.7.2 with no spec); 20.10 has no driver to pick (moby
        daemon/errors.go incompatibleDeviceRequest)."""
        if self.at_least(29):
            return "failed to discover GPU vendor from CDI: no known GPU vendor found"
        return 'could not select device driver "" with capabilities: [[gpu]]'

    def hook_error(self, stderr: str) -> str:
        """The daemon's answer when the OCI prestart hook (the NVIDIA hook `--gpus` adds) exits 1 with `stderr`:
        the envelope runc and containerd wrap it in (20.10: containerd 1.6 + Debian's runc 1.1; 29.7.2:
        containerd 2.3 + runc 1.4, both seen here)."""
        if self.at_least(29):
            return ("failed to create task for container: failed to create shim task: OCI runtime create failed: runc create"
                    " failed: unable to start container process: error during container init: error running prestart hook #0:"
                    f" exit status 1, stdout: , stderr: {stderr}")
        return ("failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process:"
                f" error during container init: error running hook #0: error running hook: exit status 1, stdout: , stderr: {stderr}"
                ": unknown")

    def runtime_error(self, message: str) -> str:
        """The daemon's answer when the OCI runtime itself (nvidia-container-runtime) fails `create` with `message`."""
        if self.at_least(29):
            return f"failed to create task for container: failed to create shim task: OCI runtime create failed: {message}"
        return f"failed to create shim task: OCI runtime create failed: {message}: unknown"

    def unknown_runtime_error(self, name: str) -> str:
        """`--runtime=<name>` that the daemon has not registered (the wording changed in moby 23.0)."""
        if self.at_least(23):
            return f"unknown or invalid runtime name: {name}"
        return f"Unknown runtime specified {name}"


def dockerd_version(dockerd: str) -> tuple[int, ...] | None:
    """`dockerd --version` → (29, 7, 2); None when it does not run or says something else."""
    try:
        out = subprocess.run([dockerd, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"version (\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else None


def find_dockerd() -> str | None:
    """The system's dockerd: on PATH, else where Debian and Docker's packages put it."""
    return shutil.which("dockerd") or next((p for p in SYSTEM_DOCKERD_PATHS if os.access(p, os.X_OK)), None)


def find_docker_cli() -> str | None:
    """The docker CLI on PATH, else where the packages put it."""
    return shutil.which("docker") or next((p for p in SYSTEM_CLI_PATHS if os.access(p, os.X_OK)), None)


def _listed_engine(bin_dir: str) -> Engine:
    dockerd = os.path.join(bin_dir, "dockerd")
    name = f"docker-{Path(bin_dir).parent.name or bin_dir}"
    if not os.access(dockerd, os.X_OK):
        return Engine(name, bin_dir=bin_dir, broken=f"{ENGINE_DIRS_ENV} lists {bin_dir}, which has no executable dockerd")
    version = dockerd_version(dockerd)
    if version is None:
        return Engine(name, dockerd, bin_dir, broken=f"{dockerd} --version does not say which Docker it is")
    missing = [b for b in ("containerd", "containerd-shim-runc-v2", "runc") if not os.access(os.path.join(bin_dir, b), os.X_OK)]
    if missing:
        return Engine(f"docker{version[0]}", dockerd, bin_dir, version=version,
                      broken=f"{bin_dir} lacks {', '.join(missing)} (a static engine ships them beside dockerd)")
    cli = os.path.join(bin_dir, "docker")
    return Engine(f"docker{version[0]}", dockerd, bin_dir, cli if os.access(cli, os.X_OK) else find_docker_cli(), version)


@functools.lru_cache(maxsize=None)
def engines() -> tuple[Engine, ...]:
    """The system engine, each listed one, and a skipped stand-in for each wanted major not found."""
    found: list[Engine] = []
    system = find_dockerd()
    version = dockerd_version(system) if system else None
    if system and version:
        found.append(Engine(f"docker{version[0]}", system, None, find_docker_cli(), version))
    else:
        found.append(Engine("docker-system", unavailable="no dockerd binary installed (Debian: apt-get install docker.io)"))
    seen = {os.path.realpath(system)} if system else set()
    for bin_dir in (os.environ.get(ENGINE_DIRS_ENV) or "").split(os.pathsep):
        if not bin_dir:
            continue
        engine = _listed_engine(os.path.abspath(bin_dir))
        if engine.dockerd and os.path.realpath(engine.dockerd) in seen:
            continue
        if engine.dockerd:
            seen.add(os.path.realpath(engine.dockerd))
        found.append(engine)
    majors = {e.major for e in found if e.dockerd}
    for major in WANTED_MAJORS:
        if major not in majors:
            found.append(Engine(f"docker{major}", unavailable=(
                f"no Docker {major} engine: {ENGINE_DIRS_ENV} names none "
                f"(scripts/test sets it when ../shared/kits has docker-engine-{major}.*.tar.xz)")))
    return tuple(_unique_ids(found))


def _unique_ids(found: list[Engine]) -> list[Engine]:
    """Two engines of one major (say 29.5 and 29.7) get ids with their minor: docker29.5, docker29.7."""
    out = []
    for e in found:
        twins = [o for o in found if o.id == e.id]
        if len(twins) > 1 and e.version:
            e = Engine(f"docker{e.version[0]}.{e.version[1]}", e.dockerd, e.bin_dir, e.cli, e.version, e.unavailable, e.broken)
        out.append(e)
    return out


def system_engine() -> Engine:
    return engines()[0]


def engine_ids() -> list[str]:
    return [e.id for e in engines()]
