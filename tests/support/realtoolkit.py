"""The real NVIDIA Container Toolkit on a machine without a GPU: `cdi` mode, a recorded spec, temp nodes.

In `cdi` mode nvidia-container-runtime needs no NVML: it turns NVIDIA_VISIBLE_DEVICES (and CDI names)
into OCI edits from the spec files alone. So a "host" here is:

* the spec `nvidia-ctk cdi generate` wrote on the real H100 host
  (tests/fixtures/real-h100-docker20-toolkit-cdi/cdi-nvidia.yaml), relocated into a temp root: each
  deviceNode gets a `hostPath` to a char device node made there with the spec's major/minor (195: the
  nvidia driver's), each mount's `hostPath` an empty file there, each hook the kit's `nvidia-cdi-hook`;
* the config.toml recorded on that host (same fixture dir, `mode = "cdi"`), with `spec-dirs` pointing at
  the root and the runtime's debug log written there;
* for the private dockerd: the kit's bin dir first on its PATH (runtime `nvidia` resolves to the real
  `nvidia-container-runtime`, the real hook is what `--gpus` finds, and Docker 29 sees `nvidia-cdi-hook`),
  `NVIDIA_CTK_CONFIG_FILE_PATH` in its environment (toolkit ≥ 1.18 reads its config from there;
  containerd, the shim, the runtime and the OCI hooks inherit it), and on Docker ≥ 25 `cdi-spec-dirs`
  naming the root's spec dir, so that the daemon's own CDI never reads this machine's /etc/cdi.

Nothing is installed outside the temp root, which `close()` removes (device nodes included).

The kit's bin dir comes from `GPUDOCTOR_TEST_TOOLKIT_DIR`; `scripts/test` unpacks
`../shared/kits/nvidia-container-toolkit-*.tar.gz` into `.cache/toolkit/` and sets it. Without it the
tests that need it skip; set but unusable, they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.engines import Engine

TOOLKIT_DIR_ENV = "GPUDOCTOR_TEST_TOOLKIT_DIR"
TOOLKIT_BINARIES = ("nvidia-ctk", "nvidia-container-runtime", "nvidia-container-runtime-hook", "nvidia-cdi-hook")
RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "real-h100-docker20-toolkit-cdi"
RECORDED_SPEC = RECORDED / "cdi-nvidia.yaml"
RECORDED_CONFIG = RECORDED / "config.toml"
RUNTIME_NAME = "nvidia"
# What `nvidia-ctk runtime configure --runtime=docker` writes (the same fixture dir's daemon.json).
NVIDIA_RUNTIME: dict[str, Any] = {"runtimes": {RUNTIME_NAME: {"args": [], "path": "nvidia-container-runtime"}}}


def toolkit_dir() -> tuple[Path | None, str | None, str | None]:
    """(bin dir, why it is absent, why it is broken): absent → skip, broken → fail."""
    raw = os.environ.get(TOOLKIT_DIR_ENV)
    if not raw:
        return None, (f"no real NVIDIA Container Toolkit: {TOOLKIT_DIR_ENV} is not set (scripts/test sets it "
                      "when ../shared/kits has nvidia-container-toolkit-*.tar.gz)"), None
    bin_dir = Path(raw).resolve()
    missing = [b for b in TOOLKIT_BINARIES if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        return None, None, f"{TOOLKIT_DIR_ENV}={raw} lacks {', '.join(missing)}"
    try:
        out = subprocess.run([str(bin_dir / "nvidia-container-runtime"), "--version"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        return None, None, f"{bin_dir}/nvidia-container-runtime does not run here: {e}"
    if out.returncode != 0:  # e.g. a glibc older than the kit's 2.34
        return None, None, f"{bin_dir}/nvidia-container-runtime --version failed: {(out.stderr or out.stdout).strip()[:300]}"
    return bin_dir, None, None


def kit_version(bin_dir: Path) -> str | None:
    """The version the kit says it was built as (its BUILDINFO.txt), independent of the binaries' own output."""
    try:
        text = (bin_dir.parent / "BUILDINFO.txt").read_text()
    except OSError:
        return None
    m = re.match(r"nvidia-container-toolkit (\d+\.\d+\.\d+)", text)
    return m.group(1) if m else None


def _all_edits(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [spec.get("containerEdits") or {}] + [d.get("containerEdits") or {} for d in spec.get("devices") or []]


@dataclass
class ToolkitHost:
    """A temp root holding the relocated spec (or none: `with_spec=False`), its nodes and files, and config.toml."""

    root: Path
    bin_dir: Path
    spec: dict[str, Any] | None

    @property
    def spec_dir(self) -> Path:
        return self.root / "etc/cdi"

    @property
    def spec_path(self) -> Path:
        return self.spec_dir / "nvidia.yaml"

    @property
    def config_path(self) -> Path:
        return self.root / "etc/nvidia-container-runtime/config.toml"

    @property
    def runtime_log(self) -> Path:
        return self.root / "var/log/nvidia-container-runtime.log"

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.runtime_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no runtime log)"

    def expected_nodes(self, device: str = "all") -> dict[str, tuple[int, int]]:
        """Container path → (major, minor) of every node a request for `device` gets: its own and the spec-wide ones."""
        assert self.spec is not None
        edits = [self.spec.get("containerEdits") or {}]
        edits += [d.get("containerEdits") or {} for d in self.spec["devices"] if d["name"] == device]
        return {n["path"]: (int(n.get("major", 0)), int(n.get("minor", 0))) for e in edits for n in e.get("deviceNodes") or []}

    def symlinks(self) -> dict[str, str]:
        """Link → target of every `nvidia-cdi-hook create-symlinks --link target::link` in the spec."""
        assert self.spec is not None
        out: dict[str, str] = {}
        for e in _all_edits(self.spec):
            for hook in e.get("hooks") or []:
                args = hook.get("args") or []
                if "create-symlinks" in args:
                    for i, a in enumerate(args):
                        if a == "--link":
                            target, link = args[i + 1].split("::", 1)
                            out[link] = target
        return out

    def mounts(self) -> list[str]:
        assert self.spec is not None
        return [m["containerPath"] for e in _all_edits(self.spec) for m in e.get("mounts") or []]

    def daemon_config(self, engine: Engine) -> dict[str, Any]:
        config = dict(NVIDIA_RUNTIME)
        if engine.at_least(25):  # CDI in dockerd (25.0+): read this root's specs, never this machine's /etc/cdi
            config["cdi-spec-dirs"] = [str(self.spec_dir)]
        return config

    def daemon_env(self) -> dict[str, str]:
        return {"NVIDIA_CTK_CONFIG_FILE_PATH": str(self.config_path)}

    def facts_env(self) -> dict[str, str]:
        """What gpudoctor's toolkit fact needs to find this toolkit as on a host that installed it."""
        return {"PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}", **self.daemon_env()}

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _relocate(edits: dict[str, Any], root: Path, bin_dir: Path) -> None:
    for node in edits.get("deviceNodes") or []:
        host = root / node["path"].lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        if not host.exists():
            os.mknod(host, stat.S_IFCHR | 0o666, os.makedev(int(node.get("major", 0)), int(node.get("minor", 0))))
        node["hostPath"] = str(host)
    for mount in edits.get("mounts") or []:
        host = root / mount["hostPath"].lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        host.touch()
        mount["hostPath"] = str(host)
    for hook in edits.get("hooks") or []:
        hook["path"] = str(bin_dir / Path(hook["path"]).name)


def _relocated_config(root: Path) -> str:
    text = RECORDED_CONFIG.read_text()
    edits = {
        'spec-dirs = ["/etc/cdi", "/var/run/cdi"]': f'spec-dirs = ["{root}/etc/cdi"]',
        '#debug = "/var/log/nvidia-container-runtime.log"': f'debug = "{root}/var/log/nvidia-container-runtime.log"',
    }
    assert 'mode = "cdi"' in text, f"{RECORDED_CONFIG} is no longer a cdi-mode config"
    for old, new in edits.items():
        assert old in text, f"{RECORDED_CONFIG} changed: no {old!r} to relocate"
        text = text.replace(old, new)
    return text


def make_host(bin_dir: Path, with_spec: bool = True) -> ToolkitHost:
    """A fresh temp root (short, under /tmp: it ends up in paths the runtime logs)."""
    root = Path(tempfile.mkdtemp(prefix="gpd-ctk-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        spec = None
        (root / "etc/cdi").mkdir(parents=True)
        (root / "var/log").mkdir(parents=True)
        if with_spec:
            spec = yaml.safe_load(RECORDED_SPEC.read_text())
            for edits in _all_edits(spec):
                _relocate(edits, root, bin_dir)
            (root / "etc/cdi/nvidia.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        config = root / "etc/nvidia-container-runtime/config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(_relocated_config(root))
        return ToolkitHost(root, bin_dir, spec)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
