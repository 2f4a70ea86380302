"""Installs the SIMULATED NVIDIA Container Toolkit (and the driver's userspace) into a host tree.

Only the test bed calls this; gpudoctor never installs anything. What lands under `<root>`:

* `usr/bin/{nvidia-ctk, nvidia-container-runtime, nvidia-container-runtime-hook,
  nvidia-container-cli, nvidia-cdi-hook}` — thin Python launchers into `tests/sim/standin.py`,
  each with the marker `GPUDOCTOR-SIMULATED-NVIDIA-TOOLKIT` and a comment saying what they are;
* `etc/nvidia-container-runtime/config.toml` — the real toolkit's default file (as captured on the
  H100 host, tests/fixtures/real-h100-docker20-toolkit-cdi/config.toml) with the chosen `mode`;
* `etc/cdi/nvidia.yaml` (optional) — a CDI spec generated from the host description the way
  `nvidia-ctk cdi generate` lays it out: index names (default), optionally UUID names too, or
  "stale": written for an older driver (its library paths and `--host-driver-version` no longer
  exist on the host);
* `sbin/ldconfig.real` — what config.toml's `ldconfig = "@/sbin/ldconfig.real"` points at.

`install_driver_userspace` adds the driver's files: `usr/bin/nvidia-smi` (the stand-in of
`tests/sim/smi.py`), `usr/lib/x86_64-linux-gnu/lib{cuda,nvidia-ml}.so.<version>` (+ `.so.1` links).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tests.sim import smi
from tests.sim.host import NVIDIA_MAJOR, NVIDIACTL_MINOR, SimHost
from tests.sim.standin import CONFIG_TOML, HOOK_NAME, INJECTED, LIB_DIR, MARKER, SIM_DIR
from tests.support.dpkg import write_toolkit_packages

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLKIT_BINARIES = (
    "nvidia-ctk",
    "nvidia-container-runtime",
    "nvidia-container-runtime-hook",
    "nvidia-container-cli",
    "nvidia-cdi-hook",
)
MODES = ("legacy", "cdi", "auto", "jit-cdi")
CDI_NAMES = ("index", "uuid")

# The captured real config.toml (toolkit default, Ubuntu), with {mode} substituted.
CONFIG_TOML_TEMPLATE = """\
#accept-nvidia-visible-devices-as-volume-mounts = false
#accept-nvidia-visible-devices-envvar-when-unprivileged = true
disable-require = false
supported-driver-capabilities = "compat32,compute,display,graphics,ngx,utility,video"
#swarm-resource = "DOCKER_RESOURCE_GPU"

[nvidia-container-cli]
#debug = "/var/log/nvidia-container-toolkit.log"
environment = []
#ldcache = "/etc/ld.so.cache"
ldconfig = "@/sbin/ldconfig.real"
load-kmods = true
#no-cgroups = false
#path = "/usr/bin/nvidia-container-cli"
#root = "/run/nvidia/driver"
#user = "root:video"

[nvidia-container-runtime]
#debug = "/var/log/nvidia-container-runtime.log"
log-level = "info"
mode = "{mode}"
runtimes = ["runc", "crun"]

[nvidia-container-runtime.modes]

[nvidia-container-runtime.modes.cdi]
annotation-prefixes = ["cdi.k8s.io/"]
default-kind = "nvidia.com/gpu"
spec-dirs = ["/etc/cdi", "/var/run/cdi"]

[nvidia-container-runtime.modes.csv]
mount-spec-path = "/etc/nvidia-container-runtime/host-files-for-container.d"

[nvidia-container-runtime.modes.legacy]
cuda-compat-mode = "ldconfig"

[nvidia-container-runtime-hook]
path = "nvidia-container-runtime-hook"
skip-mode-detection = false

[nvidia-ctk]
path = "nvidia-ctk"
"""


@dataclass(frozen=True)
class ToolkitSpec:
    """Which stand-in toolkit a simulated host has.

    mode:      config.toml `nvidia-container-runtime.mode` (legacy, cdi, auto, jit-cdi)
    version:   what the stand-ins report (`auto` means jit-cdi from 1.18.0, legacy before)
    cdi:       None (no spec), "index" (nvidia-ctk's default names), "index+uuid", or "stale"
               (index names, generated for `stale_driver`)
    cdi_host:  generate the spec for this layout instead of the host's (e.g. before a GPU was
               added: `host.without_gpu(3)`) — a spec that no longer matches the devices
    binaries:  which binaries exist (all by default; drop one to simulate a partial install)
    """

    mode: str = "legacy"
    version: str = "1.17.8"
    cdi: str | None = None
    stale_driver: str = "570.133.20"
    cdi_host: SimHost | None = None
    binaries: tuple[str, ...] = TOOLKIT_BINARIES

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.cdi not in (None, "index", "index+uuid", "stale"):
            raise ValueError(f"unknown cdi variant {self.cdi!r}")


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def find_real_runc(exclude: Sequence[str | Path] = ()) -> str:
    skip = {os.path.realpath(p) for p in exclude}
    for d in (os.environ.get("PATH") or "").split(os.pathsep) + ["/usr/sbin", "/usr/bin", "/usr/local/sbin"]:
        if not d or os.path.realpath(d) in skip:
            continue
        cand = os.path.join(d, "runc")
        if os.access(cand, os.X_OK) and MARKER not in _head(cand):
            return os.path.realpath(cand)
    raise FileNotFoundError("no runc binary found (install Debian's runc / docker.io)")


def _head(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(400).decode("latin-1")
    except OSError:
        return ""


def write_sim_meta(root: Path, host: SimHost, version: str, real_runc: str) -> None:
    """The bookkeeping the stand-ins read (not a file of the simulated host)."""
    host.save(root / SIM_DIR / "host.json")
    _write(root / SIM_DIR / "standin.json", json.dumps({"version": version, "real_runc": real_runc}) + "\n")
    _write(
        root / SIM_DIR / "README",
        "This directory belongs to gpudoctor's test bed (tests/sim): the simulated host's description and\n"
        "the stand-in toolkit's settings. It is not part of the simulated host.\n",
    )


def _yaml_dir() -> str:
    import yaml

    return str(Path(yaml.__file__).resolve().parent.parent)


def launcher(name: str) -> str:
    # -I -S: no site (.pth files cost ~30 ms per container start); PyYAML's dir is appended by hand.
    return (
        f"#!{sys.executable} -IS\n"
        f"# {MARKER}\n"
        f"# {name}: STAND-IN written by gpudoctor's test bed (tests/sim/toolkit.py). Not NVIDIA software.\n"
        "import sys, types\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        f"sys.path.append({_yaml_dir()!r})\n"
        # Bind `tests` to this repo's folder: a `tests` package elsewhere on sys.path must not win.
        "sys.modules.setdefault('tests', types.ModuleType('tests')).__path__ = "
        f"[{str(REPO_ROOT / 'tests')!r}]\n"
        "from tests.sim import standin\n"
        f"sys.exit(standin.main(__file__, {name!r}, sys.argv[1:]))\n"
    )


def runtime_fast_path(python_side: Path, real_runc: str) -> str:
    return f"""#!/bin/sh
# {MARKER}
# nvidia-container-runtime: STAND-IN written by gpudoctor's test bed (tests/sim/toolkit.py). Not NVIDIA software.
case "$1" in --version|-v) exec {python_side} "$@" ;; esac
for a in "$@"; do
  case "$a" in create|run) exec {python_side} "$@" ;; esac
done
exec {real_runc} "$@"
"""


def hook_fast_path(python_side: Path) -> str:
    """The hook's launcher. A prestart whose effect was applied already ends in sh: the runc shim and the runtime
    stand-in apply it only where this hook would succeed (standin.runc_shim_main, edit_for_runtime) and mark the
    spec with the INJECTED annotation, which runc hands the hook in its state, and the real hook's success shows
    nothing but that effect. Each `--gpus` container was paying a second Python start here (about 140 ms of CPU on a 2-core CI machine, where the real Go hook and
    nvidia-container-cli add about 70 ms to a container start on the H200): the simulation's own cost, which the
    speed benchmark's 2-core figures measured as much as gpudoctor's. A failure to report, `--version` and the
    rest still go to the Python side."""
    return f"""#!/bin/sh
# {MARKER}
# {HOOK_NAME}: STAND-IN written by gpudoctor's test bed (tests/sim/toolkit.py). Not NVIDIA software.
if [ "$1" = prestart ]; then
  state=$(cat)
  # runc passes the spec's annotations in the state it gives a hook (checked with Debian's runc and Docker 29's).
  case "$state" in *'"{INJECTED}"'*) exit 0 ;; esac
  printf '%s' "$state" | {python_side} "$@"
  exit $?
fi
exec {python_side} "$@"
"""


def install_driver_userspace(root: Path, host: SimHost) -> None:
    """nvidia-smi stand-in and (empty, marked) driver libraries, as a driver package installs them."""
    _write(root / "usr/bin/nvidia-smi", smi.render(host), 0o755)
    lib = root / LIB_DIR.lstrip("/")
    bases = ["libcuda.so"] + ([] if host.nvml_init_error in (12, 18) else ["libnvidia-ml.so"])  # hosttree decides those
    for base in bases:
        real = lib / f"{base}.{host.driver_version}"
        _write(real, f"{MARKER}: placeholder for {base}.{host.driver_version} (simulated driver)\n")
        link = lib / f"{base}.1"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(real.name)


def install_toolkit(root: Path, host: SimHost, spec: ToolkitSpec, real_runc: str) -> None:
    write_sim_meta(root, host, spec.version, real_runc)
    # A program runc calls on every container gets a sh launcher that starts Python only where there is work.
    # The runtime: runc calls it for create, start, state, kill and delete, and only create/run edit the spec, so
    # the rest go straight to runc (as fast as the real Go binary, which the probe-matrix benchmark measures).
    fast_paths = {"nvidia-container-runtime": lambda side: runtime_fast_path(side, real_runc), HOOK_NAME: hook_fast_path}
    for name in spec.binaries:
        if name in fast_paths:
            python_side = _write(root / ".sim/launchers" / name, launcher(name), 0o755)
            _write(root / "usr/bin" / name, fast_paths[name](python_side), 0o755)
        else:
            _write(root / "usr/bin" / name, launcher(name), 0o755)
    # The packages that installed them: gpudoctor reads a --root tree's toolkit versions from its
    # dpkg database, never by running the tree's binaries.
    write_toolkit_packages(root, {name: spec.version for name in spec.binaries})
    write_config_toml(root, spec.mode)
    _write(root / "sbin/ldconfig.real", f"#!/bin/sh\n# {MARKER}: stand-in for the host's ldconfig\nexit 0\n", 0o755)
    if spec.cdi:
        write_cdi_spec(
            root,
            spec.cdi_host or host,
            names=("index", "uuid") if spec.cdi == "index+uuid" else ("index",),
            driver_version=spec.stale_driver if spec.cdi == "stale" else None,
        )


def uninstall_toolkit(root: Path) -> None:
    for name in TOOLKIT_BINARIES:
        (root / "usr/bin" / name).unlink(missing_ok=True)
    write_toolkit_packages(root, {})
    shutil.rmtree(root / "etc/nvidia-container-runtime", ignore_errors=True)


def write_config_toml(root: Path, mode: str) -> Path:
    return _write(root / CONFIG_TOML, CONFIG_TOML_TEMPLATE.format(mode=mode))


def _node(path: str, major: int, minor: int) -> dict[str, Any]:
    node: dict[str, Any] = {"path": path, "major": major}
    if minor:
        node["minor"] = minor  # nvidia-ctk omits a zero minor (omitempty), as in the real spec
    node.update({"fileMode": 438, "permissions": "rwm"})
    return node


def cdi_spec(host: SimHost, names: Sequence[str] = ("index",), driver_version: str | None = None) -> dict[str, Any]:
    """The CDI spec `nvidia-ctk cdi generate` writes for this host (layout of the real H100 spec,
    tests/fixtures/real-h100-docker20-toolkit-cdi/cdi-nvidia.yaml), trimmed to the parts that matter:
    device nodes per GPU/MIG device, the control nodes, driver library and nvidia-smi mounts, hooks."""
    ver = driver_version or host.driver_version
    devices: list[dict[str, Any]] = []
    all_nodes: list[dict[str, Any]] = []
    for g in host.gpus:
        edits = {"deviceNodes": [_node(g.dev_node, NVIDIA_MAJOR, g.minor)]}
        all_nodes.extend(edits["deviceNodes"])
        if "index" in names:
            devices.append({"name": str(g.index), "containerEdits": edits})
        if "uuid" in names:
            devices.append({"name": g.uuid, "containerEdits": edits})
        for m in g.migs:
            mig_nodes = [_node(g.dev_node, NVIDIA_MAJOR, g.minor)] + [
                _node(f"/dev/nvidia-caps/nvidia-cap{c}", host.caps_major, c) for c in (m.gi_cap_minor, m.ci_cap_minor)
            ]
            if "index" in names:
                devices.append({"name": f"{g.index}:{m.index}", "containerEdits": {"deviceNodes": mig_nodes}})
            if "uuid" in names:
                devices.append({"name": m.uuid, "containerEdits": {"deviceNodes": mig_nodes}})
    devices.append({"name": "all", "containerEdits": {"deviceNodes": all_nodes}})
    control = [_node("/dev/nvidiactl", NVIDIA_MAJOR, NVIDIACTL_MINOR)]
    if host.uvm_nodes:
        control = [_node("/dev/nvidia-uvm", host.uvm_major, 0), _node("/dev/nvidia-uvm-tools", host.uvm_major, 1)] + control
    mount_opts = ["ro", "nosuid", "nodev", "rbind", "rprivate"]
    libs = [f"{LIB_DIR}/libcuda.so.{ver}", f"{LIB_DIR}/libnvidia-ml.so.{ver}"]
    hook = "/usr/bin/nvidia-cdi-hook"
    return {
        "cdiVersion": "0.5.0",
        "kind": "nvidia.com/gpu",
        "devices": devices,
        "containerEdits": {
            "env": [f"NVIDIA_CTK_LIBCUDA_DIR={LIB_DIR}", "NVIDIA_VISIBLE_DEVICES=void"],
            "deviceNodes": control,
            "hooks": [
                {
                    "hookName": "createContainer",
                    "path": hook,
                    "args": ["nvidia-cdi-hook", "create-symlinks", "--link", f"libcuda.so.1::{LIB_DIR}/libcuda.so"],
                    "env": ["NVIDIA_CTK_DEBUG=false"],
                },
                {
                    "hookName": "createContainer",
                    "path": hook,
                    "args": ["nvidia-cdi-hook", "enable-cuda-compat", f"--host-driver-version={ver}"],
                    "env": ["NVIDIA_CTK_DEBUG=false"],
                },
                {
                    "hookName": "createContainer",
                    "path": hook,
                    "args": ["nvidia-cdi-hook", "update-ldcache", "--folder", LIB_DIR],
                    "env": ["NVIDIA_CTK_DEBUG=false"],
                },
            ],
            "mounts": [
                {"hostPath": p, "containerPath": p, "options": mount_opts}
                for p in [*libs, "/usr/bin/nvidia-smi"]
            ],
        },
    }


def write_cdi_spec(
    root: Path,
    host: SimHost,
    names: Sequence[str] = ("index",),
    driver_version: str | None = None,
    path: str = "/etc/cdi/nvidia.yaml",
) -> Path:
    import yaml

    body = yaml.safe_dump(cdi_spec(host, names, driver_version), sort_keys=False, default_flow_style=False)
    return _write(root / path.lstrip("/"), "---\n" + body)


def write_runc_shim(shim_dir: Path, real_runc: str) -> Path:
    """The `runc` that the bed puts first on the private dockerd's PATH (see standin.runc_shim_main).

    POSIX sh so that every runc call that is not a container create costs nothing: only `create`/`run`
    of a spec that names nvidia-container-runtime-hook goes through Python."""
    text = f"""#!/bin/sh
# {MARKER}
# runc SHIM written by gpudoctor's test bed (tests/sim/toolkit.py): applies the simulated
# nvidia-container-runtime-hook's effect (device nodes + cgroup rules) to --gpus containers, then
# runs the real runc. Not part of any real host.
bundle=""; sub=""; prev=""
for a in "$@"; do
  case "$prev" in --bundle|-b) bundle="$a" ;; esac
  case "$a" in create|run) [ -z "$sub" ] && sub="$a" ;; --bundle=*) bundle="${{a#--bundle=}}" ;; esac
  prev="$a"
done
if [ -n "$sub" ] && grep -q nvidia-container-runtime-hook "${{bundle:-.}}/config.json" 2>/dev/null; then
  exec {sys.executable} -I -S -c 'import sys, types; sys.path.insert(0, {json.dumps(str(REPO_ROOT))}); sys.path.append({json.dumps(_yaml_dir())}); sys.modules.setdefault("tests", types.ModuleType("tests")).__path__ = [{json.dumps(str(REPO_ROOT / "tests"))}]; from tests.sim import standin; sys.exit(standin.runc_shim_main({json.dumps(real_runc)}, sys.argv[1:]))' "$@"
fi
exec {real_runc} "$@"
"""
    return _write(shim_dir / "runc", text, 0o755)
