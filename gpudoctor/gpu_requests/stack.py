"""What this host's container stack is, in the terms the behaviour model needs: the engine's version and CDI
setting, which NVIDIA hooks dockerd found on its PATH when it started, the runtimes it knows and whether their
binaries exist, the toolkit's mode and the component versions that decide the legacy path, and the CDI names
the daemon and the runtime can resolve. Built from gathered facts; pure.
"""

from __future__ import annotations

import re
from typing import Any

from ..frozen import frozen

RUNC_NAMES = ("runc", "io.containerd.runc.v2")
# The toolkit's modes in which nvidia-container-runtime-hook refuses to run (toolkit cmd/nvidia-container-runtime-hook
# hook_config.go assertModeIsLegacy).
HOOK_REFUSING_MODES = ("cdi", "jit-cdi", "csv")
# dockerd registers its NVIDIA driver at start if a hook is on its own PATH (moby daemon/nvidia_linux.go init;
# 29.2+ also nvidia-cdi-hook, moby 86f122af27). A binary changed after the start came too late; /proc's start time
# is whole seconds, so allow that much.
START_SLACK_S = 1.5
GPUS_VIA_CDI_FROM = (29, 2)
CDI_FROM = (25,)
CDI_DEFAULT_ON_FROM = (28, 2)
# nvidia-container-cli learned --cuda-compat-mode in 1.18; the 1.18+ hook passes it unless the config empties it.
CUDA_COMPAT_FLAG_FROM = (1, 18)


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    """"20.10.24+dfsg1" → (20, 10, 24); "1.41" → (1, 41); junk → None."""
    if not text:
        return None
    m = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


@frozen
class StackState:
    engine: tuple[int, ...] | None  # None: no daemon answered
    engine_text: str | None = None
    cdi_enabled: bool = False
    legacy_hook_at_start: bool | None = None  # None: dockerd's PATH could not be read
    cdi_hook_at_start: bool | None = None
    runtimes: tuple[tuple[str, bool | None], ...] = ()  # (name, binary exists; None unknown)
    default_runtime: str = "runc"
    toolkit_installed: bool = False
    mode: str = "auto"
    hook_version: tuple[int, ...] | None = None
    cli_version: tuple[int, ...] | None = None
    cuda_compat_mode: str = "ldconfig"
    ldconfig_missing: str | None = None  # config.toml's ldconfig binary, when it is not there
    daemon_cdi_names: frozenset[str] = frozenset()  # fully qualified, e.g. nvidia.com/gpu=0
    runtime_cdi_names: frozenset[str] = frozenset()
    any_cdi_spec: bool = False
    spec_missing_paths: tuple[str, ...] = ()  # host paths an NVIDIA spec names that do not exist

    def runtime(self, name: str) -> tuple[str, bool | None] | None:
        return next((r for r in self.runtimes if r[0] == name), None)

    @property
    def gpus_via_cdi(self) -> bool:
        """Docker serves `--gpus` through CDI (for names its specs resolve) when it found nvidia-cdi-hook at start."""
        return bool(self.engine and self.engine >= GPUS_VIA_CDI_FROM and self.cdi_enabled and self.cdi_hook_at_start)

    @property
    def cli_skew(self) -> bool:
        """The legacy path's hook passes a flag this nvidia-container-cli rejects (real stack: 1.20 hook, 1.17 cli)."""
        return bool(
            self.hook_version and self.cli_version and self.hook_version[:2] >= CUDA_COMPAT_FLAG_FROM
            and self.cli_version[:2] < CUDA_COMPAT_FLAG_FROM and self.cuda_compat_mode != ""
        )

    @property
    def runtime_mode(self) -> str:
        """The mode the NVIDIA runtime acts in: `auto` resolves to legacy on a host like these (not Tegra/CSV;
        real stack: "Auto-detected mode as 'legacy'")."""
        return "legacy" if self.mode == "auto" else self.mode

    @property
    def spec_in_use(self) -> bool:
        """Something reads the NVIDIA CDI spec: dockerd's CDI (25+ with CDI on) or the runtime in cdi mode."""
        return bool((self.engine and self.engine >= CDI_FROM and self.cdi_enabled) or self.mode == "cdi")


def _hook_at_start(proc: Any, toolkit: Any, name: str) -> bool | None:
    """Whether dockerd found the hook on its PATH at start; when its PATH cannot be read, whether the hook is
    installed at all (what a daemon started with the usual PATH finds); None when neither is known."""
    if proc is None or not getattr(proc, "found", False) or not getattr(proc, "environ_readable", False):
        return toolkit.has(name) if toolkit is not None else None
    start = getattr(proc, "start_time", None)
    for h in getattr(proc, "hooks", ()):
        if h.name == name and h.path:
            return start is None or h.changed_at is None or h.changed_at <= start + START_SLACK_S
    return False


def _run_dir(path: str) -> str:
    # /var/run is a symlink to /run on most hosts; a daemon may report either (internals §2.1).
    return path.rstrip("/").replace("/var/run/", "/run/")


def in_spec_dirs(spec_path: str, dirs: Any) -> bool:
    """Is this CDI spec file in one of the directories an engine scans (`CDISpecDirs`, Podman's defaults)?"""
    return _run_dir(spec_path.rsplit("/", 1)[0]) in {_run_dir(d) for d in dirs}


def _nvidia_names(specs: Any, dirs: tuple[str, ...] | None) -> tuple[frozenset[str], tuple[str, ...], bool]:
    names: set[str] = set()
    missing: list[str] = []
    any_spec = False
    for s in specs:
        if s.error:
            continue
        if dirs and not in_spec_dirs(s.path, dirs):
            continue
        any_spec = True
        if s.kind != "nvidia.com/gpu":
            continue
        names.update(f"{s.kind}={d.name}" for d in s.devices)
        missing.extend(p for p in s.missing if p not in missing)
    return frozenset(names), tuple(missing), any_spec


def stack_from_facts(docker: Any, dockerd_process: Any = None, toolkit: Any = None, cdi: Any = None) -> StackState:
    """StackState from the gathered facts (DockerFacts, DockerdProcess, ToolkitFacts, CdiFacts)."""
    if docker is None or not getattr(docker, "reachable", False):
        return StackState(engine=None)
    paths = getattr(dockerd_process, "runtime_paths", {}) or {}
    runtimes = []
    for rt in docker.runtimes:
        exists: bool | None = (bool(paths[rt.name]) if rt.name in paths else None)
        runtimes.append((rt.name, exists))
    installed = bool(toolkit is not None and toolkit.installed)
    hook_v = cli_v = None
    mode, compat, ldconfig_missing = "auto", "ldconfig", None
    toolkit_dirs: tuple[str, ...] = ("/etc/cdi", "/var/run/cdi")
    if toolkit is not None:
        versions = toolkit.versions
        hook_v = version_tuple(versions.get("nvidia-container-runtime-hook") or versions.get("nvidia-ctk"))
        cli_v = version_tuple(versions.get("nvidia-container-cli"))
        mode = toolkit.mode
        legacy = toolkit.config.get("nvidia-container-runtime", {})
        legacy = legacy.get("modes", {}) if isinstance(legacy, dict) else {}
        legacy = legacy.get("legacy", {}) if isinstance(legacy, dict) else {}
        value = legacy.get("cuda-compat-mode", "ldconfig") if isinstance(legacy, dict) else "ldconfig"
        compat = value if isinstance(value, str) else "ldconfig"
        if toolkit.ldconfig and toolkit.ldconfig_exists is False:
            ldconfig_missing = toolkit.ldconfig.lstrip("@")
        toolkit_dirs = toolkit.cdi_spec_dirs
    specs = getattr(cdi, "specs", ()) if cdi is not None else ()
    daemon_dirs = tuple(docker.cdi_spec_dirs) if docker.cdi_spec_dirs else ("/etc/cdi", "/var/run/cdi")
    daemon_names, missing, any_spec = _nvidia_names(specs, daemon_dirs)
    if docker.discovered_devices is not None:  # the daemon's own word (28.2+) beats our reading of the files
        daemon_names = frozenset(d for d in docker.discovered_devices if d.startswith("nvidia.com/gpu="))
    runtime_names, runtime_missing, _ = _nvidia_names(specs, toolkit_dirs)
    return StackState(
        engine=docker.version_tuple,
        engine_text=docker.server_version,
        cdi_enabled=bool(docker.cdi_enabled),
        legacy_hook_at_start=_hook_at_start(dockerd_process, toolkit, "nvidia-container-runtime-hook"),
        cdi_hook_at_start=_hook_at_start(dockerd_process, toolkit, "nvidia-cdi-hook"),
        runtimes=tuple(runtimes),
        default_runtime=docker.default_runtime or "runc",
        toolkit_installed=installed,
        mode=mode,
        hook_version=hook_v,
        cli_version=cli_v,
        cuda_compat_mode=compat,
        ldconfig_missing=ldconfig_missing,
        daemon_cdi_names=daemon_names,
        runtime_cdi_names=runtime_names,
        any_cdi_spec=any_spec,
        spec_missing_paths=tuple(dict.fromkeys(missing + runtime_missing)),
    )
