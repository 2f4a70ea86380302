"""The daemon.json this daemon reads, parsed.

Which file (docs/failure-modes.md #18, #20, #40): `--config-file` on dockerd's command line; else
rootless `$XDG_CONFIG_HOME/docker/daemon.json` (`~/.config/docker/daemon.json`); else snap
`/var/snap/docker/current/config/daemon.json`; else `/etc/docker/daemon.json`. A file that does
not exist is normal (dockerd runs on defaults). A file that does not parse is a finding: the running
daemon was started from an older version of it, and the next restart fails.
"""

from __future__ import annotations

import errno
import json
from typing import Any, Mapping

from ..frozen import frozen
from .bounded import load_json
from .docker import DOCKER_FACT_TIMEOUT_S, DockerFacts
from .dockerd_process import DockerdProcess
from .registry import FactContext, FactMissing, fact

DEFAULT_PATH = "/etc/docker/daemon.json"
SNAP_PATH = "/var/snap/docker/current/config/daemon.json"
CONFIG_READ_LIMIT = 4 << 20

# Value types dockerd insists on for the keys that matter to GPUs (moby daemon/config/config.go).
EXPECTED_TYPES: dict[str, tuple[type, ...]] = {
    "runtimes": (dict,),
    "default-runtime": (str,),
    "features": (dict,),
    "cdi-spec-dirs": (list,),
    "exec-opts": (list,),
    "data-root": (str,),
    "userns-remap": (str,),
    "selinux-enabled": (bool,),
}


@frozen
class DaemonConfig:
    path: str | None
    path_source: str  # --config-file | rootless | snap | default | unknown
    exists: bool = False
    read_error: str | None = None  # gpudoctor cannot read it (permission, size); dockerd may
    # The path exists but is no file dockerd can read (a directory, a FIFO, a symlink loop): dockerd
    # refuses to start ("unable to configure the Docker daemon with file …"; only a missing file means
    # "defaults", moby cmd/dockerd/daemon.go loadDaemonCliConfig) — or, on a FIFO, hangs reading it.
    unusable: str | None = None
    parse_error: str | None = None  # JSON syntax error, or "not a JSON object"
    data: Mapping[str, Any] | None = None
    problems: tuple[str, ...] = ()  # wrong types of GPU-relevant keys
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.read_error is None and self.unusable is None and self.parse_error is None and not self.problems

    @property
    def runtimes(self) -> Mapping[str, Any]:
        value = (self.data or {}).get("runtimes")
        return value if isinstance(value, Mapping) else {}

    @property
    def default_runtime(self) -> str | None:
        value = (self.data or {}).get("default-runtime")
        return value if isinstance(value, str) else None

    @property
    def features(self) -> Mapping[str, Any]:
        value = (self.data or {}).get("features")
        return value if isinstance(value, Mapping) else {}

    @property
    def cdi_feature(self) -> bool | None:
        value = self.features.get("cdi")
        return value if isinstance(value, bool) else None

    @property
    def cdi_spec_dirs(self) -> tuple[str, ...] | None:
        value = (self.data or {}).get("cdi-spec-dirs")
        return tuple(str(v) for v in value) if isinstance(value, list) else None

    @property
    def cgroup_driver(self) -> str | None:
        for opt in (self.data or {}).get("exec-opts") or []:
            if isinstance(opt, str) and opt.replace(" ", "").startswith("native.cgroupdriver="):
                return opt.split("=", 1)[1].strip()
        return None


def parse_daemon_json(text: str, path: str, path_source: str) -> DaemonConfig:
    """Parse daemon.json text: syntax errors and wrong types become data."""
    if not text.strip():
        # dockerd treats an empty file as "no settings" (moby config.getConflictFreeConfiguration).
        return DaemonConfig(path, path_source, exists=True, data={})
    try:
        data = load_json(text)
    except ValueError as e:  # JSONDecodeError, ParseLimit ("nested deeper than 100 levels")
        return DaemonConfig(path, path_source, exists=True, parse_error=f"invalid JSON: {e}")
    if not isinstance(data, dict):
        return DaemonConfig(path, path_source, exists=True, parse_error=f"not a JSON object (a {type(data).__name__})")
    problems = []
    for key, types in EXPECTED_TYPES.items():
        if key in data and not isinstance(data[key], types):
            want = {dict: "an object", str: "a string", list: "a list", bool: "true or false"}[types[0]]
            problems.append(f'"{key}" must be {want}, not {json.dumps(data[key])[:60]}')
    runtimes = data.get("runtimes")
    if isinstance(runtimes, dict):
        for name, spec in runtimes.items():
            if not isinstance(spec, dict):
                problems.append(f'runtime "{name}" must be an object with a "path"')
            elif not isinstance(spec.get("path"), str) or not spec.get("path"):
                problems.append(f'runtime "{name}" has no "path"')
            elif "runtimeArgs" in spec and not isinstance(spec["runtimeArgs"], list):
                problems.append(f'runtime "{name}": "runtimeArgs" must be a list')
    features = data.get("features")
    if isinstance(features, dict):
        for name, value in features.items():
            if not isinstance(value, bool):
                problems.append(f'feature "{name}" must be true or false, not {json.dumps(value)[:40]}')
    return DaemonConfig(path, path_source, exists=True, data=data, problems=tuple(problems))


def config_path(docker: DockerFacts, proc: DockerdProcess | None) -> tuple[str | None, str]:
    if proc is not None and proc.found and proc.config_file:
        return proc.config_file, "--config-file"
    rootless = docker.rootless or (proc is not None and proc.is_rootless)
    if rootless:
        base = None
        if proc is not None and proc.xdg_config_home:
            base = proc.xdg_config_home
        elif proc is not None and proc.home:
            base = f"{proc.home}/.config"
        return (f"{base}/docker/daemon.json" if base else None), "rootless"
    if docker.is_snap or (proc is not None and proc.is_snap):
        return SNAP_PATH, "snap"
    return DEFAULT_PATH, "default"


@fact("daemon_config", timeout_s=DOCKER_FACT_TIMEOUT_S + 15)  # waits for docker and dockerd_process
def daemon_config_fact(ctx: FactContext) -> DaemonConfig:
    """The daemon.json this dockerd reads (path per install kind), parsed; errors are data."""
    docker: DockerFacts = ctx.get("docker")
    if not docker.is_local:
        return DaemonConfig(None, "unknown", note=f"the daemon is remote ({docker.endpoint}); its daemon.json is on that host")
    if docker.reachable and (docker.is_desktop or docker.is_podman):
        return DaemonConfig(None, "unknown", note="Docker Desktop / Podman keep their engine settings elsewhere")
    try:
        proc: DockerdProcess | None = ctx.get("dockerd_process")
    except FactMissing:
        proc = None
    path, source = config_path(docker, proc)
    if path is None:
        return DaemonConfig(None, source, note="rootless daemon whose HOME could not be read")
    try:
        text = ctx.host.read_text(path, limit=CONFIG_READ_LIMIT)
    except FileNotFoundError:  # replays raise it too: OSError(ENOENT, …) constructs a FileNotFoundError
        return DaemonConfig(path, source, exists=False)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM, errno.EFBIG):  # ours to lack, not dockerd's (it runs as root)
            return DaemonConfig(path, source, exists=True, read_error=f"{path}: {e.strerror or e}")
        return DaemonConfig(path, source, exists=True, unusable=f"{path}: {e.strerror or e}")
    return parse_daemon_json(text, path, source)
