"""The test bed: a simulated NVIDIA host + a real private dockerd wired to the stand-in toolkit.

Use it to run gpudoctor end to end in CI (no GPU):

    from tests.sim.bed import SimBed
    from tests.sim.host import SimHost
    from tests.sim.toolkit import ToolkitSpec

    with SimBed.create(tmp_path, SimHost.standard(2), ToolkitSpec(mode="legacy"),
                       {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}) as bed:
        bed.docker("run", "--rm", "--gpus", "all", bed.image, "ls", "/dev")   # real dockerd, --gpus works
        report = bed.check_json("--image", bed.image, "--forms", "gpus-all")   # real gpudoctor subprocess
        bed.env()    # DOCKER_HOST + PYTHONPATH (fake NVML) + GPUDOCTOR_SIM_HOST, for your own subprocess
        bed.root     # the host tree: pass as `gpudoctor --root`

For pytest, share one bed per module (starting dockerd takes ~1 s, an image import ~0.3 s):

    @pytest.fixture(scope="module")
    def bed(tmp_path_factory):
        with SimBed.create(tmp_path_factory.mktemp("bed"), SimHost.standard(2), ToolkitSpec("legacy"),
                           NVIDIA_RUNTIME) as b:
            yield b

or use the session-wide factory in `tests/sim/fixtures.py` (`sim_beds.shared(host, toolkit, daemon)`).

`bed_or_skip()` raises pytest's skip when no dockerd/runc/busybox exists (CI has them; mark such
tests `@pytest.mark.docker`).

What is where:
* `bed.root` — the simulated host tree (`tests/sim/tree.py`): sysfs/procfs/dev, driver userspace, the
  stand-in toolkit under `usr/bin` (when installed), `etc/nvidia-container-runtime/config.toml`,
  `etc/cdi/*.yaml`, and `etc/docker/daemon.json`, **which is the private dockerd's config file**:
  `bed.dockerd.write_config({...})` changes it without the daemon noticing (the "registered but not
  restarted" case), `bed.restart()` makes the daemon read it.
* The private dockerd runs with PATH = `<shim dir>:<root>/usr/bin:<system PATH>`, so it registers
  its `--gpus` driver exactly when the stand-in `nvidia-container-runtime-hook` is in the tree at
  daemon start, and resolves runtime `nvidia` (path `nvidia-container-runtime`) from the tree. The
  shim dir holds the `runc` shim (see `tests/sim/standin.py`), nothing else.
* `<root>/proc/<dockerd pid>` describes the daemon in host terms (`tests/sim/tree.py`), refreshed on
  every (re)start.
* `engine=` (tests/support/engines.py) runs the bed on another Docker engine: its dockerd, containerd
  and CLI, and its runc behind the shim (Docker 29 asks for a time namespace, which Debian's runc 1.1
  does not know). Without it: the system's (Debian's 20.10). The scenario library's expectations are
  written for 20.10; on 29 the daemon's own CDI reads its default spec dirs, not the tree's.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from tests.sim.host import SIM_HOST_ENV, SimHost
from tests.sim.standin import SIM_DIR
from tests.sim.toolkit import ToolkitSpec, find_real_runc, install_toolkit, uninstall_toolkit, write_runc_shim
from tests.sim.tree import build_tree, write_dockerd_proc
from tests.support.dockerd import BUSYBOX_APPLETS, PrivateDockerd, find_busybox, find_docker_cli, find_dockerd
from tests.support.engines import Engine

FAKE_NVML_DIR = Path(__file__).resolve().parent / "fake_nvml"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IMAGE = "probe:busybox"
# What `nvidia-ctk runtime configure --runtime=docker` writes (tests/fixtures/real-h100-docker20-toolkit-cdi/).
NVIDIA_RUNTIME: dict[str, Any] = {"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}


def missing_prerequisite() -> str | None:
    """Why a bed cannot run here (None when it can)."""
    if find_dockerd() is None:
        return "no dockerd binary installed"
    if find_docker_cli() is None:
        return "no docker CLI installed"
    if find_busybox() is None:
        return "no static busybox (Debian's busybox-static)"
    if os.geteuid() != 0:
        return "a private dockerd needs root"
    try:
        find_real_runc()
    except FileNotFoundError as e:
        return str(e)
    return None


def bed_or_skip() -> None:
    import pytest

    why = missing_prerequisite()
    if why:
        pytest.skip(why)


class SimDockerd(PrivateDockerd):
    """A PrivateDockerd whose config file is the simulated host's `/etc/docker/daemon.json` and whose
    process is mirrored into the tree's `/proc` after each start."""

    def __init__(
        self, sim_root: Path, config: Mapping[str, Any], path_prepend: Sequence[str | Path], engine: Engine | None = None
    ) -> None:
        self.sim_root = Path(sim_root)
        self.started_at: float | None = None
        # workdir None: a short dir under /tmp (unix socket paths are limited to 108 bytes).
        super().__init__(None, config, path_prepend=path_prepend, engine=engine)

    @property
    def config_path(self) -> Path:  # type: ignore[override]
        return self.sim_root / "etc/docker/daemon.json"

    def start(self, timeout: float = 30) -> SimDockerd:
        if self.running:
            return self
        self.started_at = time.time()
        super().start(timeout)
        if self.pid is not None:
            write_dockerd_proc(self.sim_root, self.pid, socket=str(self.socket))
        return self


class SimBed:
    """One simulated host (tree + fake NVML + stand-in toolkit) and its private dockerd."""

    def __init__(
        self,
        workdir: Path,
        host: SimHost,
        toolkit: ToolkitSpec | None,
        daemon_config: Mapping[str, Any],
        host_changes: Mapping[str, Any] | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.toolkit = toolkit
        self.root = self.workdir / "root"
        self.shim_dir = self.workdir / "shim"
        engine_runc = Path(engine.bin_dir) / "runc" if engine and engine.bin_dir else None
        self.real_runc = str(engine_runc) if engine_runc and os.access(engine_runc, os.X_OK) else find_real_runc(exclude=[self.shim_dir])
        build_tree(self.root, host, host_changes=host_changes)
        if toolkit is not None:
            install_toolkit(self.root, host, toolkit, self.real_runc)
        write_runc_shim(self.shim_dir, self.real_runc)
        self.dockerd = SimDockerd(self.root, daemon_config, [self.shim_dir, self.root / "usr/bin"], engine)
        self.image = DEFAULT_IMAGE

    # -- lifecycle ------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        workdir: str | Path,
        host: SimHost,
        toolkit: ToolkitSpec | None = None,
        daemon_config: Mapping[str, Any] | None = None,
        *,
        host_changes: Mapping[str, Any] | None = None,
        start: bool = True,
        image: bool = True,
        engine: Engine | None = None,
    ) -> SimBed:
        """`host_changes`: tests/support/hosttree.py HostSpec fields for host-layer breakage."""
        bed = cls(Path(workdir), host, toolkit, dict(daemon_config or {}), host_changes, engine)
        if start:
            try:
                bed.start(image=image)
            except BaseException:
                bed.close()
                raise
        return bed

    def start(self, image: bool = True) -> SimBed:
        self.dockerd.start()
        if image:
            self.import_image(self.image)
        return self

    def restart(self, config: Mapping[str, Any] | None = None) -> SimBed:
        """Stop and start the daemon (re-reading daemon.json, re-detecting the hook on its PATH).
        Images survive (same data-root); containers are removed."""
        self.dockerd.restart(config)
        return self

    def close(self) -> None:
        self.dockerd.close()

    def __enter__(self) -> SimBed:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- changing the simulated host --------------------------------------------------------------
    def install_toolkit(self, spec: ToolkitSpec) -> None:
        """Install (or reinstall) the stand-in toolkit. A running daemon keeps its old view of the
        hook until `restart()` — as with the real toolkit (docker-gpu-internals.md §1.3)."""
        self.toolkit = spec
        install_toolkit(self.root, self.host, spec, self.real_runc)

    def uninstall_toolkit(self) -> None:
        self.toolkit = None
        uninstall_toolkit(self.root)

    # -- talking to it --------------------------------------------------------------------------
    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a gpudoctor subprocess: this daemon, the fake NVML, the host description."""
        env = self.dockerd.env(base)
        env["PYTHONPATH"] = os.pathsep.join([str(FAKE_NVML_DIR), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
        env[SIM_HOST_ENV] = str(self.root / SIM_DIR / "host.json")
        env.pop("NO_COLOR", None)
        return env

    def gpudoctor(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """`gpudoctor <args> --root <tree>` as a subprocess against this bed (cwd /)."""
        return subprocess.run(
            [sys.executable, "-m", "gpudoctor", *args, "--root", str(self.root)],
            capture_output=True,
            text=True,
            env=self.env(),
            cwd="/",
            timeout=timeout,
            check=False,
        )

    def check_json(self, *args: str, timeout: float = 180) -> dict[str, Any]:
        """`gpudoctor check --format json <args> --root <tree>`, parsed. Raises with stderr on junk."""
        proc = self.gpudoctor("check", "--format", "json", *args, timeout=timeout)
        try:
            return json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"gpudoctor exited {proc.returncode} without JSON:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}") from None

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.dockerd.docker(*args, input=input, timeout=timeout)

    def import_image(self, tag: str = DEFAULT_IMAGE, changes: Sequence[str] = ()) -> str:
        """A busybox image (`docker import`, no registry), with Dockerfile `changes` such as
        `ENV NVIDIA_VISIBLE_DEVICES=all` (an image that bakes a GPU request)."""
        existing = self.docker("image", "inspect", "--format", "{{.Id}}", tag)
        if existing.returncode == 0:
            return existing.stdout.strip()
        busybox = find_busybox()
        assert busybox is not None
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for d in ("bin", "dev", "proc", "sys", "tmp", "etc", "usr", "usr/bin"):
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                info.mode = 0o1777 if d == "tmp" else 0o755
                tar.addfile(info)
            tar.add(busybox, arcname="bin/busybox")
            for applet in (*BUSYBOX_APPLETS, "wc", "sort", "id", "printf", "echo", "test", "["):
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type = tarfile.SYMTYPE
                link.linkname = "busybox"
                tar.addfile(link)
        argv = ["import", "--change", 'CMD ["/bin/sh"]']
        for change in changes:
            argv += ["--change", change]
        out = self.docker(*argv, "-", tag, input=buf.getvalue())
        if out.returncode != 0:
            raise RuntimeError(f"docker import failed: {out.stderr}")
        return out.stdout.strip()

    def run(self, *args: str, image: str | None = None, cmd: Sequence[str] = ("sh", "-c", "ls /dev")) -> subprocess.CompletedProcess[str]:
        """`docker run --rm <args> <image> <cmd>`."""
        return self.docker("run", "--rm", *args, image or self.image, *cmd)

    def __repr__(self) -> str:
        mode = self.toolkit.mode if self.toolkit else "none"
        return f"SimBed({len(self.host.gpus)} GPUs, toolkit={mode}, {self.dockerd.url})"


def healthy_args(bed: SimBed) -> tuple[str, ...]:
    """`gpudoctor check` arguments under which a bed of a healthy host judges healthy. On Docker >= 25 a CDI-name
    request (`--device nvidia.com/gpu=…`) is resolved by dockerd itself from this machine's /etc/cdi, not the
    tree's (the private dockerd is not chrooted into the bed): a failure no real host has, so containers.cdi is
    left out of the verdict there (its probe still runs and is judged)."""
    engine = bed.dockerd.engine
    return ("--skip", "containers.cdi") if engine is not None and engine.at_least(25) else ()


def healthy_exit(bed: SimBed) -> int:
    """The exit code of a healthy bed's check under healthy_args: 0, or 4 ("Partial") where --skip narrowed it
    (a run that left a check out never says "Ready", README "Exit codes")."""
    return 4 if healthy_args(bed) else 0


def judged_healthy(report: dict) -> bool:
    """Ready, or — under healthy_args' --skip — partial with nothing broken."""
    v = report["verdict"]
    return v["ready"] is True or (bool(v.get("partial")) and v["headline"].startswith("Partial: nothing broken"))


__all__ = ["healthy_args", "healthy_exit", "judged_healthy", "SimBed", "SimDockerd", "NVIDIA_RUNTIME", "DEFAULT_IMAGE", "bed_or_skip", "missing_prerequisite"]
