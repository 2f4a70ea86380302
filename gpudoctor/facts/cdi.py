"""CDI specs on this host: every file in the spec dirs parsed (YAML and JSON), with what it names.

Spec dirs (docs/docker-gpu-internals.md §2.1): `/etc/cdi` and `/var/run/cdi` by default, plus those
the daemon reports in `CDISpecDirs` and those in the toolkit's `modes.cdi.spec-dirs`. A spec is a
snapshot of host paths (versioned `.so` names, device nodes, MIG UUIDs): the fact keeps the paths it
references and which of them are missing, and the driver versions it was generated for, so checks
can call it stale (failure-modes #27).
"""

from __future__ import annotations

import errno
import re
from dataclasses import field, replace
from typing import Any, Mapping

from ..frozen import frozen
from . import yaml_process
from .bounded import load_json, load_yaml
from .cdi_dirs import DEFAULT_DIRS
from .docker import DOCKER_FACT_TIMEOUT_S
from .registry import FactContext, FactMissing, fact

# The spec versions the CDI library accepts: tags.cncf.io/container-device-interface specs-go/version.go
# validSpecVersions (v0.1.0 … v0.8.0, CurrentVersion 0.8.0); ValidateVersion fails any other with
# `invalid version "<v>"`, and a leading "v" is allowed (newVersion trims it).
SPEC_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0")
SPEC_READ_LIMIT = 8 << 20  # a big MIG host's spec is a few hundred KiB
MAX_PATHS_CHECKED = 2000
_KIND_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9.-]*/[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_DRIVER_VERSION_RE = re.compile(r"\.so\.(\d{3}\.\d+(?:\.\d+)?)$")
_HOST_DRIVER_ARG_RE = re.compile(r"^--host-driver-version=(\S+)$")


@frozen
class CdiDevice:
    name: str
    device_nodes: tuple[str, ...] = ()


@frozen
class CdiSpec:
    path: str
    format: str  # yaml | json
    error: str | None = None
    cdi_version: str | None = None
    kind: str | None = None
    devices: tuple[CdiDevice, ...] = ()
    device_nodes: tuple[str, ...] = ()  # every deviceNodes path (spec-wide and per device)
    node_host_paths: tuple[str, ...] = ()  # the host side of every device node (hostPath, else path)
    host_paths: tuple[str, ...] = ()  # mounts' hostPath
    hook_paths: tuple[str, ...] = ()
    driver_versions: tuple[str, ...] = ()  # from libfoo.so.<version> and --host-driver-version=
    missing: tuple[str, ...] = ()  # referenced host paths that do not exist here
    unknown_keys: tuple[str, ...] = ()
    mtime: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def is_nvidia_gpu(self) -> bool:
        return self.kind == "nvidia.com/gpu"

    @property
    def device_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.devices)

    @property
    def qualified_names(self) -> tuple[str, ...]:
        return tuple(f"{self.kind}={d.name}" for d in self.devices) if self.kind else ()


@frozen
class CdiFacts:
    dirs: tuple[str, ...]
    specs: tuple[CdiSpec, ...]
    dir_errors: Mapping[str, str] = field(default_factory=dict)  # dir → why unreadable (not "missing")
    missing_dirs: tuple[str, ...] = ()

    @property
    def nvidia_specs(self) -> tuple[CdiSpec, ...]:
        return tuple(s for s in self.specs if s.ok and s.is_nvidia_gpu)

    @property
    def bad_specs(self) -> tuple[CdiSpec, ...]:
        return tuple(s for s in self.specs if not s.ok)

    @property
    def nvidia_device_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for s in self.nvidia_specs for n in s.device_names))


_TOP_KEYS = {"cdiVersion", "kind", "devices", "containerEdits", "annotations"}
_EDIT_KEYS = {"env", "deviceNodes", "hooks", "mounts", "intelRdt", "additionalGids", "netDevices"}


def _type_error(where: str, want: str, got: Any) -> str:
    return f"{where} must be {want}, not {type(got).__name__}"


def _edits(edits: Any, where: str, nodes: list[str], mounts: list[str], hooks: list[str], args: list[str],
           node_hosts: list[str] | None = None) -> str | None:
    if edits is None:
        return None
    if not isinstance(edits, Mapping):
        return _type_error(where, "a mapping", edits)
    for key, target, field_name in (("deviceNodes", nodes, "path"), ("mounts", mounts, "hostPath"), ("hooks", hooks, "path")):
        items = edits.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            return _type_error(f"{where}.{key}", "a list", items)
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                return _type_error(f"{where}.{key}[{i}]", "a mapping", item)
            value = item.get(field_name)
            if key == "deviceNodes" and value is None:
                return f"{where}.{key}[{i}] has no path"
            if value is not None and not isinstance(value, str):
                return _type_error(f"{where}.{key}[{i}].{field_name}", "a string", value)
            if value:
                target.append(value)
            if key == "deviceNodes" and node_hosts is not None and value is not None:  # (None returned above)
                # A node's host side is its hostPath when given (driver containers: /run/nvidia/driver/dev/…), else
                # its path (CDI spec: deviceNodes[].hostPath); only the host side must exist here.
                host = item.get("hostPath")
                node_hosts.append(host if isinstance(host, str) and host else value)
            if key == "hooks" and item.get("args") is not None:
                hook_args = item["args"]
                if not isinstance(hook_args, list) or not all(isinstance(a, str) for a in hook_args):
                    return _type_error(f"{where}.{key}[{i}].args", "a list of strings", hook_args)
                args.extend(hook_args)
    env = edits.get("env")
    if env is not None and not (isinstance(env, list) and all(isinstance(e, str) for e in env)):
        return _type_error(f"{where}.env", "a list of strings", env)
    return None


def parse_spec(text: str, path: str) -> CdiSpec:
    """Parse one spec file's text. Errors (syntax, wrong types, missing fields, an unknown cdiVersion)
    become `error`; nesting and YAML aliases are bounded (gpudoctor/facts/bounded.py)."""
    fmt = "json" if path.endswith(".json") else "yaml"
    try:
        if fmt == "json":
            data = load_json(text)
        else:
            by_worker, data = yaml_process.load(text)  # the early worker's, where one runs (facts/yaml_process.py)
            if not by_worker:
                data = load_yaml(text)
    except Exception as e:  # yaml.YAMLError, ValueError, ParseLimit (too deep, an alias bomb)
        first = str(e).strip().splitlines()
        return CdiSpec(path, fmt, error=f"invalid {fmt.upper()}: {' '.join(first[:4])[:300]}")
    if not isinstance(data, Mapping):
        return CdiSpec(path, fmt, error=f"not a CDI spec: top level is {type(data).__name__}, not a mapping")
    version, kind, devices = data.get("cdiVersion"), data.get("kind"), data.get("devices")
    if not isinstance(version, str) or not version:
        return CdiSpec(path, fmt, error='missing or non-string "cdiVersion"', kind=kind if isinstance(kind, str) else None)
    if version.removeprefix("v") not in SPEC_VERSIONS:
        return CdiSpec(
            path, fmt, cdi_version=version, kind=kind if isinstance(kind, str) else None,
            error=f'cdiVersion "{version[:40]}" is not a CDI spec version (known: {", ".join(SPEC_VERSIONS)}): '
            f'the CDI registry refuses the spec ("invalid version")',
        )
    if not isinstance(kind, str) or not _KIND_RE.match(kind):
        return CdiSpec(path, fmt, error=f'"kind" must look like vendor.com/class, got {kind!r}'[:200], cdi_version=version)
    if not isinstance(devices, list) or not devices:
        return CdiSpec(path, fmt, error='"devices" must be a non-empty list', cdi_version=version, kind=kind)
    nodes: list[str] = []
    node_hosts: list[str] = []
    mounts: list[str] = []
    hooks: list[str] = []
    args: list[str] = []
    parsed = []
    seen = set()
    for i, dev in enumerate(devices):
        if not isinstance(dev, Mapping):
            return CdiSpec(path, fmt, error=_type_error(f"devices[{i}]", "a mapping", dev), cdi_version=version, kind=kind)
        name = dev.get("name")
        if isinstance(name, int) and not isinstance(name, bool):
            name = str(name)  # YAML `name: 0` unquoted: the CDI library would reject it; be lenient, note below
        if not isinstance(name, str) or not name:
            return CdiSpec(path, fmt, error=f"devices[{i}] has no string name", cdi_version=version, kind=kind)
        if name in seen:
            return CdiSpec(path, fmt, error=f'device "{name}" is defined twice', cdi_version=version, kind=kind)
        seen.add(name)
        dev_nodes: list[str] = []
        err = _edits(dev.get("containerEdits"), f"devices[{i}].containerEdits", dev_nodes, mounts, hooks, args,
                     node_hosts)
        if err:
            return CdiSpec(path, fmt, error=err, cdi_version=version, kind=kind)
        nodes.extend(dev_nodes)
        parsed.append(CdiDevice(name, tuple(dev_nodes)))
    err = _edits(data.get("containerEdits"), "containerEdits", nodes, mounts, hooks, args, node_hosts)
    if err:
        return CdiSpec(path, fmt, error=err, cdi_version=version, kind=kind)
    versions = {m.group(1) for p in mounts if (m := _DRIVER_VERSION_RE.search(p))}
    versions |= {m.group(1) for a in args if (m := _HOST_DRIVER_ARG_RE.match(a))}
    versions |= {m.group(1) for a in args if (m := re.search(r"\.so\.(\d{3}\.\d+(?:\.\d+)?)::", a))}
    unknown = tuple(sorted(str(k) for k in data if k not in _TOP_KEYS))
    return CdiSpec(
        path,
        fmt,
        cdi_version=version,
        kind=kind,
        devices=tuple(parsed),
        device_nodes=tuple(dict.fromkeys(nodes)),
        node_host_paths=tuple(dict.fromkeys(node_hosts)),
        host_paths=tuple(dict.fromkeys(mounts)),
        hook_paths=tuple(dict.fromkeys(hooks)),
        driver_versions=tuple(sorted(versions)),
        unknown_keys=unknown,
    )


def _more_dirs(ctx: FactContext) -> tuple[str, ...]:
    """The daemon's and the toolkit's spec dirs that are not DEFAULT_DIRS (waits for those two facts)."""
    dirs = list(DEFAULT_DIRS)
    for name, attr in (("docker", "cdi_spec_dirs"), ("toolkit", "cdi_spec_dirs")):
        try:
            value = getattr(ctx.get(name), attr, None)
        except FactMissing:
            continue
        for d in value or ():
            if d and d not in dirs:
                dirs.append(d)
    return tuple(dirs[len(DEFAULT_DIRS):])


def _is_real_dir(ctx: FactContext, path: str) -> bool:
    try:
        return ctx.host.stat(path, follow=False).kind == "dir"
    except OSError:
        return False


@fact("cdi", timeout_s=DOCKER_FACT_TIMEOUT_S + 15)  # waits for docker and toolkit
def cdi_fact(ctx: FactContext) -> CdiFacts:
    """CDI specs in /etc/cdi, /var/run/cdi and the daemon's/toolkit's spec dirs, parsed and checked against the host."""
    specs: list[CdiSpec] = []
    errors: dict[str, str] = {}
    missing_dirs: list[str] = []
    seen_files: set[str] = set()

    def scan(d: str) -> None:
        try:
            names = ctx.host.list_dir(d)
        except OSError as e:
            if e.errno == errno.ENOENT:
                missing_dirs.append(d)
            else:
                errors[d] = e.strerror or str(e)
            return
        for name in names:
            if not name.endswith((".yaml", ".yml", ".json")):
                continue
            path = f"{d.rstrip('/')}/{name}"
            if path in seen_files:
                continue
            seen_files.add(path)
            fmt = "json" if name.endswith(".json") else "yaml"
            try:
                text = ctx.host.read_text(path, limit=SPEC_READ_LIMIT)
            except OSError as e:
                if e.errno == errno.EISDIR and _is_real_dir(ctx, path):
                    continue  # the CDI library's scan (filepath.Walk, pkg/cdi/spec-dirs.go) skips sub-directories
                specs.append(CdiSpec(path, fmt, error=f"cannot read: {e.strerror or e}"))
                continue
            spec = parse_spec(text, path)
            try:
                mtime = ctx.host.stat(path).mtime
            except OSError:
                mtime = None
            missing: tuple[str, ...] = ()
            if spec.ok:
                refs = list(dict.fromkeys([*spec.node_host_paths, *spec.host_paths, *spec.hook_paths]))[:MAX_PATHS_CHECKED]
                missing = tuple(p for p in refs if not ctx.host.exists(p))
            specs.append(replace(spec, missing=missing, mtime=mtime))

    # The default dirs first, while the daemon and the toolkit's programs answer (the YAML parser's import and the
    # parse are then off the wait); then the dirs those two name besides.
    for d in DEFAULT_DIRS:
        scan(d)
    more = _more_dirs(ctx)
    for d in more:
        scan(d)
    dirs = (*DEFAULT_DIRS, *more)
    return CdiFacts(tuple(dirs), tuple(specs), errors, tuple(missing_dirs))
