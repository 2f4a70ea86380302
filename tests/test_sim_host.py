"""The simulated-host description, the stand-in's request resolution, nvidia-smi stand-in, CDI specs.

No Docker needed: these pin what the stand-in toolkit does before a container ever starts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gpudoctor.facts.cdi import parse_spec
from tests.sim import standin
from tests.sim.host import SimHost
from tests.sim.toolkit import ToolkitSpec, cdi_spec, install_toolkit, write_cdi_spec
from tests.sim.tree import build_tree, device_nodes


def test_description_round_trips_through_json(tmp_path):
    host = SimHost.standard(8, mig_on=(3,)).with_gpu(5, handle_error=15)
    assert SimHost.load(host.save(tmp_path / "h.json")) == host


def test_standard_hosts_are_stable_and_distinct():
    a, b = SimHost.standard(4), SimHost.standard(4)
    assert a == b
    assert len({g.uuid for g in a.gpus}) == 4 and len({g.pci_bus_id for g in a.gpus}) == 4
    assert SimHost.standard(4, seed="other").gpus[0].uuid != a.gpus[0].uuid
    assert a.gpus[1].sysfs_bus_id == "0000:2a:00.0"


def test_without_gpu_renumbers_the_rest():
    host = SimHost.standard(3).without_gpu(1)
    assert [g.index for g in host.gpus] == [0, 1]
    assert [g.minor for g in host.gpus] == [0, 2]  # minors are not indices once a GPU is gone


@pytest.mark.parametrize(
    ("ids", "want_gpus", "want_migs"),
    [
        (["all"], [0, 1, 2], 2),
        (["0", "2"], [0, 2], 0),
        (["2", "all"], [0, 1, 2], 2),  # `all` anywhere wins (failure-modes.md #50)
        (["1:1"], [], 1),
    ],
)
def test_visible_devices_resolution(ids, want_gpus, want_migs):
    host = SimHost.standard(3, mig_on=(1,))
    gpus, migs = standin.select(host, ids)
    assert [g.index for g in gpus] == want_gpus and len(migs) == want_migs


def test_uuid_bus_id_and_mig_uuid_select_the_same_device():
    host = SimHost.standard(3, mig_on=(1,))
    g = host.gpus[2]
    assert standin.select(host, [g.uuid])[0] == [g]
    assert standin.select(host, [g.sysfs_bus_id])[0] == [g]
    assert standin.select(host, [g.pci_bus_id])[0] == [g]
    mig = host.gpus[1].migs[0]
    assert standin.select(host, [mig.uuid])[1] == [(host.gpus[1], mig)]


@pytest.mark.parametrize("bad", ["3", "GPU-00000000-0000-0000-0000-000000000000", "nvidia.com/gpu=0", "0:0"])
def test_unknown_ids_fail_like_nvidia_container_cli(bad):
    with pytest.raises(standin.HookError) as e:
        standin.select(SimHost.standard(3, mig_on=(1,)), ["0", bad])
    assert str(e.value) == f"device error: {bad}: unknown device"


def test_env_semantics():
    env = standin.env_map(["NVIDIA_VISIBLE_DEVICES=all", "PATH=/bin", "NVIDIA_VISIBLE_DEVICES=1"])
    assert standin.visible_devices(env) == ["1"]  # --gpus appends after the image's value; last wins
    assert standin.visible_devices({}) is None
    assert standin.visible_devices({"NVIDIA_VISIBLE_DEVICES": "void"}) is None
    assert standin.visible_devices({"NVIDIA_VISIBLE_DEVICES": "none"}) == []
    assert standin.capabilities({}) == {"utility", "compute"}
    assert standin.capabilities({"NVIDIA_DRIVER_CAPABILITIES": "compute"}) == {"compute"}
    assert "video" in standin.capabilities({"NVIDIA_DRIVER_CAPABILITIES": "all"})


def test_qualify_and_runc_arguments():
    assert standin.qualify(["0", "nvidia.com/gpu=GPU-x", "all"], "nvidia.com/gpu") == [
        "nvidia.com/gpu=0",
        "nvidia.com/gpu=GPU-x",
        "nvidia.com/gpu=all",
    ]
    sub, bundle, log = standin.parse_runc_args(
        ["--root", "/r", "--log", "/l/log.json", "--log-format", "json", "create", "--bundle", "/b", "--pid-file", "/p", "id"]
    )
    assert (sub, bundle, log) == ("create", Path("/b"), "/l/log.json")


def _smi(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(root / "usr/bin/nvidia-smi"), *args], capture_output=True, text=True, check=False)


def test_nvidia_smi_on_the_host_lists_every_gpu(tmp_path):
    host = SimHost.standard(2, mig_on=(1,))
    build_tree(tmp_path, host)
    out = _smi(tmp_path, "-L")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0] == f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {host.gpus[0].uuid})"
    assert lines[2] == f"  MIG 3g.40gb     Device  0: (UUID: {host.gpus[1].migs[0].uuid})"
    q = _smi(tmp_path, "--query-gpu=uuid,pci.bus_id,name", "--format=csv,noheader")
    assert q.stdout.splitlines()[1] == f"{host.gpus[1].uuid}, 00000000:2A:00.0, NVIDIA H100 80GB HBM3"
    header = _smi(tmp_path, "--query-gpu=uuid,memory.total", "--format=csv")
    assert header.stdout.splitlines()[0] == "uuid, memory.total"
    assert header.stdout.splitlines()[1].endswith(", 81559 MiB")


def test_nvidia_smi_sees_only_gpus_whose_node_exists_renumbered(tmp_path):
    host = SimHost.standard(3)
    build_tree(tmp_path, host)
    (tmp_path / "dev/nvidia0").unlink()
    (tmp_path / "dev/nvidia1").unlink()
    out = _smi(tmp_path, "-L")
    assert out.stdout.splitlines() == [f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {host.gpus[2].uuid})"]
    (tmp_path / "dev/nvidia2").unlink()
    none = _smi(tmp_path, "-L")
    assert (none.returncode, none.stdout.strip()) == (6, "No devices were found")


def test_nvidia_smi_with_the_driver_not_loaded(tmp_path):
    from dataclasses import replace

    build_tree(tmp_path, replace(SimHost.standard(1), nvml_init_error=9))
    out = _smi(tmp_path, "-L")
    assert out.returncode == 9 and "couldn't communicate with the NVIDIA driver" in out.stdout


def test_tree_has_the_nodes_with_real_majors(tmp_path):
    host = SimHost.standard(2, mig_on=(0,))
    build_tree(tmp_path, host)
    import os
    import stat

    for path, major, minor, _ in device_nodes(host):
        st = os.stat(tmp_path / path.lstrip("/"))
        if stat.S_ISCHR(st.st_mode):
            assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor)
    assert {p for p, *_ in device_nodes(host)} >= {"/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm"}


@pytest.mark.parametrize("names", [("index",), ("index", "uuid")])
def test_generated_cdi_spec_parses_with_gpudoctors_parser(tmp_path, names):
    host = SimHost.standard(2, mig_on=(1,))
    path = write_cdi_spec(tmp_path, host, names=names)
    spec = parse_spec(path.read_text(), "/etc/cdi/nvidia.yaml")
    assert spec.ok, spec.error
    assert spec.kind == "nvidia.com/gpu" and spec.driver_versions == (host.driver_version,)
    want = {"0", "1", "1:0", "1:1", "all"}
    if "uuid" in names:
        want |= {g.uuid for g in host.gpus} | {m.uuid for _, m in host.mig_devices}
    assert set(spec.device_names) == want


def test_stale_cdi_spec_names_the_old_driver(tmp_path):
    host = SimHost.standard(1)
    build_tree(tmp_path, host)
    install_toolkit(tmp_path, host, ToolkitSpec(cdi="stale", stale_driver="570.133.20"), "/usr/sbin/runc")
    spec = parse_spec((tmp_path / "etc/cdi/nvidia.yaml").read_text(), "/etc/cdi/nvidia.yaml")
    assert spec.driver_versions == ("570.133.20",)
    assert not (tmp_path / "usr/lib/x86_64-linux-gnu/libcuda.so.570.133.20").exists()
    assert (tmp_path / f"usr/lib/x86_64-linux-gnu/libcuda.so.{host.driver_version}").exists()


def test_cdi_plan_injects_spec_edits_and_reports_unknown_names(tmp_path):
    host = SimHost.standard(2)
    build_tree(tmp_path, host)
    install_toolkit(tmp_path, host, ToolkitSpec(mode="cdi", cdi="index"), "/usr/sbin/runc")
    sim = standin.Sim.from_root(tmp_path)
    plan = standin.cdi_plan(sim, ["nvidia.com/gpu=1"])
    assert {n.path for n in plan.nodes} == {"/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}
    assert ("/dev/nvidia-uvm", 238, 0) in {(n.path, n.major, n.minor) for n in plan.nodes}
    assert "NVIDIA_VISIBLE_DEVICES=void" in plan.env
    uuid = host.gpus[0].uuid
    with pytest.raises(standin.RuntimeModError) as e:
        standin.cdi_plan(sim, [f"nvidia.com/gpu={uuid}"])
    assert str(e.value).endswith(f"failed to inject CDI devices: unresolvable CDI devices nvidia.com/gpu={uuid}")


def test_cdi_spec_dict_lists_control_nodes_once():
    spec = cdi_spec(SimHost.standard(1))
    paths = [n["path"] for n in spec["containerEdits"]["deviceNodes"]]
    assert paths == ["/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidiactl"]


def test_a_lost_gpu_shows_in_nvidia_smi_and_breaks_the_hook(tmp_path):
    host = SimHost.standard(2).with_gpu(1, handle_error=15)
    build_tree(tmp_path, host)
    out = _smi(tmp_path, "-L")
    assert out.returncode == 15
    assert out.stdout.splitlines()[1] == "Unable to determine the device handle for GPU 0000:2A:00.0: GPU is lost. Reboot the system to recover this GPU"
    install_toolkit(tmp_path, host, ToolkitSpec(), "/usr/sbin/runc")
    sim = standin.Sim.from_root(tmp_path)
    spec = {"process": {"env": ["NVIDIA_VISIBLE_DEVICES=all"]}}
    with pytest.raises(standin.HookError, match="detection error: nvml error: unknown error"):
        standin.driver_plan(sim, spec)
    assert standin.driver_plan(sim, {"process": {"env": ["NVIDIA_VISIBLE_DEVICES=0"]}}) is not None


REPO = Path(__file__).resolve().parents[1]


def test_product_code_holds_no_simulation_hook():
    """gpudoctor must judge the simulated host exactly as a real one: nothing in the package or the
    checks may know about the simulation (its env variable, its files, its marker)."""
    needles = ("GPUDOCTOR_SIM_HOST", "tests.sim", "tests/sim", standin.MARKER, ".sim/", "gpudoctor-simulation")
    for folder in (REPO / "gpudoctor", REPO / "checks"):
        for f in folder.rglob("*"):
            if f.is_file() and f.suffix in (".py", ".sh", ".toml", ".json", ".yaml"):
                text = f.read_text(errors="replace")
                assert not [n for n in needles if n in text], f


def test_every_installed_stand_in_says_what_it_is(tmp_path):
    host = SimHost.standard(1)
    build_tree(tmp_path, host)
    install_toolkit(tmp_path, host, ToolkitSpec(cdi="index"), "/usr/sbin/runc")
    from tests.sim.toolkit import TOOLKIT_BINARIES, write_runc_shim

    shim = write_runc_shim(tmp_path / "shim", "/usr/sbin/runc")
    for path in [*(tmp_path / "usr/bin" / b for b in TOOLKIT_BINARIES), tmp_path / "usr/bin/nvidia-smi", shim]:
        head = path.read_text()[:400]
        assert standin.MARKER in head and ("STAND-IN" in head or "SHIM" in head), path
    out = subprocess.run([str(tmp_path / "usr/bin/nvidia-ctk"), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("NVIDIA Container Toolkit CLI version 1.17.8\n") and "gpudoctor-simulation" in out.stdout
