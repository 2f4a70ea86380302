"""The test bed end to end: a real private dockerd, the stand-in toolkit, busybox containers.

Each expectation is what the real toolkit did on the H100 host
(tests/fixtures/real-h100-docker20-toolkit-cdi/observed-request-forms.log) or what
docs/failure-modes.md quotes; the error texts are compared exactly where the real ones are known.
Each test runs on each engine (tests/support/engines.py): the stand-in toolkit is engine-independent,
the daemon's envelopes and refusals are the engine's own.
"""

from __future__ import annotations

import re

import pytest

from tests.sim.bed import NVIDIA_RUNTIME, SimBed, bed_or_skip
from tests.sim.host import SimHost
from tests.sim.toolkit import ToolkitSpec

pytestmark = pytest.mark.docker

LIST = "ls -ln /dev/nvidia* /dev/nvidia-caps/* 2>/dev/null; echo @@; nvidia-smi -L 2>&1; echo rc=$?"
# What the hook / the runtime print; the engine wraps them in its envelope (Engine.hook_error / runtime_error).
CDI_HOOK_REFUSAL = (
    "Using requested mode 'cdi'\ninvoking the NVIDIA Container Runtime Hook directly (e.g. specifying"
    " the docker --gpus flag) is not supported. Please use the NVIDIA Container Runtime (e.g. specify the"
    " --runtime=nvidia flag) instead"
)
UNRESOLVABLE = (
    "could not apply required modification to OCI specification: error modifying OCI spec: failed to inject CDI devices:"
    " unresolvable CDI devices "
)
HOST = SimHost.standard(2, mig_on=(1,))


def nodes(out: str) -> dict[str, tuple[int, int]]:
    found = {}
    for line in out.split("@@")[0].splitlines():
        m = re.match(r"^c\S*\s+\d+\s+\d+\s+\d+\s+(\d+),\s*(\d+)\s.*?(\S+)$", line.strip())
        if m:
            found[m.group(3).rsplit("/", 1)[-1]] = (int(m.group(1)), int(m.group(2)))
    return found


def smi(out: str) -> list[str]:
    return [line for line in out.split("@@", 1)[1].splitlines() if line.startswith(("GPU ", "  MIG"))]


def error(proc) -> str:
    """The daemon's message as the CLI prints it, without the `docker: Error response from daemon: ` prefix."""
    text = proc.stderr.split("Error response from daemon: ", 1)[-1]
    return text.split("\n\nRun 'docker run --help'")[0].strip().rstrip(".")


@pytest.fixture(scope="module")
def legacy(tmp_path_factory, docker_engine):
    bed_or_skip()
    with SimBed.create(tmp_path_factory.mktemp("legacy"), HOST, ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME,
                       engine=docker_engine) as bed:
        yield bed


@pytest.fixture(scope="module")
def cdi(tmp_path_factory, docker_engine):
    bed_or_skip()
    with SimBed.create(tmp_path_factory.mktemp("cdi"), HOST, ToolkitSpec(mode="cdi", cdi="index"), NVIDIA_RUNTIME,
                       engine=docker_engine) as bed:
        yield bed


def test_no_request_gets_no_gpu(legacy):
    out = legacy.run(cmd=["sh", "-c", LIST])
    assert out.returncode == 0, out.stderr
    assert nodes(out.stdout) == {} and "nvidia-smi: not found" in out.stdout


def test_gpus_all_gets_every_node_with_real_majors(legacy):
    out = legacy.run("--gpus", "all", cmd=["sh", "-c", LIST])
    assert out.returncode == 0, out.stderr
    got = nodes(out.stdout)
    assert got["nvidia0"] == (195, 0) and got["nvidia1"] == (195, 1) and got["nvidiactl"] == (195, 255)
    assert got["nvidia-uvm"] == (238, 0) and got["nvidia-uvm-tools"] == (238, 1)
    mig = HOST.gpus[1].migs[0]
    assert got[f"nvidia-cap{mig.ci_cap_minor}"] == (241, mig.ci_cap_minor)
    assert smi(out.stdout)[:2] == [
        f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {HOST.gpus[0].uuid})",
        f"GPU 1: NVIDIA H100 80GB HBM3 (UUID: {HOST.gpus[1].uuid})",
    ]


def test_gpus_count_one_is_gpu_zero(legacy):
    out = legacy.run("--gpus", "1", cmd=["sh", "-c", LIST])
    got = nodes(out.stdout)
    assert "nvidia0" in got and "nvidia1" not in got
    assert smi(out.stdout) == [f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {HOST.gpus[0].uuid})"]


def test_gpus_device_one_is_renumbered_inside(legacy):
    out = legacy.run("--gpus", "device=1", cmd=["sh", "-c", LIST])
    assert set(nodes(out.stdout)) >= {"nvidia1", "nvidiactl"} and "nvidia0" not in nodes(out.stdout)
    assert smi(out.stdout)[0] == f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {HOST.gpus[1].uuid})"


def test_count_beyond_the_host_fails_like_nvidia_container_cli(legacy):
    out = legacy.run("--gpus", "3", cmd=["true"])
    assert out.returncode == 125
    assert error(out) == legacy.dockerd.engine.hook_error(
        "Using requested mode 'legacy'\nnvidia-container-cli: device error: 2: unknown device")


def test_unquoted_device_list_is_refused_by_the_daemon(legacy):
    out = legacy.run("--gpus", "device=0,1", cmd=["true"])
    refusal = "cannot set both Count and DeviceIDs on device request"
    # Docker 29 with nvidia-cdi-hook on its PATH tries its CDI driver, then the legacy hook, and joins both
    # refusals (seen with the stand-in and with stub hooks alike).
    assert error(out) == "\n".join([refusal] * (2 if legacy.dockerd.engine.at_least(29) else 1))


def test_runtime_nvidia_with_env_uuid_and_mig(legacy):
    out = legacy.run("--runtime", "nvidia", "-e", f"NVIDIA_VISIBLE_DEVICES={HOST.gpus[1].migs[1].uuid}", cmd=["sh", "-c", LIST])
    assert out.returncode == 0, out.stderr
    assert smi(out.stdout) == [
        f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {HOST.gpus[1].uuid})",
        f"  MIG 3g.40gb     Device  1: (UUID: {HOST.gpus[1].migs[1].uuid})",
    ]


def test_without_utility_capability_there_is_no_nvidia_smi(legacy):
    out = legacy.run("--gpus", 'all,"capabilities=compute"', cmd=["sh", "-c", LIST])
    assert out.returncode == 0, out.stderr
    assert "nvidia0" in nodes(out.stdout) and "nvidia-smi: not found" in out.stdout


def test_none_gives_the_driver_but_no_gpu(legacy):
    out = legacy.run("--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=none", cmd=["sh", "-c", LIST])
    got = nodes(out.stdout)
    assert "nvidiactl" in got and not any(re.fullmatch(r"nvidia\d+", n) for n in got)
    assert "No devices were found" in out.stdout


def test_cdi_via_device_flag_is_refused_by_docker_20(legacy):
    if legacy.dockerd.engine.at_least(25):
        pytest.skip("Docker 25+ resolves CDI names itself, from its own spec dirs, not the bed's tree "
                    "(tests/test_toolkit_real.py covers it with the real toolkit)")
    out = legacy.run("--device", "nvidia.com/gpu=0", cmd=["true"])
    assert error(out) == 'could not select device driver "cdi" with capabilities: []'


def test_cdi_mode_refuses_gpus_without_the_runtime(cdi):
    out = cdi.run("--gpus", "all", cmd=["true"])
    assert out.returncode == 125
    assert error(out) == cdi.dockerd.engine.hook_error(CDI_HOOK_REFUSAL)


def test_cdi_mode_with_the_runtime_resolves_index_names(cdi):
    out = cdi.run("--runtime", "nvidia", "--gpus", "device=1", cmd=["sh", "-c", LIST + "; echo; env"])
    assert out.returncode == 0, out.stderr
    assert "nvidia1" in nodes(out.stdout) and "nvidia0" not in nodes(out.stdout)
    assert "NVIDIA_VISIBLE_DEVICES=void" in out.stdout  # as on the real host: the spec sets it
    assert smi(out.stdout) == [f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {HOST.gpus[1].uuid})"]


def test_cdi_mode_uuid_request_is_unresolvable_with_an_index_only_spec(cdi):
    uuid = HOST.gpus[0].uuid
    out = cdi.run("--runtime", "nvidia", "--gpus", f"device={uuid}", cmd=["true"])
    assert error(out) == cdi.dockerd.engine.runtime_error(f"{UNRESOLVABLE}nvidia.com/gpu={uuid}")


def test_cdi_mode_count_beyond_the_host(cdi):
    out = cdi.run("--runtime", "nvidia", "--gpus", "3", cmd=["true"])
    assert error(out) == cdi.dockerd.engine.runtime_error(f"{UNRESOLVABLE}nvidia.com/gpu=2")


def test_default_runtime_nvidia_and_an_image_that_bakes_all(tmp_path, docker_engine):
    bed_or_skip()
    config = {**NVIDIA_RUNTIME, "default-runtime": "nvidia"}
    with SimBed.create(tmp_path, SimHost.standard(2), ToolkitSpec(mode="legacy"), config, engine=docker_engine) as bed:
        bed.import_image("sim:cuda-like", changes=["ENV NVIDIA_VISIBLE_DEVICES=all"])
        plain = bed.run(cmd=["sh", "-c", LIST])
        baked = bed.run(image="sim:cuda-like", cmd=["sh", "-c", LIST])
        assert nodes(plain.stdout) == {}
        assert {"nvidia0", "nvidia1"} <= set(nodes(baked.stdout)), baked.stderr
        assert len(smi(baked.stdout)) == 2


def test_toolkit_installed_after_the_daemon_started_needs_a_restart(tmp_path, docker_engine):
    bed_or_skip()
    no_driver, no_runtime = docker_engine.no_gpu_driver_error, docker_engine.unknown_runtime_error("nvidia")
    with SimBed.create(tmp_path, SimHost.standard(1), None, {}, engine=docker_engine) as bed:
        assert error(bed.run("--gpus", "all", cmd=["true"])) == no_driver
        assert error(bed.run("--runtime", "nvidia", cmd=["true"])) == no_runtime
        bed.install_toolkit(ToolkitSpec(mode="legacy"))
        bed.dockerd.write_config(NVIDIA_RUNTIME)  # registered in daemon.json, daemon not restarted
        assert error(bed.run("--gpus", "all", cmd=["true"])) == no_driver
        assert error(bed.run("--runtime", "nvidia", cmd=["true"])) == no_runtime
        bed.restart()
        assert "nvidia0" in nodes(bed.run("--gpus", "all", cmd=["sh", "-c", LIST]).stdout)
        assert bed.run("--runtime", "nvidia", cmd=["true"]).returncode == 0


def test_stale_cdi_spec_breaks_container_start(tmp_path, docker_engine):
    bed_or_skip()
    spec = ToolkitSpec(mode="cdi", cdi="stale", stale_driver="570.133.20")
    with SimBed.create(tmp_path, SimHost.standard(1), spec, NVIDIA_RUNTIME, engine=docker_engine) as bed:
        out = bed.run("--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=all", cmd=["true"])
        assert out.returncode != 0
        assert "libcuda.so.570.133.20" in error(out) and "no such file or directory" in error(out)


def test_dockerd_process_is_mirrored_into_the_tree(legacy):
    pid = legacy.dockerd.pid
    proc = legacy.root / "proc" / str(pid)
    assert (proc / "comm").read_text().strip() == "dockerd"
    assert "--config-file\0/etc/docker/daemon.json" in (proc / "cmdline").read_text()
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in (proc / "environ").read_text()
    assert (legacy.root / "etc/docker/daemon.json").read_text() == legacy.dockerd.config_path.read_text()
    assert "nvidia" in legacy.dockerd.info()["Runtimes"]


from tests.sim.fixtures import sim_beds  # noqa: E402,F401  (pytest fixture)


def test_shared_beds_are_reused_and_run_gpudoctor(sim_beds, docker_engine, request):  # noqa: F811 (the fixture)
    bed = sim_beds.shared(SimHost.standard(1), ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME, engine=docker_engine)
    assert sim_beds.shared(SimHost.standard(1), ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME, engine=docker_engine) is bed
    report = bed.check_json("--image", bed.image, "--forms", "baseline,gpus-all")
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses["containers.gpus-all"] == "pass" and statuses["containers.baseline"] == "pass"
    assert report["verdict"]["ready"] is True, report["verdict"]["headline"]
    assert report["host"]["root"] == str(bed.root)
