"""Builds gpudoctor's own image (the repo's Dockerfile) offline on a private dockerd, as CI does.

The base is `docker import` of scripts/python_base_rootfs.py's tar (this machine's Debian python3); pip installs
gpudoctor from a copy of the checkout with its dependencies from a wheelhouse (`pip download`, into the build
context), so the build itself needs no network: it runs with `--network none`. Each step's wall time is kept in
`BuiltImage.timings` (tests print them; the figures are in the Dockerfile's commit message).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.dockerd import PrivateDockerd

REPO = Path(__file__).resolve().parents[2]
BASE_TAG = "gpudoctor-base:ci"
IMAGE_TAG = "gpudoctor:ci"
# What the image needs from the checkout (the Dockerfile's COPY . /src; tests and benchmarks stay out).
CONTEXT_PARTS = ("pyproject.toml", "README.md", "gpudoctor", "checks")


@dataclass
class BuiltImage:
    tag: str
    size_bytes: int
    base_size_bytes: int
    timings: dict[str, float] = field(default_factory=dict)


def why_not_buildable() -> str | None:
    """Why this machine cannot build the image offline (a reason to skip), or None."""
    if not os.path.isfile("/usr/bin/python3") or not glob.glob("/usr/lib/python3.*/os.py"):
        return "no Debian python3 in /usr/bin to make the base image from"
    if not glob.glob("/usr/share/python-wheels/pip-*.whl"):
        return "no pip wheel in /usr/share/python-wheels (Debian's python3-pip-whl; scripts/test installs it)"
    if shutil.which("ldd") is None or shutil.which("dpkg-query") is None:
        return "no ldd / dpkg-query to collect the base image's libraries"
    return None


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def build_context(dest: Path) -> Path:
    """A build context: the package files of the checkout and a wheelhouse of its dependencies in .wheels/."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in CONTEXT_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / part)
    wheels = dest / ".wheels"
    # The project's own dependencies, resolved from pyproject.toml, and the build backend pip needs to build it.
    proc = _run(
        [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
         "-d", str(wheels), str(dest), "setuptools", "wheel"],
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip download of the wheelhouse failed: {proc.stderr.strip()[-2000:]}")
    return dest


def _size(daemon: PrivateDockerd, tag: str) -> int:
    return int(daemon.docker("image", "inspect", "--format", "{{.Size}}", tag, check=True).stdout.strip())


def build_image(daemon: PrivateDockerd, workdir: Path) -> BuiltImage:
    timings: dict[str, float] = {}
    started = time.monotonic()
    base_tar = workdir / "base.tar"
    proc = _run(["/usr/bin/python3", str(REPO / "scripts" / "python_base_rootfs.py"), "--output", str(base_tar)], 120)
    if proc.returncode != 0:
        raise RuntimeError(f"python_base_rootfs.py failed: {proc.stderr.strip()}")
    timings["base_rootfs_s"] = time.monotonic() - started
    t = time.monotonic()
    daemon.docker("import", str(base_tar), BASE_TAG, timeout=300, check=True)
    timings["base_import_s"] = time.monotonic() - t
    t = time.monotonic()
    context = build_context(workdir / "context")
    timings["wheelhouse_s"] = time.monotonic() - t
    t = time.monotonic()
    # The CLI without a buildx plugin uses the classic builder, which every engine has (Debian's docker.io has no buildx).
    proc = daemon.docker(
        "build", "--network", "none", "--build-arg", f"BASE={BASE_TAG}", "--build-arg", "PIP_NO_INDEX=1",
        "--build-arg", "PIP_FIND_LINKS=/src/.wheels", "-f", str(REPO / "Dockerfile"), "-t", IMAGE_TAG, str(context),
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"docker build failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    timings["docker_build_s"] = time.monotonic() - t
    timings["total_s"] = time.monotonic() - started
    return BuiltImage(IMAGE_TAG, _size(daemon, IMAGE_TAG), _size(daemon, BASE_TAG), timings)
