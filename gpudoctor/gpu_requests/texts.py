"""The exact words the engine, the NVIDIA hook, the NVIDIA runtime and nvidia-container-cli refuse a GPU request
with — one home for each, quoted from the source named beside it. The behaviour model predicts them, the probe
classifier (gpudoctor/probes/errors.py) recognises them, explain quotes them.

"real stack" = seen on the GPU machine with Docker 20.10 / 29.7.2, toolkit 1.20.0 and libnvidia-container 1.17.0
(tests/fixtures/real-h200-*/, recorded by scripts/real_stack_matrix.py).
"""

from __future__ import annotations

from typing import Any, Sequence

from .request import ErrorText

# The NVIDIA hook in cdi/jit-cdi mode (toolkit cmd/nvidia-container-runtime-hook: assertModeIsLegacy); real stack.
HOOK_REFUSAL = "invoking the NVIDIA Container Runtime Hook directly (e.g. specifying the docker --gpus flag) is not supported"
HOOK_REFUSAL_FULL = f"{HOOK_REFUSAL}. Please use the NVIDIA Container Runtime (e.g. specify the --runtime=nvidia flag) instead"

# Docker ≥ 29 with CDI on and no NVIDIA hook found on dockerd's PATH at start (real stack: with an NVIDIA CDI spec
# present the vendor guess lands on AMD; with no spec at all the discovery fails; ../shared/kits/README.md).
AMD_SPEC_NOT_FOUND = "AMD CDI spec not found"
NO_GPU_VENDOR = "failed to discover GPU vendor from CDI: no known GPU vendor found"

# moby daemon/daemon_unix.go / errdefs: the create-time refusal of an unregistered runtime, by engine.
UNKNOWN_RUNTIME_OLD = "Unknown runtime specified {name}"  # ≤ 20.10 (real stack)
UNKNOWN_RUNTIME_NEW = "unknown or invalid runtime name: {name}"  # 23.0+ (real stack, 29.7)

# Both Count and DeviceIDs in one request (moby daemon/nvidia_linux.go).
BOTH_COUNT_AND_IDS = "cannot set both Count and DeviceIDs on device request"

# A DeviceRequest the daemon cannot decode (a flat capability list, numeric ids): 20.10 (HTTP 500) and 29.7 (HTTP
# 400, with the element's position; the first request's first element here) word it differently (real daemons,
# tests/test_explain_docker.py).
DECODE_CAPS_FLAT = ("json: cannot unmarshal string into Go struct field DeviceRequest.HostConfig.DeviceRequests.Capabilities of type []string",
                    "invalid JSON: json: cannot unmarshal string into .HostConfig.DeviceRequests.0.Capabilities.0 of type []string")
DECODE_IDS_NOT_STRINGS = ("json: cannot unmarshal number into Go struct field DeviceRequest.HostConfig.DeviceRequests.DeviceIDs of type string",
                          "invalid JSON: json: cannot unmarshal number into .HostConfig.DeviceRequests.0.DeviceIDs.0 of type string")

# dockerd's CDI injection (moby daemon/cdi.go) and the NVIDIA runtime's in cdi mode (toolkit internal/modifier/cdi.go).
UNRESOLVABLE_CDI = "unresolvable CDI devices"
# A spec naming a host file that is gone (a driver upgrade without `nvidia-ctk cdi generate`); real stack, 29.7.
CDI_OPEN_MISSING = "open {path}: no such file or directory"

# nvidia-container-cli (libnvidia-container) under the legacy hook; real stack.
CLI_UNKNOWN_DEVICE = "nvidia-container-cli: device error: {token}: unknown device"
# A 1.18+ hook passes --cuda-compat-mode, which nvidia-container-cli < 1.18 does not know (real stack, the kits' skew).
CLI_SKEW = "nvidia-container-cli configure: unrecognized option '--cuda-compat-mode="
CLI_LDCONFIG_MISSING = "open failed: {path}: no such file or directory"
# The runtime's automatic/JIT CDI generator asked for a GPU index NVML does not have (real stack, mode auto/jit-cdi).
JIT_NO_SUCH_INDEX = "failed to get device handle from index: Invalid Argument"

# The runtime's binary is not on dockerd's PATH (runc/containerd, real stack 29.7).
RUNTIME_BINARY_MISSING = 'exec: "{binary}": executable file not found in $PATH'

# docker CLI < 25 reads `--device nvidia.com/gpu=…` as a host path (real stack, docker CLI 20.10).
CLI_CDI_NOT_A_PATH = "{name} is not an absolute path."

# dockerd refuses to start (real stack): 20.10 wraps it in "unable to configure the Docker daemon with file …:
# configuration validation from file failed: …"; 29.7 says "failed to start daemon: …".
DEFAULT_RUNTIME_MISSING = "specified default runtime '{name}' does not exist"

# Daemon sources named in ErrorText.source.
DAEMON_CREATE = "dockerd (container create)"
DAEMON_START = "dockerd (container start)"
HOOK = "the NVIDIA hook (container start)"
CLI_VIA_HOOK = "nvidia-container-cli via the NVIDIA hook (container start)"
RUNTIME = "nvidia-container-runtime (container create)"


def go_slice_repr(v: Any) -> str:
    """Go's %v of a []string / [][]string: `[[gpu]]`, `[a b]`, `[]` for nil."""
    if v is None:
        return "[]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_slice_repr(x) for x in v) + "]"
    return str(v)


def could_not_select(driver: str, caps: Any) -> str:
    """moby daemon/errors.go incompatibleDeviceRequest: `could not select device driver %q with capabilities: %v`."""
    return f'could not select device driver "{driver}" with capabilities: {go_slice_repr(caps)}'


def unknown_runtime(name: str, engine: tuple[int, ...] | None) -> tuple[ErrorText, ...]:
    """This engine's wording first; both when the engine is unknown."""
    new = ErrorText(UNKNOWN_RUNTIME_NEW.format(name=name), DAEMON_CREATE, "23.0+")
    old = ErrorText(UNKNOWN_RUNTIME_OLD.format(name=name), DAEMON_CREATE, "<= 20.10")
    if engine is None:
        return (new, old)
    return (new,) if engine >= (23,) else (old,)


def unresolvable(names: Sequence[str], source: str = DAEMON_START) -> ErrorText:
    return ErrorText(f"{UNRESOLVABLE_CDI} {', '.join(names)}", source)
