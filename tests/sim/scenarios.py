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
    checks: Mapping[str, str] = field(default_factory=dict)  # further expected statuses: check id -> status
    image_env: tuple[str, ...] = ()  # ENV baked into the probe image (`docker import --change 'ENV …'`)
    forms: tuple[str, ...] = ()  # probe forms (--forms); () = gpudoctor's default set; ("all",) = --all-forms
    after_start: Callable[[SimBed], None] | None = None  # what changed after dockerd started
    setup_name: str = ""  # names after_start in the bed key (functions do not compare)
    host_changes: Mapping[str, Any] = field(default_factory=dict)  # hosttree HostSpec fields
    needs_probes: bool = False  # depends on probe containers (issue 5)

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
    """`apt-get install nvidia-container-toolkit` + `nvidia-ctk runtime configure`, no restart."""
    bed.install_toolkit(ToolkitSpec(mode="legacy"))
    bed.dockerd.write_config(NVIDIA_RUNTIME)


def _register_runtime_without_restart(bed: SimBed) -> None:
    """`nvidia-ctk runtime configure --runtime=docker` ran; `systemctl restart docker` did not."""
    bed.dockerd.write_config(NVIDIA_RUNTIME)


def _break_daemon_json(bed: SimBed) -> None:
    """A hand edit left daemon.json invalid; the running daemon still has the old settings."""
    bed.dockerd.write_config('{\n    "runtimes": {\n        "nvidia": {"path": "nvidia-container-runtime", "args": []}\n    },\n}\n')


ONE = SimHost.standard(1)
TWO = SimHost.standard(2)
FOUR = SimHost.standard(4)
EIGHT_MIG = SimHost.standard(8, mig_on=(3,))
LEGACY = ToolkitSpec(mode="legacy")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "healthy-1gpu",
        "(none)",
        "one H100, toolkit in legacy mode, runtime registered: every default form works",
        ONE,
        LEGACY,
        NVIDIA_RUNTIME,
        None,
        checks={"containers.gpus-all": "pass", "containers.runtime-nvidia-env": "pass", "docker.gpu-driver": "pass"},
    ),
    Scenario(
        "healthy-8gpu-mig",
        "(none)",
        "eight H100s, GPU 3 in MIG mode with two 3g.40gb devices, CDI spec with index and UUID names; every form",
        EIGHT_MIG,
        ToolkitSpec(mode="legacy", cdi="index+uuid"),
        NVIDIA_RUNTIME,
        None,
        forms=("all",),
        checks={"containers.mig": "pass", "containers.gpus-device": "pass", "containers.gpus-count": "pass", "nvml.mig": "pass"},
        needs_probes=True,
    ),
    Scenario(
        "toolkit-not-installed",
        "#17 no-gpu-device-driver-in-dockerd",
        "a GPU host with the driver but no NVIDIA Container Toolkit",
        ONE,
        None,
        {},
        "toolkit.installed",
        "apt-get install -y nvidia-container-toolkit",
    ),
)


def by_id(scenario_id: str) -> Scenario:
    return next(s for s in SCENARIOS if s.id == scenario_id)


__all__ = ["Scenario", "SCENARIOS", "by_id", "replace"]
