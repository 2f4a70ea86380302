"""The scenario library: named broken (and healthy) hosts from docs/failure-modes.md, each with the
verdict gpudoctor must reach on it.

A scenario is a simulated host (`SimHost`), the stand-in toolkit it has (`ToolkitSpec`, or None),
the daemon.json its dockerd runs with, optionally what changed after dockerd started (`after_start`,
e.g. the toolkit installed later, or daemon.json edited without a restart), the probe image and
forms, and the expectation: the verdict's root-cause check id (None = ready) and a substring of the
fix. `tests/test_scenarios.py` runs each one through the real `gpudoctor check --root <tree>
--format json` against a real private dockerd; scenarios whose bed is identical share one daemon
(`Scenario.bed_key`).

Adding one: pick the failure mode, build the host the way it really breaks (no shortcut that a
real host could not show), run it, and check that the verdict is the one a person fixing that
host would want before writing it down here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from tests.sim.bed import NVIDIA_RUNTIME, SimBed
from tests.sim.host import SimHost
from tests.sim.toolkit import ToolkitSpec

DEFAULT_NVIDIA = {**NVIDIA_RUNTIME, "default-runtime": "nvidia"}


@dataclass(frozen=True)
class Scenario:
    id: str
    failure_mode: str  # the docs/failure-modes.md entry ("#17 no-gpu-device-driver-in-dockerd")
    summary: str
    host: SimHost
    toolkit: ToolkitSpec | None
    daemon: Mapping[str, Any]
    root_cause: str | None  # expected verdict root cause; None: the host is ready
    fix: str | None = None  # substring of the verdict's fix (summary, commands or link)
    # further expectations: check id -> status, or (status, substring of one of its result summaries/details)
    checks: Mapping[str, Any] = field(default_factory=dict)
    image_env: tuple[str, ...] = ()  # ENV baked into the probe image (`docker import --change 'ENV …'`)
    forms: tuple[str, ...] = ()  # probe forms (--forms); () = gpudoctor's default set; ("all",) = --all-forms
    after_start: Callable[[SimBed], None] | None = None  # what changed after dockerd started
    setup_name: str = ""  # names after_start in the bed key (functions do not compare)
    host_changes: Mapping[str, Any] = field(default_factory=dict)  # hosttree HostSpec fields
    xfail: str | None = None  # reason, while a known gap keeps the scenario from passing

    @property
    def bed_key(self) -> str:
        """Scenarios with equal keys run on one shared bed (same tree, toolkit, daemon, setup)."""
        return json.dumps(
            [
                self.host.to_json(),
                repr(self.toolkit),
                dict(self.daemon),
                dict(self.host_changes),
                self.setup_name,
            ],
            sort_keys=True,
            default=str,
        )

    @property
    def image(self) -> str:
        if not self.image_env:
            return "probe:busybox"
        return "sim:" + "-".join(e.split("=", 1)[0].lower().replace("nvidia_", "").replace("_", "") for e in self.image_env)

    def gpudoctor_args(self) -> list[str]:
        args = ["--image", self.image]
        if self.forms == ("all",):
            args.append("--all-forms")
        elif self.forms:
            args += ["--forms", ",".join(self.forms)]
        return args


# -- what changes after dockerd started ----------------------------------------------------------------
def _install_toolkit_later(bed: SimBed) -> None:
    """`apt-get install nvidia-container-toolkit` a while after dockerd started, no restart.

    dockerd's start time is read from /proc in whole-second btime units, and gpudoctor allows for
    that rounding; a package installed within a second or two of the daemon's start is not
    distinguishable from one installed before it, so the install happens 2.5 s after the start."""
    import time

    started = bed.dockerd.started_at or time.time()
    time.sleep(max(0.0, started + 2.5 - time.time()))
    bed.install_toolkit(ToolkitSpec(mode="legacy"))


def _register_runtime_without_restart(bed: SimBed) -> None:
    """`nvidia-ctk runtime configure --runtime=docker` ran; `systemctl restart docker` did not."""
    bed.dockerd.write_config(NVIDIA_RUNTIME)


def _break_daemon_json(bed: SimBed) -> None:
    """A hand edit left a trailing comma in daemon.json; the running daemon still has the old settings."""
    bed.dockerd.write_config('{\n    "runtimes": {\n        "nvidia": {"args": [], "path": "nvidia-container-runtime"}\n    },\n}\n')


def _daemon_json_directory(bed: SimBed) -> None:
    """`mkdir -p /etc/docker/daemon.json` (a config-management slip) while dockerd ran: it cannot restart."""
    path = bed.dockerd.config_path
    path.unlink()
    path.mkdir()


def _daemon_json_symlink_loop(bed: SimBed) -> None:
    """daemon.json replaced by a symlink to itself while dockerd ran: open() fails with ELOOP at the next start."""
    path = bed.dockerd.config_path
    path.unlink()
    path.symlink_to(path.name)


ONE = SimHost.standard(1)
TWO = SimHost.standard(2)
FOUR = SimHost.standard(4)
EIGHT_MIG = SimHost.standard(8, mig_on=(3,))
LEGACY = ToolkitSpec(mode="legacy")
CDI_FULL = ToolkitSpec(mode="cdi", cdi="index+uuid")
NO_RUNTIME_BINARY = tuple(b for b in LEGACY.binaries if b != "nvidia-container-runtime")

SCENARIOS: tuple[Scenario, ...] = (
    # -- healthy hosts ----------------------------------------------------------------------------------
    Scenario(
        "healthy-1gpu",
        "(healthy)",
        "one H100, toolkit in legacy mode, runtime registered: every default form works",
        ONE,
        LEGACY,
        NVIDIA_RUNTIME,
        None,
        checks={"containers.gpus-all": "pass", "containers.runtime-nvidia-env": "pass", "docker.gpu-driver": "pass"},
    ),
    Scenario(
        "healthy-8gpu-mig",
        "(healthy)",
        "eight H100s, GPU 3 in MIG mode with two 3g.40gb devices, CDI spec with index and UUID names; every form",
        EIGHT_MIG,
        ToolkitSpec(mode="legacy", cdi="index+uuid"),
        NVIDIA_RUNTIME,
        None,
        forms=("all",),
        checks={
            "nvml.mig": "pass",
            "containers.mig": ("pass", EIGHT_MIG.gpus[3].migs[1].uuid),
            # Two containers per per-GPU form (issue 12), and the report says so.
            "containers.gpus-device": ("pass", "(GPUs 0–7 in one request): saw GPU 0"),
            "containers.gpus-count": "pass",
            "containers.capabilities": "pass",
        },
    ),
    Scenario(
        "healthy-jit-cdi",
        "(healthy)",
        "toolkit 1.18.2 in its default auto mode (jit-cdi for the runtime, legacy for the --gpus hook)",
        TWO,
        ToolkitSpec(mode="auto", version="1.18.2"),
        NVIDIA_RUNTIME,
        None,
        checks={"containers.gpus-all": "pass", "containers.sdk-runtime-nvidia": "pass", "toolkit.versions": "pass"},
    ),
    # -- toolkit and daemon -------------------------------------------------------------------------------
    Scenario(
        "toolkit-not-installed",
        "#17 no-gpu-device-driver-in-dockerd",
        "a GPU host with the driver but no NVIDIA Container Toolkit",
        ONE,
        None,
        {},
        "toolkit.installed",
        "apt-get install -y nvidia-container-toolkit",
        # Root cause first: the probes that would fail are skipped as blocked by the missing toolkit.
        checks={"containers.gpus-all": ("skip", "blocked by toolkit.installed"), "docker.reachable": "pass"},
    ),
    Scenario(
        "toolkit-installed-after-dockerd",
        "#17 no-gpu-device-driver-in-dockerd",
        "the toolkit was installed while dockerd ran: dockerd registered no --gpus driver at its start",
        ONE,
        None,
        {},
        "docker.gpu-driver",
        "systemctl restart docker",
        checks={"containers.gpus-all": ("fail", 'could not select device driver "" with capabilities: [[gpu]]')},
        after_start=_install_toolkit_later,
        setup_name="install-toolkit-later",
    ),
    Scenario(
        "runtime-registered-not-restarted",
        "#18 runtime-not-registered",
        "`nvidia-ctk runtime configure` wrote daemon.json, but dockerd was not restarted",
        ONE,
        LEGACY,
        {},
        "docker.daemon-json.drift",
        "systemctl restart docker",
        checks={"containers.runtime-nvidia-env": ("fail", "Unknown runtime specified nvidia"), "containers.gpus-all": "pass"},
        after_start=_register_runtime_without_restart,
        setup_name="register-runtime-no-restart",
    ),
    Scenario(
        "runtime-binary-missing",
        "#19 runtime-or-hook-binary-missing",
        "daemon.json makes `nvidia` the default runtime, but nvidia-container-runtime was removed: every container fails",
        ONE,
        replace(LEGACY, binaries=NO_RUNTIME_BINARY),
        DEFAULT_NVIDIA,
        "docker.runtime.nvidia",
        "nvidia-container-toolkit",
        checks={"containers.baseline": "fail"},
    ),
    Scenario(
        "daemon-json-invalid",
        "#20 daemon-json-conflict-or-invalid",
        "daemon.json was edited into invalid JSON while dockerd ran: the next restart will fail",
        ONE,
        LEGACY,
        NVIDIA_RUNTIME,
        "docker.daemon-json",
        None,
        after_start=_break_daemon_json,
        setup_name="break-daemon-json",
    ),
    Scenario(
        "daemon-json-directory",
        "#20 daemon-json-conflict-or-invalid",
        "daemon.json became a directory while dockerd ran: the running daemon works, the next start fails",
        ONE,
        LEGACY,
        NVIDIA_RUNTIME,
        "docker.daemon-json",
        "sudo mv /etc/docker/daemon.json /etc/docker/daemon.json.broken",
        checks={"docker.daemon-json": ("fail", "is a directory")},
        after_start=_daemon_json_directory,
        setup_name="daemon-json-directory",
    ),
    Scenario(
        "daemon-json-symlink-loop",
        "#20 daemon-json-conflict-or-invalid",
        "daemon.json became a symlink loop while dockerd ran: the next start fails (ELOOP)",
        ONE,
        LEGACY,
        NVIDIA_RUNTIME,
        "docker.daemon-json",
        "sudo mv /etc/docker/daemon.json /etc/docker/daemon.json.broken",
        checks={"docker.daemon-json": ("fail", "Too many levels of symbolic links")},
        after_start=_daemon_json_symlink_loop,
        setup_name="daemon-json-symlink-loop",
    ),
    Scenario(
        "cdi-mode-gpus-without-runtime",
        "#42 tegra-csv-mode (cdi mode on a desktop host)",
        "toolkit in cdi mode, nvidia runtime not registered: `--gpus` is refused by the hook",
        ONE,
        CDI_FULL,
        {},
        "toolkit.mode",
        "nvidia-container-runtime.mode=auto",
        checks={
            "containers.gpus-all": (
                "fail",
                "invoking the NVIDIA Container Runtime Hook directly (e.g. specifying the docker --gpus flag) is not supported",
            ),
        },
    ),
    Scenario(
        "default-runtime-not-nvidia",
        "#42 tegra-csv-mode / #45 (runtime registered, not default)",
        "toolkit in cdi mode, nvidia registered but runc is the default runtime: plain `--gpus` fails, `--runtime=nvidia` works",
        TWO,
        CDI_FULL,
        NVIDIA_RUNTIME,
        "toolkit.mode",
        "--set-as-default",
        checks={"containers.sdk-runtime-nvidia": "pass", "containers.runtime-nvidia-env": "pass", "containers.gpus-all": "fail"},
    ),
    # -- CDI -------------------------------------------------------------------------------------------
    Scenario(
        "cdi-mode-default-runtime",
        "#26 cdi-spec-missing-or-unreadable",
        "toolkit in cdi mode, nvidia the default runtime, nvidia-ctk's default index-only spec: the default forms "
        "work, but in cdi mode every request by UUID resolves through the spec, so the missing UUID names are the finding",
        TWO,
        ToolkitSpec(mode="cdi", cdi="index"),
        DEFAULT_NVIDIA,
        "cdi.devices",
        "--device-name-strategy=uuid",
        checks={"containers.gpus-all": "pass", "cdi.devices": "fail"},
    ),
    Scenario(
        "cdi-spec-without-uuid-names",
        "#26 cdi-spec-missing-or-unreadable",
        "cdi mode with nvidia-ctk's default spec (index names only): a request by UUID is unresolvable",
        TWO,
        ToolkitSpec(mode="cdi", cdi="index"),
        DEFAULT_NVIDIA,
        "cdi.devices",
        "--device-name-strategy=uuid",
        forms=("gpus-all", "gpus-device-uuid"),
        # The probe confirms the finding with the real error text, under the lower layer's root cause.
        checks={"containers.gpus-device": ("fail", f"unresolvable CDI devices nvidia.com/gpu={TWO.gpus[0].uuid}"), "cdi.devices": "fail"},
    ),
    Scenario(
        "cdi-spec-stale",
        "#27 cdi-spec-stale",
        "the CDI spec was generated for the previous driver (570.133.20): its library paths are gone",
        TWO,
        ToolkitSpec(mode="cdi", cdi="stale", stale_driver="570.133.20"),
        DEFAULT_NVIDIA,
        "cdi.stale",
        "nvidia-ctk cdi generate",
        checks={"containers.gpus-all": ("fail", "libcuda.so.570.133.20")},
    ),
    Scenario(
        "cdi-spec-missing",
        "#26 cdi-spec-missing-or-unreadable",
        "cdi mode but no CDI spec was ever generated: `unresolvable CDI devices nvidia.com/gpu=all`",
        TWO,
        ToolkitSpec(mode="cdi"),
        DEFAULT_NVIDIA,
        "cdi.specs",
        "nvidia-ctk cdi generate",
        checks={"containers.gpus-all": ("fail", "unresolvable CDI devices nvidia.com/gpu=all")},
    ),
    Scenario(
        "one-gpu-missing-from-containers",
        "#27 cdi-spec-stale (a GPU added after the spec was generated)",
        "four GPUs, but the CDI spec was generated when the host had three: containers asking for all get three",
        FOUR,
        ToolkitSpec(mode="cdi", cdi="index+uuid", cdi_host=FOUR.without_gpu(3)),
        DEFAULT_NVIDIA,
        "cdi.devices",
        "nvidia-ctk cdi generate",
        checks={"containers.gpus-all": ("fail", "missing GPU 3")},
    ),
    Scenario(
        "one-gpu-missing-per-gpu-forms",
        "#27 cdi-spec-stale (a GPU added after the spec was generated)",
        "the same host, probed by index and UUID: GPU 0 alone works, and the one request naming all four GPUs is "
        "refused for the spec's missing GPU 3, which the finding names (issue 12: two containers per form)",
        FOUR,
        ToolkitSpec(mode="cdi", cdi="index+uuid", cdi_host=FOUR.without_gpu(3)),
        DEFAULT_NVIDIA,
        "cdi.devices",
        "nvidia-ctk cdi generate",
        forms=("gpus-all", "gpus-device-index", "gpus-device-uuid"),
        checks={"containers.gpus-device": ("fail", "the refusal names GPU 3")},
    ),
    Scenario(
        "cdi-mode-count-over-refused",
        "#46 gpus-count-is-not-index (cdi mode)",
        "cdi mode, nvidia default: `--gpus 3` on 2 GPUs is refused as `unresolvable CDI devices nvidia.com/gpu=2`, which is"
        " the expected refusal, not a spec problem",
        TWO,
        CDI_FULL,
        DEFAULT_NVIDIA,
        None,
        forms=("gpus-count-over", "gpus-count-host", "gpus-device-uuid", "mig"),
        checks={"containers.gpus-count": ("pass", "unresolvable CDI devices nvidia.com/gpu=2"), "containers.gpus-device": "pass"},
    ),
    # -- requests -------------------------------------------------------------------------------------
    Scenario(
        "gpus-count-is-not-index",
        "#46 gpus-count-is-not-index",
        "`--gpus 1` on a 4-GPU host is a count: the container gets GPU 0, and `--gpus 5` is refused",
        FOUR,
        LEGACY,
        DEFAULT_NVIDIA,
        None,
        forms=("gpus-count-1", "gpus-count-over", "gpus-device-index"),
        checks={"containers.gpus-count": ("pass", f"--gpus 1: saw GPU 0 ({FOUR.gpus[0].uuid})"), "containers.gpus-device": "pass"},
    ),
    Scenario(
        "image-bakes-visible-devices-all",
        "#50 visible-devices-semantics",
        "default runtime nvidia + an image with ENV NVIDIA_VISIBLE_DEVICES=all: a container that asks for nothing gets every GPU",
        FOUR,
        LEGACY,
        DEFAULT_NVIDIA,
        "containers.baseline",
        "NVIDIA_VISIBLE_DEVICES=void",
        image_env=("NVIDIA_VISIBLE_DEVICES=all",),
    ),
    Scenario(
        "utility-capability-missing",
        "#36 driver-capabilities-wrong",
        "the image sets NVIDIA_DRIVER_CAPABILITIES=compute: GPUs are injected but nvidia-smi is not",
        FOUR,
        LEGACY,
        DEFAULT_NVIDIA,
        None,
        image_env=("NVIDIA_DRIVER_CAPABILITIES=compute",),
        forms=("baseline", "gpus-all", "caps-compute-utility"),
        checks={"containers.gpus-all": ("warn", "nvidia-smi"), "containers.capabilities": "pass"},
    ),
    # -- host layers under the toolkit -------------------------------------------------------------------
    Scenario(
        "kernel-module-not-loaded",
        "#6 kmod-not-loaded",
        "the nvidia module is not loaded (e.g. a kernel update without a DKMS rebuild): NVML says Driver Not Loaded",
        replace(ONE, nvml_init_error=9),
        LEGACY,
        NVIDIA_RUNTIME,
        "kernel.module.loaded",
        "modprobe nvidia",
    ),
    Scenario(
        "uvm-module-not-loaded",
        "#10 uvm-or-control-nodes-missing",
        "nvidia_uvm not loaded on a headless host: no /dev/nvidia-uvm, so CUDA fails in containers",
        replace(ONE, uvm_nodes=False),
        LEGACY,
        NVIDIA_RUNTIME,
        "kernel.module.loaded",
        "nvidia-modprobe -u",
    ),
    Scenario(
        "driver-library-mismatch",
        "#8 driver-library-version-mismatch",
        "the driver packages were upgraded under a loaded kernel module",
        replace(ONE, nvml_init_error=18),
        LEGACY,
        NVIDIA_RUNTIME,
        "nvml.init",
        "sudo reboot",
    ),
    Scenario(
        "gpu-fell-off-the-bus",
        "#3 gpu-lost-xid79",
        "GPU 1 of two is lost (Xid 79): NVML cannot open it",
        TWO.with_gpu(1, handle_error=15),
        LEGACY,
        NVIDIA_RUNTIME,
        "nvml.gpus",
        "reboot",
    ),
)


def by_id(scenario_id: str) -> Scenario:
    return next(s for s in SCENARIOS if s.id == scenario_id)


__all__ = ["Scenario", "SCENARIOS", "by_id"]
