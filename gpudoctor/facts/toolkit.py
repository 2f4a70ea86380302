"""The NVIDIA Container Toolkit on this host: its binaries and versions, and config.toml parsed.

Binaries (docs/failure-modes.md #17, #19, #22): `nvidia-ctk`, `nvidia-container-runtime`,
`nvidia-container-runtime-hook`, `nvidia-container-cli` (libnvidia-container), `nvidia-cdi-hook`
(toolkit ≥ 1.16). Config (#23, #28, #30, #42): `/etc/nvidia-container-runtime/config.toml`, or the
file named by `NVIDIA_CTK_CONFIG_FILE_PATH` (toolkit ≥ 1.18).
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

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
VERSION_ARGS = {"nvidia-container-cli": ["--version"]}

# Under --root the tree's binaries are never run (issue 14 item 8): their versions come from the
# tree's dpkg database instead, the package owning each binary (`/var/lib/dpkg/info/<pkg>.list`).
DPKG_STATUS = "/var/lib/dpkg/status"
DPKG_INFO = "/var/lib/dpkg/info"
DPKG_STATUS_LIMIT = 64 << 20  # thousands of packages: a few MiB
TOOLKIT_PACKAGES = ("nvidia-container-toolkit", "libnvidia-container")  # name prefixes

_VERSION_RE = re.compile(r"version[:\s]+v?(\d+\.\d+\.\d+(?:[-~+.][0-9A-Za-z.~+-]*)?)", re.IGNORECASE)


@dataclass(frozen=True)
class ToolkitBinary:
    name: str
    path: str | None
    version: str | None = None
    output: str = ""  # first lines of `--version`, for evidence
    error: str | None = None

    @property
    def present(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class ToolkitFacts:
    binaries: tuple[ToolkitBinary, ...]
    config_path: str
    config_exists: bool = False
    config_error: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    ldconfig_exists: bool | None = None  # the host path behind `ldconfig = "@…"`

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
    try:
        import tomllib  # type: ignore[import-not-found]
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as e:
        return {}, f"invalid TOML: {e}"


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
        binaries = tuple(_binary(ctx, name, search) for name in BINARIES)
    path = ctx.host.getenv("NVIDIA_CTK_CONFIG_FILE_PATH") or CONFIG_PATH
    config: dict[str, Any] = {}
    error = None
    exists = True
    try:
        config, error = parse_config_toml(ctx.host.read_text(path))
    except OSError as e:
        exists = e.errno != errno.ENOENT
        error = None if not exists else f"{path}: {e.strerror or e}"
    facts = ToolkitFacts(binaries, path, exists, error, config)
    ldconfig = facts.ldconfig
    if ldconfig:
        # "@/sbin/ldconfig.real": the @ marks a host path (toolkit ≥ 1.17.3; failure-modes #23).
        target = ldconfig[1:] if ldconfig.startswith("@") else ldconfig
        facts = replace(facts, ldconfig_exists=ctx.host.exists(target))
    return facts
