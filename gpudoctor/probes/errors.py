"""What a probe's failure means: the daemon's / toolkit's exact words mapped to a cause and a fix.

Strings are quoted exactly from the sources named beside each rule (failure-modes.md, docker-gpu-
internals.md §3, and the real H100 log observed-request-forms.log). Matching is by substring or
regex on the whole error text, because runc/containerd wrap hook errors in envelopes that changed
across versions (failure-modes.md §0.2). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import Callable

from ..frozen import frozen
from ..gpu_requests import texts
from ..gpu_requests.texts import HOOK_REFUSAL
from ..install import Distro, TOOLKIT_PACKAGES, module_rebuild, toolkit_install, toolkit_reinstall, toolkit_upgrade, where
from ..links import TOOLKIT_CDI, TOOLKIT_INSTALL, TOOLKIT_TROUBLESHOOTING
from ..model import Fix


@frozen
class Cause:
    id: str  # a failure-mode name from failure-modes.md
    summary: str
    fix: Fix
    layer_check: str | None = None  # the lower-layer check that owns this cause, when there is one
    refusal: bool = False  # Docker/the toolkit refused an invalid request (expected for count > host GPUs)
    # The fix for the host's distro (gpudoctor/install.py), where it installs packages; `fix` is it for no distro.
    fix_for: Callable[[Distro | None], Fix] | None = field(default=None, compare=False, repr=False)

    def fix_on(self, distro: Distro | None) -> Fix:
        """The fix with the package commands of the host's distro (the platform fact's os-release)."""
        return self.fix_for(distro) if self.fix_for is not None else self.fix


def _installing(make: Callable[[Distro | None], Fix], cause_id: str, summary: str, layer_check: str | None) -> Cause:
    """A cause whose fix installs packages: built for the host's distro by `Cause.fix_on`."""
    return Cause(cause_id, summary, make(None), layer_check, fix_for=make)


def _runtime_reinstall_fix(d: Distro | None) -> Fix:
    """The registered runtime's binary is missing (whether by its path or on dockerd's PATH): reinstall it."""
    return Fix(
        f"Reinstall the toolkit so the runtime binary exists, or fix its path in /etc/docker/daemon.json {where(d)}.",
        (*toolkit_reinstall(d), "sudo systemctl restart docker"),
        TOOLKIT_INSTALL,
    )


_RULES: list[tuple[re.Pattern[str], Cause]] = []


def _rule(pattern: str, cause: Cause) -> None:
    _RULES.append((re.compile(pattern, re.S), cause))


# docker-gpu-internals.md §3; seen on the real H100 host with no toolkit.
_rule(
    r'could not select device driver "" with capabilities: \[\[gpu',
    _installing(
        lambda d: Fix(
            f"Install the NVIDIA Container Toolkit, register it with Docker and restart the daemon {where(d)}.",
            # Repository first, for the host's distro (install.py).
            (*toolkit_install(d), "sudo nvidia-ctk runtime configure --runtime=docker", "sudo systemctl restart docker"),
            TOOLKIT_INSTALL,
        ),
        "no-gpu-device-driver-in-dockerd",
        "dockerd has no GPU device driver: nvidia-container-runtime-hook was not on its PATH when it started "
        "(toolkit not installed, or installed after dockerd started)",
        "toolkit.installed",
    ),
)
# docker-gpu-internals.md §3 (≤20.10 and 23.0+ wordings).
_rule(
    r"Unknown runtime specified nvidia|unknown or invalid runtime name: nvidia",
    Cause(
        "runtime-not-registered",
        "the Docker daemon has no runtime named nvidia",
        Fix(
            "Register the NVIDIA runtime in /etc/docker/daemon.json and restart Docker.",
            ("sudo nvidia-ctk runtime configure --runtime=docker", "sudo systemctl restart docker"),
            TOOLKIT_INSTALL + "#configuring-docker",
        ),
        "docker.runtime.nvidia",
    ),
)
# observed-request-forms.log (toolkit in cdi mode, --gpus without --runtime=nvidia).
_rule(
    re.escape(HOOK_REFUSAL),
    Cause(
        "cdi-mode-hook-invoked-directly",
        "the toolkit is in cdi/jit-cdi mode, where --gpus without --runtime=nvidia is not supported",
        Fix(
            "Add --runtime=nvidia to GPU containers, or make nvidia the default runtime, or use CDI names "
            "(--device nvidia.com/gpu=all).",
            (
                "sudo nvidia-ctk runtime configure --runtime=docker --set-as-default",
                "sudo systemctl restart docker",
            ),
            TOOLKIT_CDI,
        ),
        "toolkit.mode",
    ),
)
# docker-gpu-internals.md §3; the CDI spec lacks the name (UUID names need --device-name-strategy).
_rule(
    r"unresolvable CDI devices",
    Cause(
        "cdi-spec-missing-or-unreadable",
        "no CDI spec defines the requested device name",
        Fix(
            "Generate a CDI spec naming GPUs by index and by UUID (and regenerate it after driver or MIG changes).",
            (
                "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml --device-name-strategy=index "
                "--device-name-strategy=uuid",
                "nvidia-ctk cdi list",
            ),
            TOOLKIT_CDI,
        ),
        "cdi.devices",
    ),
)
_rule(
    r'could not select device driver "cdi"',
    Cause(
        "cdi-not-enabled-in-docker",
        "CDI is not enabled in the Docker daemon",
        Fix(
            'Enable CDI in /etc/docker/daemon.json ("features": {"cdi": true}; on by default from Docker 28.2) and '
            "restart Docker.",
            ("sudo nvidia-ctk runtime configure --runtime=docker --cdi.enabled", "sudo systemctl restart docker"),
            "https://docs.docker.com/reference/cli/dockerd/#enable-cdi-devices",
        ),
        "docker.cdi",
    ),
)
_rule(
    r"cannot set both Count and DeviceIDs on device request",
    Cause(
        "gpus-device-list-quoting",
        "the request sets both a count and device ids (usually --gpus device=0,1 without inner quotes)",
        Fix(
            "Quote the device list so it stays one CSV field.",
            ("docker run --gpus '\"device=0,1\"' IMAGE",),
            "https://docs.docker.com/reference/cli/docker/container/run/#gpus",
        ),
    ),
)
# Legacy hook (libnvidia-container) stage errors, failure-modes.md §0.2 regex.
_rule(
    r"nvidia-container-cli(?:\.real)?: device error: .*unknown device",
    Cause(
        "unknown-device",
        "the toolkit does not know the requested device (index or UUID beyond what the host has)",
        Fix(
            "Request GPUs that exist: list them with nvidia-smi -L and use their index or UUID.",
            ("nvidia-smi -L",),
            TOOLKIT_TROUBLESHOOTING,
        ),
        refusal=True,
    ),
)
_rule(
    r"nvidia-container-cli(?:\.real)?: requirement error: unsatisfied condition: (cuda>=[\d.]+)",
    Cause(
        "image-requires-newer-driver",
        "the image needs a newer CUDA driver than the host has",
        Fix(
            "Use an image built for the host's CUDA version, or upgrade the host driver.",
            ("nvidia-smi --query-gpu=driver_version --format=csv,noheader",),
            "https://docs.nvidia.com/deploy/cuda-compatibility/",
        ),
    ),
)
_rule(
    r"nvidia-container-cli(?:\.real)?: initialization error: nvml error: driver/library version mismatch",
    Cause(
        "driver-library-version-mismatch",
        "the NVIDIA libraries and the loaded kernel module differ (driver upgraded without reboot)",
        Fix("Reboot so the new kernel module loads.", ("sudo reboot",), TOOLKIT_TROUBLESHOOTING),
        "nvml.init",
    ),
)
_rule(
    r"nvidia-container-cli(?:\.real)?: initialization error: (?:nvml error: driver not loaded|load library failed)",
    _installing(
        lambda d: Fix(
            f"Load the driver (rebuilding it for the running kernel if modprobe fails) and make sure its libraries "
            f"are installed {where(d)}.",
            ("sudo modprobe nvidia", *module_rebuild(d), "ldconfig -p | grep libnvidia-ml.so.1"),
            TOOLKIT_TROUBLESHOOTING,
        ),
        "kmod-or-nvml-missing",
        "the toolkit could not load the driver (module not loaded or libnvidia-ml.so.1 missing)",
        "nvml.init",
    ),
)
_rule(
    r"cgroup subsystem devices not found",
    _installing(
        lambda d: Fix(
            f"Upgrade the NVIDIA Container Toolkit (cgroup v2 needs libnvidia-container ≥ 1.8) {where(d)}.",
            toolkit_upgrade(d),
            TOOLKIT_TROUBLESHOOTING,
        ),
        "cgroup-v2-unsupported-old-stack",
        "the toolkit is too old for cgroup v2",
        "toolkit.versions",
    ),
)
_rule(
    r'error while looking up the specified runtime path: exec: "([^"]+)": executable file not found',
    _installing(
        _runtime_reinstall_fix,
        "runtime-or-hook-binary-missing",
        "the registered runtime's binary is missing",
        "docker.runtime.nvidia",
    ),
)
_rule(
    r"device_requests param is not supported in API versions < 1\.40",
    Cause(
        "docker-api-too-old",
        "the Docker API is older than 1.40, which has no DeviceRequests (--gpus)",
        Fix("Upgrade Docker Engine to 19.03 or newer.", ("docker version",), "https://docs.docker.com/engine/install/"),
        "docker.api-version",
    ),
)
_rule(
    r"No such image|not found: manifest unknown|pull access denied",
    Cause(
        "probe-image-missing",
        "the probe image is not available",
        Fix("Pull the image, or pass an image that is present with --image.", ("docker pull IMAGE",), None),
    ),
)

# Docker 29 with no NVIDIA hook found at start (gpu_requests/texts.py; real stack).
# With no spec at all, no vendor is found: on a host without the toolkit that is the toolkit's absence (real
# stack, Docker 29.7 with neither hook); the "could not select device driver" rule above says the same for 20.10.
_rule(
    re.escape(texts.NO_GPU_VENDOR),
    _installing(
        lambda d: Fix(
            "Install the NVIDIA Container Toolkit, generate its CDI spec and restart dockerd so it finds the hooks "
            f"{where(d)}.",
            (*toolkit_install(d),
             "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml",
             "sudo systemctl restart docker"),
            TOOLKIT_INSTALL,
        ),
        "no-gpu-device-driver-in-dockerd",
        "dockerd has no NVIDIA GPU driver: Docker 29 found no NVIDIA hook at start and no CDI spec to guess one from",
        "toolkit.installed",
    ),
)
_rule(
    re.escape(texts.AMD_SPEC_NOT_FOUND),
    Cause(
        "no-gpu-device-driver-in-dockerd",
        "dockerd found no NVIDIA hook on its PATH when it started, so Docker 29 guesses the GPU vendor from CDI and fails",
        Fix(
            "Restart dockerd after installing the toolkit so it finds nvidia-cdi-hook / nvidia-container-runtime-hook "
            "(or request CDI names: --device nvidia.com/gpu=all).",
            ("sudo systemctl restart docker",),
            TOOLKIT_INSTALL,
        ),
        "docker.gpu-driver",
    ),
)
# The 1.18+ hook's --cuda-compat-mode under an older nvidia-container-cli (real stack: the kits' 1.20/1.17 skew).
_rule(
    re.escape(texts.CLI_SKEW),
    _installing(
        lambda d: Fix(
            f"Install matching versions of nvidia-container-toolkit and libnvidia-container-tools {where(d)}.",
            toolkit_upgrade(d, TOOLKIT_PACKAGES),
            TOOLKIT_INSTALL,
        ),
        "toolkit-package-version-skew",
        "nvidia-container-cli (libnvidia-container-tools) is older than the NVIDIA hook that calls it",
        "toolkit.versions",
    ),
)
# config.toml's ldconfig names a binary that is not there (real stack).
_rule(
    r"open failed: (\S+): no such file or directory",
    Cause(
        "ldconfig-path-wrong",
        "config.toml's nvidia-container-cli.ldconfig points at a binary that does not exist",
        Fix(
            "Point ldconfig at the host's ldconfig ('@/sbin/ldconfig' on Debian/Ubuntu, '@/sbin/ldconfig.real' on some).",
            ('sudo nvidia-ctk config --in-place --set nvidia-container-cli.ldconfig="@/sbin/ldconfig"',),
            TOOLKIT_TROUBLESHOOTING,
        ),
        "toolkit.config",
    ),
)
# A CDI spec naming files that are gone (a driver upgrade without regenerating; real stack).
_rule(
    r"(?:fulfil mount request: )?open (/\S+): no such file or directory",
    Cause(
        "cdi-spec-stale",
        "the CDI spec names host files that no longer exist (the driver changed since it was generated)",
        Fix(
            "Regenerate the CDI spec.",
            ("sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml --device-name-strategy=index "
             "--device-name-strategy=uuid", "nvidia-ctk cdi list"),
            TOOLKIT_CDI,
        ),
        "cdi.stale",
    ),
)
# The runtime's binary is not on dockerd's PATH (real stack: containerd's/runc's words).
_rule(
    r'exec: "(nvidia-container-runtime[^"]*)": executable file not found',
    _installing(
        _runtime_reinstall_fix,
        "runtime-or-hook-binary-missing",
        "the registered nvidia runtime's binary is not on dockerd's PATH",
        "docker.runtime.nvidia",
    ),
)


UNKNOWN = Cause(
    "unrecognised",
    "Docker refused the container with an error gpudoctor does not recognise",
    Fix("Read the error; `gpudoctor explain` and the toolkit's troubleshooting guide list known texts.", (), TOOLKIT_TROUBLESHOOTING),
)


# Conditions the behaviour model can blame that no error text belongs to alone.
_FIXES_BY_CHECK = {
    "cdi.specs": Fix(
        "Generate the NVIDIA CDI spec (index and UUID names), into a directory the daemon and the runtime read.",
        ("sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml --device-name-strategy=index "
         "--device-name-strategy=uuid", "nvidia-ctk cdi list"),
        TOOLKIT_CDI,
    ),
}


def cause_for_blame(check_id: str, why: str) -> Cause:
    """A cause for a refusal the behaviour model explains (gpu_requests/behaviour.py): the fix of the check's own
    condition, else of the first rule owned by the same check."""
    owner = next((c for _p, c in _RULES if c.layer_check == check_id), None)
    own = _FIXES_BY_CHECK.get(check_id)
    fix = own or (owner.fix if owner else UNKNOWN.fix)
    fix_for = owner.fix_for if owner is not None and own is None else None
    return Cause(owner.id if owner else "predicted", why or (owner.summary if owner else UNKNOWN.summary), fix, check_id,
                 fix_for=fix_for)


def classify(error: str) -> Cause:
    for pattern, cause in _RULES:
        if pattern.search(error):
            return cause
    return UNKNOWN


def strip_envelope(error: str) -> str:
    """The meaningful tail of a wrapped hook error (what follows "stderr: "), for one-line summaries."""
    tail = error.split("stderr: ", 1)[-1] if "stderr: " in error else error
    tail = re.sub(r"\s+", " ", tail).strip()
    return re.sub(r": unknown\.?$", "", tail)
