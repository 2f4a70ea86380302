"""The NVIDIA Container Toolkit on this host: its binaries and versions, and config.toml parsed.

Binaries (docs/failure-modes.md #17, #19, #22): `nvidia-ctk`, `nvidia-container-runtime`,
`nvidia-container-runtime-hook`, `nvidia-container-cli` (libnvidia-container), `nvidia-cdi-hook`
(toolkit ≥ 1.16). Config (#23, #28, #30, #42): `/etc/nvidia-container-runtime/config.toml`, or the
file named by `NVIDIA_CTK_CONFIG_FILE_PATH` (toolkit ≥ 1.18).
"""

from __future__ import annotations

import errno
import json
import re
from dataclasses import field, replace
from typing import Any, Mapping

from ..frozen import frozen
from .at_once import map_at_once
from .bounded import load_toml
from .hostfiles import list_dir, read_file
from .registry import FactContext, fact

BINARIES = (
    "nvidia-ctk",
    "nvidia-container-runtime",
    "nvidia-container-runtime-hook",
    "nvidia-container-cli",
    "nvidia-cdi-hook",
)
# Searched besides the caller's PATH: package locations and the GPU Operator's toolkit dir.
EXTRA_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/usr/local/nvidia/toolkit")
CONFIG_PATH = "/etc/nvidia-container-runtime/config.toml"
CONFIG_READ_LIMIT = 1 << 20  # the default config.toml is about 2 KiB
VERSION_ARGS = {"nvidia-container-cli": ["--version"]}

# Under --root the tree's binaries are never run (issue 14 item 8): their versions come from the
# tree's dpkg database instead, the package owning each binary (`/var/lib/dpkg/info/<pkg>.list`).
DPKG_STATUS = "/var/lib/dpkg/status"
DPKG_INFO = "/var/lib/dpkg/info"
DPKG_STATUS_LIMIT = 64 << 20  # thousands of packages: a few MiB
TOOLKIT_PACKAGES = ("nvidia-container-toolkit", "libnvidia-container")  # name prefixes

# The type the toolkit gives each config.toml key it reads. nvidia-container-runtime, the hook and
# nvidia-ctk all load the file through Toml.Config(), a go-toml Unmarshal into these structs, which
# fails on a value of another type ("failed to unmarshal config"), so every container start through
# the toolkit fails. Sources (NVIDIA/nvidia-container-toolkit internal/config/): config.go Config,
# cli.go ContainerCLIConfig, runtime.go RuntimeConfig/modesConfig, hook.go RuntimeHookConfig,
# features.go features. Keys not listed are ignored by the toolkit and here.
STR, BOOL, STRINGS, TABLE = "a string", "true or false", "a list of strings", "a table"
CONFIG_TYPES: dict[str, str] = {
    "disable-require": BOOL,
    "swarm-resource": STR,
    "accept-nvidia-visible-devices-envvar-when-unprivileged": BOOL,
    "accept-nvidia-visible-devices-as-volume-mounts": BOOL,
    "supported-driver-capabilities": STR,
    "nvidia-container-cli": TABLE,
    "nvidia-container-cli.root": STR,
    "nvidia-container-cli.path": STR,
    "nvidia-container-cli.environment": STRINGS,
    "nvidia-container-cli.debug": STR,
    "nvidia-container-cli.ldcache": STR,
    "nvidia-container-cli.load-kmods": BOOL,
    "nvidia-container-cli.no-pivot": BOOL,
    "nvidia-container-cli.no-cgroups": BOOL,
    "nvidia-container-cli.user": STR,
    "nvidia-container-cli.ldconfig": STR,
    "nvidia-ctk": TABLE,
    "nvidia-ctk.path": STR,
    "nvidia-container-runtime": TABLE,
    "nvidia-container-runtime.debug": STR,
    "nvidia-container-runtime.log-level": STR,
    "nvidia-container-runtime.runtimes": STRINGS,
    "nvidia-container-runtime.mode": STR,
    "nvidia-container-runtime.modes": TABLE,
    "nvidia-container-runtime.modes.cdi": TABLE,
    "nvidia-container-runtime.modes.cdi.spec-dirs": STRINGS,
    "nvidia-container-runtime.modes.cdi.default-kind": STR,
    "nvidia-container-runtime.modes.cdi.annotation-prefixes": STRINGS,
    "nvidia-container-runtime.modes.csv": TABLE,
    "nvidia-container-runtime.modes.csv.mount-spec-path": STR,
    "nvidia-container-runtime-hook": TABLE,
    "nvidia-container-runtime-hook.path": STR,
    "nvidia-container-runtime-hook.skip-mode-detection": BOOL,
    "features": TABLE,
}
_TYPE_TESTS = {
    STR: lambda v: isinstance(v, str),
    BOOL: lambda v: isinstance(v, bool),
    STRINGS: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    TABLE: lambda v: isinstance(v, Mapping),
}

_VERSION_RE = re.compile(r"version[:\s]+v?(\d+\.\d+\.\d+(?:[-~+.][0-9A-Za-z.~+-]*)?)", re.IGNORECASE)


@frozen
class ToolkitBinary:
    name: str
    path: str | None
    version: str | None = None
    output: str = ""  # first lines of `--version`, for evidence
    error: str | None = None

    @property
    def present(self) -> bool:
        return self.path is not None


@frozen
class ToolkitFacts:
    binaries: tuple[ToolkitBinary, ...]
    config_path: str
    config_exists: bool = False
    config_error: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    ldconfig_exists: bool | None = None  # the host path behind `ldconfig = "@…"`
    # Keys whose value has a type the toolkit cannot load ("nvidia-container-cli.ldconfig = 5: …").
    config_problems: tuple[str, ...] = ()

    def binary(self, name: str) -> ToolkitBinary:
        return next(b for b in self.binaries if b.name == name)

    def has(self, name: str) -> bool:
        return any(b.name == name and b.present for b in self.binaries)

    @property
    def installed(self) -> bool:
        return any(b.present for b in self.binaries)

    @property
    def versions(self) -> dict[str, str]:
        return {b.name: b.version for b in self.binaries if b.present and b.version}

    # -- config.toml, with the toolkit's defaults where a key is absent ------------------------
    def _section(self, name: str) -> Mapping[str, Any]:
        value = self.config.get(name)
        return value if isinstance(value, Mapping) else {}

    @property
    def mode(self) -> str:
        value = self._section("nvidia-container-runtime").get("mode", "auto")
        return str(value)

    @property
    def no_cgroups(self) -> bool:
        return self._section("nvidia-container-cli").get("no-cgroups") is True

    @property
    def ldconfig(self) -> str | None:
        value = self._section("nvidia-container-cli").get("ldconfig")
        return value if isinstance(value, str) else None

    @property
    def supported_driver_capabilities(self) -> tuple[str, ...] | None:
        value = self.config.get("supported-driver-capabilities")
        if not isinstance(value, str):
            return None
        return tuple(c.strip() for c in value.split(",") if c.strip())

    @property
    def cdi_spec_dirs(self) -> tuple[str, ...]:
        modes = self._section("nvidia-container-runtime").get("modes")
        cdi = modes.get("cdi") if isinstance(modes, Mapping) else None
        dirs = cdi.get("spec-dirs") if isinstance(cdi, Mapping) else None
        return tuple(str(d) for d in dirs) if isinstance(dirs, list) else ("/etc/cdi", "/var/run/cdi")


def parse_version(output: str) -> str | None:
    """The first "version X.Y.Z" in `--version` output (covers `cli-version: 1.17.8` too)."""
    m = _VERSION_RE.search(output)
    return m.group(1) if m else None


def parse_config_toml(text: str) -> tuple[dict[str, Any], str | None]:
    """The parsed config, or {} and why not ("invalid TOML: …", nesting bounded by gpudoctor/facts/bounded.py)."""
    try:
        return load_toml(text), None
    except ValueError as e:  # TOMLDecodeError, ParseLimit
        return {}, f"invalid TOML: {e}"


def _toml_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    text = json.dumps(value, default=str) if isinstance(value, (str, list, bool)) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def config_type_problems(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Every known key whose value the toolkit cannot load, as "<key> = <value>: the toolkit expects <type>"."""
    problems = []
    for key, want in CONFIG_TYPES.items():
        value: Any = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
            if value is None:
                break
        if value is not None and not _TYPE_TESTS[want](value):
            problems.append(f"{key} = {_toml_value(value)}: the toolkit expects {want}")
    return tuple(problems)


def _search_path(ctx: FactContext) -> str:
    dirs = [d for d in (ctx.host.getenv("PATH") or "").split(":") if d]
    dirs += [d for d in EXTRA_DIRS if d not in dirs]
    return ":".join(dirs)


def upstream_version(deb_version: str) -> str:
    """The upstream part of a Debian version (1:1.17.8-1 → 1.17.8): epoch and revision dropped, deb-version(7)."""
    v = deb_version.split(":", 1)[1] if ":" in deb_version else deb_version
    return v.rsplit("-", 1)[0] if "-" in v else v


def parse_dpkg_status(text: str, prefixes: tuple[str, ...] = TOOLKIT_PACKAGES) -> dict[str, str]:
    """Installed packages whose name starts with one of `prefixes` → their Version (dpkg status stanzas)."""
    found: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                k, _, v = line.partition(":")
                fields[k.strip()] = v.strip()
        name = fields.get("Package", "")
        if name.startswith(prefixes) and fields.get("Status", "").endswith(" installed") and fields.get("Version"):
            found[name] = fields["Version"]
    return found


def _dpkg_owners(ctx: FactContext, paths: list[str]) -> dict[str, tuple[str, str]]:
    """binary path → (package, version) from the dpkg database under the root; {} when there is none."""
    status = read_file(ctx.host, DPKG_STATUS, limit=DPKG_STATUS_LIMIT)
    if not status.ok or not paths:
        return {}
    packages = parse_dpkg_status(status.text or "")
    listing = list_dir(ctx.host, DPKG_INFO)
    # With merged /usr a binary found as /bin/x is listed as /usr/bin/x, and the other way round.
    wanted = {alias: p for p in paths for alias in (p, p[4:] if p.startswith("/usr/") else "/usr" + p)}
    owners: dict[str, tuple[str, str]] = {}
    for entry in listing.entries:
        pkg = entry[: -len(".list")].split(":", 1)[0] if entry.endswith(".list") else None
        if pkg not in packages:
            continue
        files = read_file(ctx.host, f"{DPKG_INFO}/{entry}", limit=DPKG_STATUS_LIMIT)
        for line in (files.text or "").splitlines():
            if line in wanted:
                owners[wanted[line]] = (pkg, packages[pkg])
    return owners


def _binary_in_tree(name: str, path: str | None, owners: Mapping[str, tuple[str, str]]) -> ToolkitBinary:
    """A binary of the --root tree, never run: its version is its dpkg package's."""
    if path is None:
        return ToolkitBinary(name, None)
    if path in owners:
        pkg, version = owners[path]
        return ToolkitBinary(name, path, upstream_version(version), f"dpkg: {pkg} {version} (not run under --root)")
    return ToolkitBinary(name, path, None, "", f"gpudoctor does not run programs of the --root tree, and no package "
                         f"in its dpkg database ({DPKG_STATUS}) lists {path}")


def _binary(ctx: FactContext, name: str, search: str) -> ToolkitBinary:
    path = ctx.host.which(name, path=search)
    if path is None:
        return ToolkitBinary(name, None)
    res = ctx.host.run([path, *VERSION_ARGS.get(name, ["--version"])], timeout=10)
    text = (res.stdout + "\n" + res.stderr).strip()
    version = parse_version(text)
    error = None
    if res.failure:
        error = f"{res.failure}: {res.stderr.strip()[:200]}"
    elif version is None:
        error = f"no version in `{name} --version` output (exit {res.rc})"
    return ToolkitBinary(name, path, version, "\n".join(text.splitlines()[:4]), error)


@fact("toolkit", timeout_s=30)
def toolkit_fact(ctx: FactContext) -> ToolkitFacts:
    """NVIDIA Container Toolkit binaries, their versions, config.toml."""
    search = _search_path(ctx)
    if ctx.host.root != "/":
        found = {name: ctx.host.which(name, path=search) for name in BINARIES}
        owners = _dpkg_owners(ctx, [p for p in found.values() if p])
        binaries = tuple(_binary_in_tree(name, found[name], owners) for name in BINARIES)
    else:
        # Five programs' start-up, each waited for: at once, not one after another.
        binaries = tuple(map_at_once(lambda name: _binary(ctx, name, search), BINARIES))
    path = ctx.host.getenv("NVIDIA_CTK_CONFIG_FILE_PATH") or CONFIG_PATH
    config: dict[str, Any] = {}
    error = None
    exists = True
    try:
        config, error = parse_config_toml(ctx.host.read_text(path, limit=CONFIG_READ_LIMIT))
    except OSError as e:
        exists = e.errno != errno.ENOENT
        error = None if not exists else f"cannot read it: {e.strerror or e}"  # the check names the path
    facts = ToolkitFacts(binaries, path, exists, error, config, config_problems=config_type_problems(config))
    ldconfig = facts.ldconfig
    if ldconfig:
        # "@/sbin/ldconfig.real": the @ marks a host path (toolkit ≥ 1.17.3; failure-modes #23).
        target = ldconfig[1:] if ldconfig.startswith("@") else ldconfig
        facts = replace(facts, ldconfig_exists=ctx.host.exists(target))
    return facts
