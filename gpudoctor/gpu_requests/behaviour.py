"""What the engine and the NVIDIA Container Toolkit do with one GPU request on one stack: which path serves it,
which host GPUs the container gets, or where and with which words it is refused — and which check owns the
condition that refuses it. Pure: `predict(request, stack, gpus)`.

The rules were read off the real stack (scripts/real_stack_matrix.py: Docker 20.10 and 29.7.2, toolkit 1.20.0,
libnvidia-container 1.17.0, one H200; every state's ground truth in tests/fixtures/real-h200-*/) and the sources:
* create time: an unregistered runtime is refused (moby daemon/daemon_unix.go);
* CDI device requests (`--device nvidia.com/gpu=…`, Driver "cdi") are resolved by dockerd from its spec dirs
  (Engine 25+, CDI on; moby daemon/cdi.go);
* GPU DeviceRequests (`--gpus`): Docker 29.2+ with nvidia-cdi-hook found at start maps them to CDI names
  (all / 0..N-1 / the ids) and serves them through CDI when the daemon's specs resolve every name; otherwise, and
  on older engines, the legacy driver sets NVIDIA_VISIBLE_DEVICES and adds nvidia-container-runtime-hook — the
  only path an over-count (`--gpus N+1`) can take on 29.x, so its refusal text is the hook's (real stack);
* the NVIDIA runtime (`--runtime=nvidia` or the default runtime) acts on NVIDIA_VISIBLE_DEVICES by its mode:
  legacy (auto, here) through nvidia-container-cli, cdi through the runtime's spec dirs, jit-cdi by generating;
* under runc the hook alone refuses in cdi/jit-cdi mode (HOOK_REFUSAL), else runs nvidia-container-cli.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from . import texts
from ..frozen import frozen
from .request import DeviceRequest, ErrorText, GpuRequest, HostGpu
from .stack import CDI_FROM, HOOK_REFUSING_MODES, RUNC_NAMES, StackState

VISIBLE = "NVIDIA_VISIBLE_DEVICES"

# The paths a request can take (Prediction.path).
NONE = "none"  # no GPU is asked for and none is added
CLIENT = "client"  # refused before dockerd saw it
DAEMON = "daemon"  # no daemon answers
CREATE = "create"  # refused by dockerd at create
DOCKERD_CDI = "dockerd-cdi"  # dockerd's CDI injection
LEGACY_HOOK = "legacy-hook"  # runc + nvidia-container-runtime-hook → nvidia-container-cli
RUNTIME_LEGACY = "nvidia-runtime-legacy"
RUNTIME_CDI = "nvidia-runtime-cdi"
RUNTIME_JIT = "nvidia-runtime-jit-cdi"

# Check ids that own the conditions (checks/*.py).
BLAME_RUNTIME = "docker.runtime.nvidia"
BLAME_GPU_DRIVER = "docker.gpu-driver"
BLAME_DOCKER_CDI = "docker.cdi"
BLAME_CDI_SPECS = "cdi.specs"
BLAME_CDI_DEVICES = "cdi.devices"
BLAME_CDI_STALE = "cdi.stale"
BLAME_MODE = "toolkit.mode"
BLAME_VERSIONS = "toolkit.versions"
BLAME_CONFIG = "toolkit.config"
BLAME_REACHABLE = "docker.reachable"


# `docker run --gpus all` (and DeviceRequest(count=-1, capabilities=[["gpu"]]) without a runtime): the request the
# layer checks ask about when they judge a setting by what it does to GPU containers.
GPUS_ALL = GpuRequest("gpus", "--gpus all", (DeviceRequest(count=-1, capabilities=(("gpu",),), origin="--gpus all"),))


@frozen
class Prediction:
    path: str
    refused: bool = False
    devices: tuple[int, ...] | None = ()  # host GPU indices the container gets; None: cannot tell
    errors: tuple[ErrorText, ...] = ()  # when refused: what is printed (this stack's words first)
    blame: str | None = None  # the check owning the refusing condition; None for a refusal that is right
    why: str = ""
    exact: bool = True  # False where the refusal is known but not its words
    via: tuple[str, ...] = ()  # every path that took part, in order

    @property
    def text(self) -> str:
        return self.errors[0].text if self.errors else ""


def _refuse(path: str, why: str, errors: Sequence[ErrorText], blame: str | None, exact: bool = True,
            via: tuple[str, ...] = ()) -> Prediction:
    return Prediction(path, True, (), tuple(errors), blame, why, exact, via or (path,))


def resolve_tokens(tokens: Sequence[str], gpus: Sequence[HostGpu]) -> tuple[list[int], list[str]]:
    """Host indices the tokens name, and the tokens that name nothing on this host."""
    found: list[int] = []
    unknown: list[str] = []
    for t in tokens:
        t = t.strip()
        if t in ("", "none", "void"):
            continue
        if t == "all":
            found += [g.index for g in gpus]
            continue
        hit = next((g.index for g in gpus if (t.isdigit() and g.index == int(t)) or (g.uuid and g.uuid.lower() == t.lower())), None)
        if hit is None:
            unknown.append(t)
        else:
            found.append(hit)
    return sorted(set(found)), unknown


def _tokens_of(d: DeviceRequest) -> list[str] | None:
    """What dockerd's NVIDIA driver turns a GPU DeviceRequest into (moby daemon/nvidia_linux.go: count -1 → all,
    count N → 0..N-1, ids verbatim); None when the request has no literal meaning."""
    if d.device_ids:
        return [str(i) for i in d.device_ids]
    if isinstance(d.count, bool) or not isinstance(d.count, int):
        return None
    if d.count < 0:
        return ["all"]
    return [str(i) for i in range(d.count)]


def _cdi_blame(stack: StackState, names: frozenset[str]) -> str:
    return BLAME_CDI_DEVICES if names else BLAME_CDI_SPECS


def _legacy_cli(tokens: Sequence[str], stack: StackState, gpus: Sequence[HostGpu], path: str,
                via: tuple[str, ...]) -> Prediction:
    """nvidia-container-cli under the hook: configure's flags first, then the devices, then ldconfig."""
    if stack.cli_skew:
        return _refuse(path, "the hook passes --cuda-compat-mode, which this nvidia-container-cli does not know",
                       (ErrorText(texts.CLI_SKEW + stack.cuda_compat_mode + "'", texts.CLI_VIA_HOOK),), BLAME_VERSIONS,
                       via=via)
    found, unknown = resolve_tokens(tokens, gpus)
    if unknown:
        return _refuse(path, f"{', '.join(unknown)} is not a GPU of this host",
                       (ErrorText(texts.CLI_UNKNOWN_DEVICE.format(token=unknown[0]), texts.CLI_VIA_HOOK),), None, via=via)
    if stack.ldconfig_missing and found:
        return _refuse(path, f"config.toml's ldconfig {stack.ldconfig_missing} does not exist",
                       (ErrorText(texts.CLI_LDCONFIG_MISSING.format(path=stack.ldconfig_missing), texts.CLI_VIA_HOOK),),
                       BLAME_CONFIG, via=via)
    return Prediction(path, False, tuple(found), via=via, why="nvidia-container-cli injects the GPUs")


def _cdi_names(tokens: Sequence[str]) -> list[str]:
    return [t if "=" in t else f"nvidia.com/gpu={t}" for t in tokens]


def _nvidia_runtime(visible: str | None, stack: StackState, gpus: Sequence[HostGpu], via: tuple[str, ...]) -> Prediction:
    """The NVIDIA runtime acting on NVIDIA_VISIBLE_DEVICES."""
    tokens = [t for t in (visible or "").split(",") if t.strip()]
    if not tokens or tokens in (["void"], ["none"]):
        return Prediction(RUNTIME_LEGACY, False, (), via=via, why="the runtime adds no GPU (no NVIDIA_VISIBLE_DEVICES)")
    mode = stack.runtime_mode
    if mode == "legacy":
        if stack.mode == "auto":
            found, unknown = resolve_tokens(tokens, gpus)
            if unknown:  # auto mode's generator refuses first; its words vary (real stack)
                return _refuse(RUNTIME_LEGACY, f"{', '.join(unknown)} is not a GPU of this host",
                               (ErrorText(texts.JIT_NO_SUCH_INDEX, texts.RUNTIME),
                                ErrorText(texts.CLI_UNKNOWN_DEVICE.format(token=unknown[0]), texts.CLI_VIA_HOOK)),
                               None, exact=False, via=(*via, RUNTIME_LEGACY))
        return _legacy_cli(tokens, stack, gpus, RUNTIME_LEGACY, (*via, RUNTIME_LEGACY))
    if mode == "cdi":
        names = _cdi_names(tokens)
        missing = [n for n in names if n not in stack.runtime_cdi_names]
        if missing:
            return _refuse(RUNTIME_CDI, f"the runtime's CDI specs do not name {', '.join(missing)}",
                           (texts.unresolvable(missing, texts.RUNTIME),), _cdi_blame(stack, stack.runtime_cdi_names),
                           via=(*via, RUNTIME_CDI))
        if stack.spec_missing_paths:
            return _refuse(RUNTIME_CDI, "the CDI spec names host files that do not exist",
                           (ErrorText(texts.CDI_OPEN_MISSING.format(path=stack.spec_missing_paths[0]), texts.RUNTIME),),
                           BLAME_CDI_STALE, via=(*via, RUNTIME_CDI))
        found, _ = resolve_tokens([n.partition("=")[2] for n in names], gpus)
        return Prediction(RUNTIME_CDI, False, tuple(found), via=(*via, RUNTIME_CDI), why="the runtime injects the CDI devices")
    if mode == "jit-cdi":
        found, unknown = resolve_tokens(tokens, gpus)
        if unknown:
            return _refuse(RUNTIME_JIT, f"{', '.join(unknown)} is not a GPU of this host",
                           (ErrorText(texts.JIT_NO_SUCH_INDEX, texts.RUNTIME),), None, exact=False, via=(*via, RUNTIME_JIT))
        return Prediction(RUNTIME_JIT, False, tuple(found), via=(*via, RUNTIME_JIT), why="the runtime generates a CDI spec")
    return Prediction(RUNTIME_LEGACY, False, None, via=via, why=f"mode {mode!r} is not modelled")


def _plain_gpu_caps(d: DeviceRequest) -> bool:
    """Docker 29 guesses a GPU vendor from CDI only for capabilities [["gpu"]]; other sets get "could not select
    device driver" (real stack: `capabilities=compute,utility` with no hook found at start)."""
    return [list(c) for c in (d.capabilities or ()) if isinstance(c, (list, tuple))] == [["gpu"]]


def _effective_visible(req: GpuRequest, image_env: Mapping[str, str]) -> str | None:
    value = req.env_value(VISIBLE)
    return value if value is not None else image_env.get(VISIBLE)


def predict(req: GpuRequest, stack: StackState, gpus: Sequence[HostGpu],
            image_env: Mapping[str, str] | None = None) -> Prediction:
    """What this stack does with `req` (gpus: the host's, from NVML; image_env: the image's ENV)."""
    image_env = image_env or {}
    if stack.engine is None:
        return _refuse(DAEMON, "no Docker daemon answers", (), BLAME_REACHABLE, exact=False)
    runtime = req.runtime or stack.default_runtime or "runc"
    if req.runtime and req.runtime not in RUNC_NAMES and stack.runtime(req.runtime) is None:
        return _refuse(CREATE, f"the daemon has no runtime named {req.runtime!r}",
                       texts.unknown_runtime(req.runtime, stack.engine), BLAME_RUNTIME)
    gpu_reqs = [d for d in req.device_requests if not d.is_cdi]
    cdi_reqs = [d for d in req.device_requests if d.is_cdi]
    devices: set[int] = set()
    via: list[str] = []

    # dockerd's CDI injection of CDI device requests (start time).
    if cdi_reqs:
        if not stack.engine >= CDI_FROM or not stack.cdi_enabled:
            return _refuse(DAEMON, "the daemon does not do CDI (Engine < 25, or CDI off)",
                           (ErrorText(texts.could_not_select("cdi", []), texts.DAEMON_START),), BLAME_DOCKER_CDI)
        names = [str(n) for d in cdi_reqs for n in (d.device_ids or ())]
        missing = [n for n in names if n not in stack.daemon_cdi_names]
        if missing:
            return _refuse(DOCKERD_CDI, f"the daemon's CDI specs do not name {', '.join(missing)}",
                           (texts.unresolvable(missing),), _cdi_blame(stack, stack.daemon_cdi_names))
        if stack.spec_missing_paths:
            return _refuse(DOCKERD_CDI, "the CDI spec names host files that do not exist",
                           (ErrorText(texts.CDI_OPEN_MISSING.format(path=stack.spec_missing_paths[0]), texts.DAEMON_START),),
                           BLAME_CDI_STALE)
        found, _ = resolve_tokens([n.partition("=")[2] for n in names], gpus)
        devices.update(found)
        via.append(DOCKERD_CDI)

    # dockerd's GPU device drivers for `--gpus` / DeviceRequest(capabilities=[["gpu"]]) (start time).
    visible = _effective_visible(req, image_env)
    hooked = False
    fell_back: list[str] = []
    if gpu_reqs:
        d = gpu_reqs[-1]
        if d.device_ids and isinstance(d.count, int) and d.count != 0:
            return _refuse(DAEMON, "the request sets both a count and device ids",
                           (ErrorText(texts.BOTH_COUNT_AND_IDS, texts.DAEMON_START),), None)
        tokens = _tokens_of(d)
        if tokens is None:
            return Prediction(DAEMON, False, None, why="the request's count or ids are decided at run time")
        names = _cdi_names(tokens)
        if stack.gpus_via_cdi and all(n in stack.daemon_cdi_names for n in names):
            if stack.spec_missing_paths:
                return _refuse(DOCKERD_CDI, "the CDI spec names host files that do not exist",
                               (ErrorText(texts.CDI_OPEN_MISSING.format(path=stack.spec_missing_paths[0]), texts.DAEMON_START),),
                               BLAME_CDI_STALE)
            found, _ = resolve_tokens(tokens, gpus)
            devices.update(found)
            via.append(DOCKERD_CDI)
            visible = "void"  # dockerd's CDI driver sets NVIDIA_VISIBLE_DEVICES=void (real stack)
        elif stack.legacy_hook_at_start or (stack.legacy_hook_at_start is None and stack.toolkit_installed):
            hooked = True
            visible = ",".join(tokens)
            if stack.gpus_via_cdi:
                # Docker would have served it through CDI had the specs named it: that, not the hook, is what to fix.
                fell_back = [n for n in names if n not in stack.daemon_cdi_names]
        elif stack.gpus_via_cdi:
            missing = [n for n in names if n not in stack.daemon_cdi_names]
            return _refuse(DOCKERD_CDI, f"the daemon's CDI specs do not name {', '.join(missing)}, and dockerd found "
                           "no nvidia-container-runtime-hook at start to fall back on",
                           (texts.unresolvable(missing),), _cdi_blame(stack, stack.daemon_cdi_names))
        elif stack.engine >= (29, 2) and stack.cdi_enabled and _plain_gpu_caps(d):
            text = texts.AMD_SPEC_NOT_FOUND if stack.any_cdi_spec else texts.NO_GPU_VENDOR
            return _refuse(DAEMON, "dockerd found no NVIDIA hook on its PATH when it started",
                           (ErrorText(text, texts.DAEMON_START, "29.x with CDI on"),), BLAME_GPU_DRIVER)
        else:
            caps = [list(c) for c in (d.capabilities or ()) if isinstance(c, (list, tuple))]
            return _refuse(DAEMON, "dockerd found no NVIDIA hook on its PATH when it started",
                           (ErrorText(texts.could_not_select(str(d.driver or ""), caps), texts.DAEMON_START),),
                           BLAME_GPU_DRIVER)

    # The runtime the container runs under.
    if runtime not in RUNC_NAMES:
        entry = stack.runtime(runtime)
        if entry is not None and entry[1] is False:
            return _refuse(CREATE, f"the {runtime!r} runtime's binary is not on dockerd's PATH",
                           (ErrorText(texts.RUNTIME_BINARY_MISSING.format(binary="nvidia-container-runtime"), texts.DAEMON_START),),
                           BLAME_RUNTIME, via=tuple(via))
        if runtime == "nvidia":
            p = _nvidia_runtime(visible, stack, gpus, tuple(via))
            if p.refused or p.devices is None:
                return p
            return Prediction(p.path if p.devices or not via else via[-1], False, tuple(sorted(devices | set(p.devices))),
                              via=p.via or tuple(via), why=p.why)
    elif hooked:
        if stack.mode in HOOK_REFUSING_MODES:
            if fell_back:
                return _refuse(LEGACY_HOOK, f"the daemon's CDI specs do not name {', '.join(fell_back)}, so Docker hands "
                               f"the request to the hook, which refuses in {stack.mode!r} mode",
                               (ErrorText(texts.HOOK_REFUSAL_FULL, texts.HOOK),),
                               _cdi_blame(stack, stack.daemon_cdi_names), via=(*via, LEGACY_HOOK))
            return _refuse(LEGACY_HOOK, f"the toolkit is in {stack.mode!r} mode, where the hook refuses --gpus without "
                           "the NVIDIA runtime", (ErrorText(texts.HOOK_REFUSAL_FULL, texts.HOOK),), BLAME_MODE,
                           via=(*via, LEGACY_HOOK))
        p = _legacy_cli(visible.split(",") if visible else [], stack, gpus, LEGACY_HOOK, (*via, LEGACY_HOOK))
        if p.refused:
            return p
        devices.update(p.devices or ())
        via.append(LEGACY_HOOK)
    if not via:
        return Prediction(NONE, False, tuple(sorted(devices)), why="nothing adds a GPU")
    return Prediction(via[-1], False, tuple(sorted(devices)), via=tuple(via), why="")
