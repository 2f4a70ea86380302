"""A private rootful `podman system service` for tests: its own storage, run root, config and socket, serving the
Docker API that gpudoctor talks to through DOCKER_HOST (issue 13: RHEL-family hosts run Podman).

    with PrivatePodman() as p:
        p.import_busybox()
        run_cli([...], env=p.env())

Settings, each for this machine rather than for Podman's defaults: vfs storage (no overlay mounts to leak),
the cgroupfs manager and file events (no systemd here), runc (Debian's crun 1.8 refuses hybrid cgroups), and
nofile/nproc ulimits of 1024 (rootful Podman asks for 1048576, above this sandbox's hard limits).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.dockerd import busybox_rootfs_tar

CONTAINERS_CONF = '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'


def why_no_podman() -> str | None:
    if os.geteuid() != 0:
        return "a rootful podman service needs root"
    if shutil.which("podman") is None:
        return "no podman (Debian's podman; scripts/test installs it)"
    if shutil.which("runc") is None:
        return "no runc (Debian's runc, a docker.io dependency)"
    return None


class PrivatePodman:
    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="gpd-podman-", dir="/tmp"))
        os.chmod(self.workdir, 0o755)
        (self.workdir / "containers.conf").write_text(CONTAINERS_CONF)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.workdir / "podman.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _base(self) -> list[str]:
        w = self.workdir
        return ["podman", "--root", str(w / "storage"), "--runroot", str(w / "run"), "--storage-driver", "vfs",
                "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc"]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CONTAINER"))}
        env["CONTAINERS_CONF"] = str(self.workdir / "containers.conf")
        env["TMPDIR"] = str(self.workdir)
        return env

    def podman(self, *args: str, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self._base(), *args], input=input, capture_output=True, timeout=timeout,
                              env=self._env(), check=False)
        return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                                           proc.stderr.decode("utf-8", "replace"))

    def start(self, timeout: float = 30) -> "PrivatePodman":
        log = open(self.workdir / "service.log", "wb")
        self._proc = subprocess.Popen([*self._base(), "system", "service", "--time=0", self.url], stdout=log,
                                      stderr=subprocess.STDOUT, env=self._env(), start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"podman system service exited: {self.log_tail()}")
            if self.socket.exists():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"podman system service did not listen in {timeout} s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return (self.workdir / "service.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def env(self) -> dict[str, str]:
        """Environment for a gpudoctor subprocess aimed at this service."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.url
        return env

    def import_busybox(self, tag: str = "probe:busybox") -> None:
        out = self.podman("import", "--change", 'CMD ["/bin/sh"]', "-", tag, input=busybox_rootfs_tar())
        if out.returncode != 0:
            raise RuntimeError(f"podman import failed: {out.stderr}")

    def containers(self) -> list[str]:
        return self.podman("ps", "-aq").stdout.split()

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self.podman("rm", "-af", timeout=60)
        prefix = str(self.workdir)
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f]
        for point in sorted((p for p in points if p.startswith(prefix + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "PrivatePodman":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
