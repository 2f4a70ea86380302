"""What hardening the probes get on a simulated NVIDIA host, and that the injected tools still work (issue 14).

Real dockerd, the stand-in toolkit (tests/sim/): `--gpus` goes through the stand-in hook, `--runtime=nvidia`
through the stand-in runtime, both injecting device nodes and a read-only bind mount of nvidia-smi. What a
real NVIDIA hook does under a read-only rootfs cannot be tried here; hence GPU probes keep a writable rootfs
(gpudoctor/probes/runner.py `hardening_for`), and each outcome records what was applied.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gpudoctor.probes import runner
from tests.sim.bed import NVIDIA_RUNTIME
from tests.sim.fixtures import sim_beds  # noqa: F401  (pytest fixture)
from tests.sim.host import SimHost
from tests.sim.toolkit import ToolkitSpec

pytestmark = pytest.mark.docker

FORMS = "baseline,gpus-all,runtime-nvidia-env,caps-utility"


def _probes(bed) -> dict:
    proc = subprocess.run([sys.executable, "-m", "gpudoctor", "facts", "--image", bed.image, "--forms", FORMS,
                           "--root", str(bed.root)], env=bed.env(), cwd="/", capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["facts"]["probes"]


def _report(bed) -> dict:
    return {c["id"]: c for c in bed.check_json("--image", bed.image, "--forms", FORMS)["checks"]}


def test_gpu_probes_run_as_nobody_where_the_device_nodes_allow_it(sim_beds):  # noqa: F811
    """Device nodes 0666 (the driver's default): every probe runs as 65534:65534; the probe without a
    GPU request also gets a read-only rootfs; GPU probes keep a writable one. The injected nvidia-smi and
    device nodes work for the unprivileged user: every form passes."""
    bed = sim_beds.shared(SimHost.standard(2), ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME)
    probes = _probes(bed)
    outcomes = probes["outcomes"]
    assert set(outcomes) >= {"baseline", "gpus-all", "runtime-nvidia-env"}
    for key, outcome in outcomes.items():
        applied = outcome["hardening"]
        assert applied["user"] == runner.PROBE_USER, key
        assert applied["read_only_rootfs"] is (key == "baseline"), key
        assert applied["nano_cpus"] == runner.PROBE_NANO_CPUS and applied["cap_drop"] == "ALL", key
    assert "@@smi-L 0" in outcomes["gpus-all"]["output"]  # nvidia-smi -L worked as nobody
    checks = _report(bed)
    for cid in ("containers.baseline", "containers.gpus-all", "containers.runtime-nvidia-env", "containers.capabilities"):
        assert checks[cid]["status"] == "pass", checks[cid]


def test_probes_keep_the_image_user_where_device_nodes_are_not_open(sim_beds):  # noqa: F811
    """Device nodes 0660 (NVreg_DeviceFileMode): a non-root probe would see "Insufficient Permissions"
    where the user's root containers work, so the probes keep the image's user, and say why."""
    bed = sim_beds.shared(SimHost.standard(2), ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME,
                          host_changes={"node_mode": 0o660})
    outcomes = _probes(bed)["outcomes"]
    for key, outcome in outcomes.items():
        applied = outcome["hardening"]
        assert applied["user"] is None and "not open to every user" in applied["user_why"], key
        assert applied["read_only_rootfs"] is (key == "baseline"), key
