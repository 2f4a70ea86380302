"""The SIMULATED NVIDIA Container Toolkit: what each stand-in binary does (test bed only).

None of this is NVIDIA software. It reproduces, at the boundaries Docker and gpudoctor see, what
the real toolkit does on a host described by `tests/sim/host.py`, so that CI (no GPU) can run probe
containers end to end on a real dockerd. `tests/sim/toolkit.py` installs thin launchers for these
entry points into a simulated host tree; the tree's own files drive the behaviour:

* `<root>/etc/nvidia-container-runtime/config.toml` — `nvidia-container-runtime.mode` (legacy, cdi,
  jit-cdi, auto), CDI `spec-dirs` and `default-kind`, exactly like the real config;
* `<root>/etc/cdi/*.yaml` — CDI specs (host paths inside them are read under `<root>`);
* `<root>/.sim/host.json` + `<root>/.sim/standin.json` — the host description, the toolkit version
  the stand-ins claim, and where the real `runc` is (simulation bookkeeping, not a host file).

Entry points (by the name the launcher passes):

* `nvidia-container-runtime` — OCI runtime wrapper registered as runtime `nvidia`: on `create` it
  edits the bundle's `config.json` and then execs the real runc. legacy mode: adds the prestart
  hook and injects what `nvidia-container-cli` would; cdi mode: resolves `NVIDIA_VISIBLE_DEVICES`
  (`0` -> `nvidia.com/gpu=0`) against the CDI specs and applies their edits; jit-cdi: like legacy,
  with CDI naming in errors. Failures are written to runc's `--log` file as runc does, so
  containerd shows `OCI runtime create failed: <message>: unknown` exactly as with the real one.
* `nvidia-container-runtime-hook` — the prestart hook dockerd adds for `--gpus`. It prints the mode
  line (`Using requested mode 'cdi'` / `Auto-detected mode as 'legacy'`); outside legacy mode it
  fails with the real "invoking the NVIDIA Container Runtime Hook directly ... is not supported"
  text; in legacy mode it fails with `nvidia-container-cli: device error: <id>: unknown device` for
  an unknown id (e.g. `--gpus 2` on a 1-GPU host), and otherwise succeeds. runc wraps its stderr in
  the real `error running hook #0: ...` envelope. Its launcher ends in sh a prestart whose effect the
  runc shim or the runtime stand-in already applied (tests/sim/toolkit.py `hook_fast_path`).
* `runc-shim` — a prestart hook cannot add device-cgroup rules or device nodes from outside, so the
  bed puts a `runc` shim first on the private dockerd's PATH (dockerd resolves its built-in `runc`
  runtime there; verified on 20.10): when a spec carries the stand-in hook and the hook would
  succeed in legacy mode, the shim applies the hook's effect to `config.json` before exec'ing the
  real runc. That is the observable result of the real hook + nvidia-container-cli.
* `nvidia-ctk`, `nvidia-container-cli`, `nvidia-cdi-hook` — `--version` (and `nvidia-ctk cdi list`).

What containers get (legacy/jit-cdi): `/dev/nvidiactl` (195:255), `/dev/nvidia-uvm` and
`/dev/nvidia-uvm-tools` (uvm major), `/dev/nvidia<minor>` (195:minor) per selected GPU, and
`/dev/nvidia-caps/nvidia-cap<N>` per selected MIG device, each as a `linux.devices` entry with a
matching `linux.resources.devices` allow rule; with the `utility` capability (the default set is
`utility,compute`) the host's `nvidia-smi` stand-in is bind-mounted read-only at `/usr/bin/nvidia-smi`.
Known simplifications: CDI hooks (`nvidia-cdi-hook update-ldcache` ...) are not run; libraries are
mounted only if the tree has them; the toolkit's `accept-nvidia-visible-devices-*` options are
ignored.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from tests.sim.host import NVIDIA_MAJOR, NVIDIACTL_MINOR, SimGpu, SimHost, SimMig

SIM_DIR = ".sim"
MARKER = "GPUDOCTOR-SIMULATED-NVIDIA-TOOLKIT"  # every stand-in file carries it
INJECTED = "org.gpudoctor.sim.injected"  # annotation: the spec was already edited
CONFIG_TOML = "etc/nvidia-container-runtime/config.toml"
HOOK_NAME = "nvidia-container-runtime-hook"
ALL_CAPS = ("compute", "compat32", "graphics", "utility", "video", "display", "ngx")
DEFAULT_CAPS = ("utility", "compute")  # NVIDIA_DRIVER_CAPABILITIES unset or empty
LIB_DIR = "/usr/lib/x86_64-linux-gnu"
COMMIT = "gpudoctor-simulation"

# Exact texts of the real toolkit (tests/fixtures/real-h100-docker20-toolkit-cdi/observed-request-forms.log,
# toolkit cmd/nvidia-container-runtime-hook/hook_config.go assertModeIsLegacy).
HOOK_NOT_SUPPORTED = (
    "invoking the NVIDIA Container Runtime Hook directly (e.g. specifying the docker --gpus flag) is not"
    " supported. Please use the NVIDIA Container Runtime (e.g. specify the --runtime=nvidia flag) instead"
)
# failure-modes.md #26: the runtime in cdi mode.
CDI_MODIFY_PREFIX = "could not apply required modification to OCI specification: error modifying OCI spec: "


class HookError(Exception):
    """What nvidia-container-cli would print (without the `nvidia-container-cli: ` prefix)."""


class RuntimeModError(Exception):
    """The runtime could not edit the spec; the text goes to runc's log like the real runtime's."""


# -- the simulated host as the stand-ins see it -------------------------------------------------------
@dataclass(frozen=True)
class Node:
    path: str
    major: int
    minor: int


@dataclass
class Sim:
    root: Path
    host: SimHost
    version: str
    real_runc: str

    @classmethod
    def from_root(cls, root: str | Path) -> Sim:
        root = Path(root)
        meta = json.loads((root / SIM_DIR / "standin.json").read_text())
        return cls(root, SimHost.load(root / SIM_DIR / "host.json"), meta["version"], meta["real_runc"])

    def under(self, host_path: str) -> Path:
        return self.root / host_path.lstrip("/")

    def config(self) -> dict[str, Any]:
        try:
            return tomllib.loads(self.under("/" + CONFIG_TOML).read_text())
        except FileNotFoundError:
            return {}

    @property
    def mode(self) -> str:
        return str(self.config().get("nvidia-container-runtime", {}).get("mode", "auto"))

    def cdi_options(self) -> tuple[list[str], str]:
        cdi = self.config().get("nvidia-container-runtime", {}).get("modes", {}).get("cdi", {})
        return list(cdi.get("spec-dirs", ["/etc/cdi", "/var/run/cdi"])), str(cdi.get("default-kind", "nvidia.com/gpu"))

    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(x) for x in self.version.split(".")[:3] if x.isdigit())

    def hook_path(self) -> str:
        return str(self.under(f"/usr/bin/{HOOK_NAME}"))

    # Device nodes of the host, as the driver creates them (major 195 core, dynamic uvm and caps).
    def gpu_node(self, gpu: SimGpu) -> Node:
        return Node(gpu.dev_node, NVIDIA_MAJOR, gpu.minor)

    def control_nodes(self) -> list[Node]:
        nodes = [Node("/dev/nvidiactl", NVIDIA_MAJOR, NVIDIACTL_MINOR)]
        if self.host.uvm_nodes:
            nodes += [Node("/dev/nvidia-uvm", self.host.uvm_major, 0), Node("/dev/nvidia-uvm-tools", self.host.uvm_major, 1)]
        return nodes

    def mig_nodes(self, mig: SimMig) -> list[Node]:
        return [
            Node(f"/dev/nvidia-caps/nvidia-cap{m}", self.host.caps_major, m) for m in (mig.gi_cap_minor, mig.ci_cap_minor)
        ]

    def known_node(self, path: str) -> Node | None:
        table = {n.path: n for n in self.control_nodes()}
        table["/dev/nvidia-modeset"] = Node("/dev/nvidia-modeset", NVIDIA_MAJOR, 254)
        for g in self.host.gpus:
            table[g.dev_node] = self.gpu_node(g)
            for m in g.migs:
                table.update({n.path: n for n in self.mig_nodes(m)})
        return table.get(path)


def root_of(exe: str | Path) -> Path:
    """`<root>/usr/bin/<name>` (or `<root>/.sim/launchers/<name>`) -> `<root>`."""
    return Path(os.path.realpath(exe)).parent.parent.parent


# -- reading a request -------------------------------------------------------------------------------
def env_map(env_list: Iterable[str]) -> dict[str, str]:
    """The process env as a map; a later entry wins (the toolkit folds the list into a map, and
    dockerd appends its --gpus NVIDIA_VISIBLE_DEVICES after the image's and the user's)."""
    out: dict[str, str] = {}
    for item in env_list:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def visible_devices(env: dict[str, str]) -> list[str] | None:
    """None: no request (unset, empty, `void` behave like runc); []: `none` (driver, no GPU)."""
    value = env.get("NVIDIA_VISIBLE_DEVICES")
    if value is None or value.strip() in ("", "void"):
        return None
    if value.strip() == "none":
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


def capabilities(env: dict[str, str]) -> set[str]:
    value = env.get("NVIDIA_DRIVER_CAPABILITIES", "").strip()
    if not value:
        return set(DEFAULT_CAPS)
    caps = {c.strip() for c in value.split(",") if c.strip()}
    return set(ALL_CAPS) if "all" in caps else caps


def select(host: SimHost, ids: Sequence[str]) -> tuple[list[SimGpu], list[tuple[SimGpu, SimMig]]]:
    """Resolve NVIDIA_VISIBLE_DEVICES ids the way libnvidia-container does (failure-modes.md #50,
    #52): `all` wins; indices, `GPU-<uuid>`, PCI bus ids, `MIG-<uuid>`, `<gpu>:<mig>`.
    Raises HookError("device error: <id>: unknown device") for anything else."""
    if "all" in ids:
        return list(host.gpus), list(host.mig_devices)
    gpus: list[SimGpu] = []
    migs: list[tuple[SimGpu, SimMig]] = []
    for ident in ids:
        found_gpu: SimGpu | None = None
        found_mig: tuple[SimGpu, SimMig] | None = None
        if ident.isdigit():
            found_gpu = next((g for g in host.gpus if g.index == int(ident)), None)
        elif ":" in ident and all(p.isdigit() for p in ident.split(":")) and ident.count(":") == 1:
            gi, mi = (int(p) for p in ident.split(":"))
            found_mig = next(((g, m) for g, m in host.mig_devices if g.index == gi and m.index == mi), None)
        elif ident.startswith("GPU-"):
            found_gpu = next((g for g in host.gpus if g.uuid == ident), None)
        elif ident.startswith("MIG-"):
            found_mig = next(((g, m) for g, m in host.mig_devices if m.uuid == ident), None)
        elif ident.count(":") >= 1:
            # The same "0000:01:00.0" form as gpudoctor's; imported here, where a bus id is asked for: gpudoctor's
            # fact modules cost a stand-in start 30 ms, and every GPU container starts one.
            from gpudoctor.facts.nvml import normalize_bus_id

            found_gpu = next((g for g in host.gpus if g.sysfs_bus_id == normalize_bus_id(ident)), None)
        if found_gpu is not None:
            if found_gpu not in gpus:
                gpus.append(found_gpu)
        elif found_mig is not None:
            if found_mig not in migs:
                migs.append(found_mig)
        else:
            # libnvidia-container src/cli/common.c select_devices: "unknown device" (nvidia-docker#1283).
            raise HookError(f"device error: {ident}: unknown device")
    return gpus, migs


# -- editing an OCI spec ---------------------------------------------------------------------------
def add_device(spec: dict[str, Any], node: Node, path: str | None = None) -> None:
    linux = spec.setdefault("linux", {})
    devices = linux.setdefault("devices", []) or []
    linux["devices"] = devices
    target = path or node.path
    if any(d.get("path") == target for d in devices):
        return
    devices.append(
        {"path": target, "type": "c", "major": node.major, "minor": node.minor, "fileMode": 0o666, "uid": 0, "gid": 0}
    )
    resources = linux.setdefault("resources", {})
    rules = resources.setdefault("devices", []) or []
    resources["devices"] = rules
    rules.append({"allow": True, "type": "c", "major": node.major, "minor": node.minor, "access": "rwm"})


def add_mount(spec: dict[str, Any], source: str, destination: str, options: Sequence[str] | None = None) -> None:
    mounts = spec.setdefault("mounts", [])
    if any(m.get("destination") == destination for m in mounts):
        return
    opts = list(options or ("ro", "nosuid", "nodev", "rbind", "rprivate"))
    if "bind" not in opts and "rbind" not in opts:
        opts.append("rbind")
    mounts.append({"destination": destination, "type": "bind", "source": source, "options": opts})


def add_env(spec: dict[str, Any], items: Iterable[str]) -> None:
    process = spec.setdefault("process", {})
    env = process.setdefault("env", []) or []
    process["env"] = env
    env.extend(items)


def _process_env(spec: dict[str, Any]) -> dict[str, str]:
    return env_map((spec.get("process") or {}).get("env") or [])


def _nvml_problem(host: SimHost) -> str | None:
    """nvidia-container-cli's initialization errors (failure-modes.md #6, #8, #13)."""
    code = host.nvml_init_error
    if not code:
        return None
    return {
        9: "initialization error: nvml error: driver not loaded",
        18: "initialization error: nvml error: driver/library version mismatch",
        12: "initialization error: load library failed: libnvidia-ml.so.1: cannot open shared object file: no such file or directory",
    }.get(code, "initialization error: nvml error: unknown error")


@dataclass(frozen=True)
class Plan:
    """What a container gets: device nodes, read-only bind mounts (host path -> container path), env."""

    nodes: tuple[Node, ...]
    mounts: tuple[tuple[str, str], ...]
    env: tuple[str, ...] = ()


def driver_plan(sim: Sim, spec: dict[str, Any], *, cdi_names: str | None = None) -> Plan | None:
    """The legacy hook's effect (and jit-cdi's): None when nothing is requested.

    `cdi_names`: a CDI kind (e.g. `runtime.nvidia.com/gpu`) to report unknown ids as
    `unresolvable CDI devices <kind>=<id>` instead of nvidia-container-cli's device error."""
    env = _process_env(spec)
    ids = visible_devices(env)
    if ids is None:
        return None
    problem = _nvml_problem(sim.host)
    if problem:
        raise HookError(problem)
    try:
        gpus, migs = select(sim.host, ids)
    except HookError:
        if cdi_names is None:
            raise
        bad = [i for i in ids if _unknown(sim.host, i)]
        raise RuntimeModError(
            CDI_MODIFY_PREFIX + "failed to inject CDI devices: unresolvable CDI devices "
            + ", ".join(f"{cdi_names}={i}" for i in bad)
        ) from None
    if any(g.handle_error for g in gpus) or any(g.handle_error for g, _ in migs):
        # failure-modes.md #3: a GPU that fell off the bus breaks enumeration in the container hook.
        raise HookError("detection error: nvml error: unknown error")
    nodes: list[Node] = list(sim.control_nodes())
    for g in gpus:
        nodes.append(sim.gpu_node(g))
    for g, m in migs:
        nodes.append(sim.gpu_node(g))
        nodes.extend(sim.mig_nodes(m))
    caps = capabilities(env)
    mounts: list[tuple[str, str]] = []
    ver = sim.host.driver_version
    wanted: list[tuple[str, str]] = []
    if "utility" in caps:
        wanted += [("/usr/bin/nvidia-smi", "/usr/bin/nvidia-smi"), (f"{LIB_DIR}/libnvidia-ml.so.{ver}",) * 2]
    if "compute" in caps:
        wanted += [(f"{LIB_DIR}/libcuda.so.{ver}",) * 2]
    for host_path, container_path in wanted:
        if sim.under(host_path).exists():
            mounts.append((str(sim.under(host_path)), container_path))
    unique: list[Node] = []
    for n in nodes:
        if n not in unique:
            unique.append(n)
    extra_env = ("NVIDIA_VISIBLE_DEVICES=void",) if cdi_names else ()
    return Plan(tuple(unique), tuple(mounts), extra_env)


def _unknown(host: SimHost, ident: str) -> bool:
    try:
        select(host, [ident])
        return False
    except HookError:
        return True


def apply(spec: dict[str, Any], plan: Plan, how: str) -> None:
    for n in plan.nodes:
        add_device(spec, n)
    for source, dest in plan.mounts:
        add_mount(spec, source, dest)
    add_env(spec, plan.env)
    spec.setdefault("annotations", {})[INJECTED] = how


# -- CDI ----------------------------------------------------------------------------------------------
def _load_yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def cdi_devices(sim: Sim, spec_dirs: Sequence[str]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Every CDI device the specs under the root define: qualified name -> (spec, device)."""
    found: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for d in spec_dirs:
        folder = sim.under(d)
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if f.suffix not in (".yaml", ".yml", ".json") or not f.is_file():
                continue
            try:
                doc = json.loads(f.read_text()) if f.suffix == ".json" else _load_yaml(f.read_text())
            except Exception:
                continue  # the CDI cache skips a broken spec (and reports it elsewhere)
            if not isinstance(doc, dict) or "kind" not in doc:
                continue
            for dev in doc.get("devices") or []:
                found[f"{doc['kind']}={dev.get('name')}"] = (doc, dev)
    return found


def _cdi_node(sim: Sim, raw: dict[str, Any]) -> Node:
    path = str(raw["path"])
    host_path = str(raw.get("hostPath") or path)
    # CDI's DeviceNode.FillMissingInfo stats the host device unless type and major are both given.
    if raw.get("type") and raw.get("major"):
        return Node(path, int(raw["major"]), int(raw.get("minor", 0)))
    real = sim.under(host_path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise RuntimeModError(
            CDI_MODIFY_PREFIX + f'failed to inject CDI devices: failed to stat CDI host device "{host_path}": no such file or directory'
        ) from None
    if stat.S_ISCHR(st.st_mode):
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:  # a tree whose /dev holds plain files: take the numbers from the host description
        known = sim.known_node(host_path)
        major, minor = (known.major, known.minor) if known else (0, 0)
    return Node(path, int(raw.get("major", major)), int(raw.get("minor", minor)))


def cdi_plan(sim: Sim, names: Sequence[str]) -> Plan:
    spec_dirs, _ = sim.cdi_options()
    devices = cdi_devices(sim, spec_dirs)
    missing = [n for n in names if n not in devices]
    if missing:
        # Same text as the CDI library's Cache.InjectDevices (docker-gpu-internals.md §2.2).
        raise RuntimeModError(CDI_MODIFY_PREFIX + "failed to inject CDI devices: unresolvable CDI devices " + ", ".join(missing))
    nodes: list[Node] = []
    mounts: list[tuple[str, str]] = []
    env: list[str] = []
    seen_specs: list[int] = []
    edits: list[dict[str, Any]] = []
    for name in names:
        doc, dev = devices[name]
        if id(doc) not in seen_specs:
            seen_specs.append(id(doc))
            edits.append(doc.get("containerEdits") or {})
        edits.append(dev.get("containerEdits") or {})
    for e in edits:
        for raw in e.get("deviceNodes") or []:
            node = _cdi_node(sim, raw)
            if node not in nodes:
                nodes.append(node)
        for m in e.get("mounts") or []:
            mounts.append((str(sim.under(m["hostPath"])), str(m["containerPath"])))
        env.extend(e.get("env") or [])
    return Plan(tuple(nodes), tuple(mounts), tuple(env))


def qualify(ids: Sequence[str], default_kind: str) -> list[str]:
    """`0` -> `nvidia.com/gpu=0`; a fully qualified name stays (toolkit internal/modifier/cdi.go)."""
    return [i if "=" in i and "/" in i.split("=")[0] else f"{default_kind}={i}" for i in ids]


# -- runc command lines ---------------------------------------------------------------------------------
_GLOBAL_WITH_VALUE = {"--log", "--log-format", "--root", "--criu", "--rootless"}


def parse_runc_args(argv: Sequence[str]) -> tuple[str | None, Path, str | None]:
    """(subcommand, bundle, log file) of a runc command line."""
    sub: str | None = None
    log: str | None = None
    bundle: str | None = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if sub is None:
            if a in _GLOBAL_WITH_VALUE and i + 1 < len(argv):
                if a == "--log":
                    log = argv[i + 1]
                i += 2
                continue
            if a.startswith("--log="):
                log = a.split("=", 1)[1]
            elif not a.startswith("-"):
                sub = a
        else:
            if a in ("--bundle", "-b") and i + 1 < len(argv):
                bundle = argv[i + 1]
                i += 2
                continue
            if a.startswith("--bundle="):
                bundle = a.split("=", 1)[1]
        i += 1
    return sub, Path(bundle or os.getcwd()), log


def _log_error(log: str | None, message: str) -> None:
    """Write the error where containerd looks for it (runc's --log file, JSON lines)."""
    sys.stderr.write(message + "\n")
    if not log:
        return
    line = {"level": "error", "msg": message, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(log, "a") as f:
        f.write(json.dumps(line) + "\n")


def _load_spec(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "config.json").read_text())


def _save_spec(bundle: Path, spec: dict[str, Any]) -> None:
    tmp = bundle / "config.json.sim-tmp"
    tmp.write_text(json.dumps(spec))
    os.replace(tmp, bundle / "config.json")


def _mode_line(mode: str, resolved: str) -> str:
    # toolkit internal/info/auto.go ResolveAutoMode logs one of these two lines.
    return f"Auto-detected mode as '{resolved}'" if mode == "auto" else f"Using requested mode '{mode}'"


def runtime_mode(sim: Sim, ids: Sequence[str] | None) -> str:
    """nvidia-container-runtime's mode: auto is cdi when every request is a CDI name, else jit-cdi
    from toolkit 1.18.0 and legacy before (failure-modes.md §0.1; toolkit internal/info/auto.go)."""
    mode = sim.mode
    if mode != "auto":
        return mode
    if ids and all("=" in i for i in ids):
        return "cdi"
    return "jit-cdi" if sim.version_tuple() >= (1, 18, 0) else "legacy"


def hook_mode(sim: Sim) -> str:
    """The hook resolves auto to legacy (toolkit >= 1.18: "Resolve to legacy by default in
    nvidia-container-runtime-hook"; earlier: legacy on non-Tegra hosts)."""
    mode = sim.mode
    return "legacy" if mode == "auto" else mode


def edit_for_runtime(sim: Sim, spec: dict[str, Any]) -> None:
    env = _process_env(spec)
    ids = visible_devices(env)
    mode = runtime_mode(sim, ids)
    if mode == "legacy":
        try:
            plan = driver_plan(sim, spec)
        except HookError:
            # The real runtime adds the prestart hook, which then fails the start inside runc's
            # envelope. (When the request resolves, the stand-in applies the hook's effect itself
            # and skips the hook: same container, one Python start less.)
            hooks = spec.setdefault("hooks", {})
            prestart = hooks.get("prestart") or []
            hooks["prestart"] = prestart
            if not any(os.path.basename(h.get("path", "")) == HOOK_NAME for h in prestart):
                prestart.append({"path": sim.hook_path(), "args": [HOOK_NAME, "prestart"]})
            return
        if plan is not None:
            apply(spec, plan, "runtime-legacy")
    else:
        # Outside legacy mode the runtime removes dockerd's --gpus hook from the spec (toolkit
        # internal/modifier/hook_remover.go), which is why `--runtime=nvidia --gpus …` works in cdi mode.
        hooks = spec.get("hooks") or {}
        if hooks.get("prestart"):
            hooks["prestart"] = [h for h in hooks["prestart"] if os.path.basename(h.get("path", "")) != HOOK_NAME]
    if mode == "legacy":
        pass
    elif mode == "cdi":
        if ids is None:
            return
        _, kind = sim.cdi_options()
        apply(spec, cdi_plan(sim, qualify(ids, kind)), "runtime-cdi")
    elif mode == "jit-cdi":
        try:
            plan = driver_plan(sim, spec, cdi_names="runtime.nvidia.com/gpu")
        except HookError as e:
            raise RuntimeModError(CDI_MODIFY_PREFIX + f"failed to generate CDI spec for mode \"auto\": {e}") from None
        if plan is not None:
            apply(spec, plan, "runtime-jit-cdi")
    else:
        raise RuntimeModError(f"error constructing low-level runtime: unsupported mode {mode!r} (simulated toolkit)")


# -- entry points ----------------------------------------------------------------------------------------
def _version(name: str, sim: Sim) -> str:
    v = sim.version
    if name == "nvidia-ctk":
        return f"NVIDIA Container Toolkit CLI version {v}\ncommit: {COMMIT}\n"
    if name == "nvidia-container-runtime":
        import subprocess  # only for --version: a stand-in's other starts need none

        runc = subprocess.run([sim.real_runc, "--version"], capture_output=True, text=True, check=False).stdout
        return f"NVIDIA Container Runtime version {v}\ncommit: {COMMIT}\nspec: 1.2.1\n\n{runc}"
    if name == HOOK_NAME:
        return f"NVIDIA Container Runtime Hook version {v}\ncommit: {COMMIT}\n"
    if name == "nvidia-cdi-hook":
        return f"NVIDIA CDI Hook version {v}\ncommit: {COMMIT}\n"
    if name == "nvidia-container-cli":
        return (
            f"cli-version: {v}\nlib-version: {v}\nbuild date: 2025-05-30T13:47+00:00\n"
            f"build revision: {COMMIT}\nbuild compiler: x86_64-linux-gnu-gcc-7 7.5.0\nbuild platform: x86_64\n"
        )
    return f"{name} (simulated) {v}\n"


def runtime_main(sim: Sim, argv: Sequence[str]) -> int:
    if "--version" in argv[:1] or argv[:1] == ["-v"]:
        sys.stdout.write(_version("nvidia-container-runtime", sim))
        return 0
    sub, bundle, log = parse_runc_args(argv)
    if sub in ("create", "run"):
        spec = _load_spec(bundle)
        try:
            edit_for_runtime(sim, spec)
        except RuntimeModError as e:
            _log_error(log, str(e))
            return 1
        _save_spec(bundle, spec)
    os.execv(sim.real_runc, ["runc", *argv])
    return 127  # not reached


def hook_main(sim: Sim, argv: Sequence[str]) -> int:
    if "--version" in argv or "-v" in argv[:1]:
        sys.stdout.write(_version(HOOK_NAME, sim))
        return 0
    if argv[:1] != ["prestart"]:
        return 0  # poststart/poststop: nothing to do
    state = json.load(sys.stdin)
    spec = _load_spec(Path(state["bundle"]))
    mode = sim.mode
    resolved = hook_mode(sim)
    sys.stderr.write(_mode_line(mode, resolved) + "\n")
    if resolved != "legacy":
        sys.stderr.write(HOOK_NOT_SUPPORTED + "\n")
        return 1
    try:
        driver_plan(sim, spec)
    except HookError as e:
        sys.stderr.write(f"nvidia-container-cli: {e}\n")
        return 1
    return 0


def _standin_hook_root(spec: dict[str, Any]) -> Path | None:
    for h in (spec.get("hooks") or {}).get("prestart") or []:
        path = h.get("path", "")
        if os.path.basename(path) == HOOK_NAME:
            try:
                if MARKER in Path(path).read_text(errors="replace")[:2000]:
                    return root_of(path)
            except OSError:
                continue
    return None


def runc_shim_main(real_runc: str, argv: Sequence[str]) -> int:
    """Apply the legacy hook's effect for `--gpus` containers, then exec the real runc."""
    sub, bundle, _ = parse_runc_args(argv)
    if sub in ("create", "run"):
        try:
            spec = _load_spec(bundle)
        except (OSError, ValueError):
            spec = None
        if spec is not None and INJECTED not in (spec.get("annotations") or {}):
            root = _standin_hook_root(spec)
            if root is not None:
                sim = Sim.from_root(root)
                if hook_mode(sim) == "legacy":
                    try:
                        plan = driver_plan(sim, spec)
                    except HookError:
                        plan = None  # the hook itself fails the start with the real text
                    if plan is not None:
                        apply(spec, plan, "hook-legacy")
                        _save_spec(bundle, spec)
    os.execv(real_runc, ["runc", *argv])
    return 127


def ctk_main(sim: Sim, argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("--version", "-v", "version"):
        sys.stdout.write(_version("nvidia-ctk", sim))
        return 0
    if argv[:2] == ["cdi", "list"]:
        spec_dirs, _ = sim.cdi_options()
        names = sorted(cdi_devices(sim, spec_dirs))
        sys.stderr.write(f'time="{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}" level=info msg="Found {len(names)} CDI devices"\n')
        sys.stdout.write("".join(n + "\n" for n in names))
        return 0
    sys.stderr.write(f"nvidia-ctk (simulated by gpudoctor's tests): unsupported arguments {list(argv)}\n")
    return 1


def main(launcher: str, name: str, argv: Sequence[str]) -> int:
    """Entry point of an installed launcher (`<root>/usr/bin/<name>`)."""
    sim = Sim.from_root(root_of(launcher))
    if name == "nvidia-container-runtime":
        return runtime_main(sim, argv)
    if name == HOOK_NAME:
        return hook_main(sim, argv)
    if name == "nvidia-ctk":
        return ctk_main(sim, argv)
    if "--version" in argv or "-V" in argv or "version" in argv[:1]:
        sys.stdout.write(_version(name, sim))
        return 0
    return 0
