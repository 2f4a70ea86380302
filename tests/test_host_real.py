"""The real H100 host (tests/fixtures/real-h100-host) and broken variants made by small edits of it.

Each variant asserts the root cause the verdict names, its status, and a literal command of its fix.
"""

from __future__ import annotations

import json
import os

import pytest

from gpudoctor.facts.host import HostCallError, ReplayHost
from tests.support.hosttree import (
    IS_ROOT,
    TreeHost,
    build_real_h100_tree,
    drop_lines,
    edit,
    fix_commands,
    make_node,
    outcome,
    remove,
    run_host_checks,
    run_host_checks_with_facts,
    statuses,
    symlink,
    write,
)

BDF = "0000:00:06.0"


@pytest.fixture()
def real(tmp_path):
    root, snapshot = build_real_h100_tree(tmp_path)
    return root, snapshot


def _root_cause(report):
    return report.verdict.root_cause, report.verdict.layer.value if report.verdict.layer else None


def test_real_h100_is_ready_and_facts_match_the_capture(real):
    root, snapshot = real
    report, facts = run_host_checks_with_facts(TreeHost(root, snapshot))
    assert report.verdict.ready, report.verdict.headline
    st = statuses(report)
    assert {s for s in st.values()} <= {"pass", "skip"}
    # Not WSL, and no /dev/char on the captured machine (it is itself a container): both skip.
    assert st["platform.wsl"] == "skip" and st["devices.char-symlinks"] == "skip"
    assert [k for k, v in st.items() if v == "skip"] == ["platform.wsl", "devices.char-symlinks"]

    pci, kernel, devices, nvml = (facts.values[n] for n in ("pci", "kernel", "devices", "nvml"))
    assert [(g.address, g.pci_id, g.driver) for g in pci.gpus] == [(BDF, "10de:2330", "nvidia")]
    assert (kernel.version.version, kernel.version.flavor) == ("580.159.04", "open")
    assert kernel.frontend_major == 195 and kernel.uvm_major == 238
    assert [(g.bus_id, g.minor, g.uuid) for g in kernel.gpus] == [(BDF, 0, "GPU-a063a891-e48a-e7bf-fe00-f170bc68c4bb")]
    assert kernel.param_int("DeviceFileMode") == 0o666
    assert set(kernel.library_versions.values()) == {"580.159.04"}
    assert sorted(devices.gpu_nodes) == [0]
    # MIG capability nodes are root-only by design and must not count as "restrictive modes".
    assert devices.caps["/dev/nvidia-caps/nvidia-cap1"].mode == 0o400
    assert nvml.gpus[0].pci_address == BDF
    assert "pci 1, kernel 1, dev 1, nvml 1" in outcome(report, "nvml.gpu-count.agree").results[0].summary


def test_recorded_bundle_replays_to_the_same_report(real):
    root, snapshot = real
    host = TreeHost(root, snapshot)
    first = run_host_checks(host)
    bundle = json.loads(json.dumps(host.bundle("test")))
    replay = run_host_checks(ReplayHost(bundle))
    assert statuses(replay) == statuses(first)
    assert [r.summary for o in replay.outcomes for r in o.results] == [r.summary for o in first.outcomes for r in o.results]


def _unload_nvidia(root):
    """What the host looks like after a kernel update without a DKMS rebuild: nothing of nvidia.ko."""
    edit(root, "/proc/modules", lambda t: drop_lines(t, "nvidia"))
    edit(root, "/proc/devices", lambda t: drop_lines(t, *(f"{m} nvidia" for m in range(190, 250))))
    remove(root, "/proc/driver/nvidia", "/sys/module/nvidia", "/sys/module/nvidia_uvm")
    remove(root, f"/sys/devices/pci0000:00/{BDF}/driver")
    remove(root, "/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-caps")


def test_module_not_loaded(real):
    root, snapshot = real
    _unload_nvidia(root)
    nvml = {"schema": snapshot["schema"], "init": {"error": {"code": 9, "name": "driver-not-loaded", "message": "Driver Not Loaded"}}}
    report = run_host_checks(TreeHost(root, nvml))
    assert _root_cause(report) == ("kernel.module.loaded", "kernel")
    o = outcome(report, "kernel.module.loaded")
    assert o.status.value == "fail"
    assert "not loaded" in o.results[0].summary
    assert o.results[0].evidence["failure_mode"] == "kmod-not-loaded"
    assert "sudo modprobe nvidia" in fix_commands(report, "kernel.module.loaded")
    # The unbound GPU is only a warning at the PCI layer: the kernel layer is the one red line.
    assert outcome(report, "pci.gpu.driver-bound").status.value == "warn"
    for cid in ("kernel.gpus.known", "devices.control-nodes", "nvml.init", "nvml.gpu-count.agree"):
        assert outcome(report, cid).blocked_by == "kernel.module.loaded", cid
    assert sum(1 for o in report.outcomes if o.status.is_problem and not o.blocked_by) == 1


def test_nouveau_bound_to_the_gpu(real):
    root, snapshot = real
    _unload_nvidia(root)
    edit(root, "/proc/modules", lambda t: t + "nouveau 2842624 0 - Live 0xffffffffc1a00000\n")
    (root / "sys/module/nouveau").mkdir(parents=True)
    (root / "sys/bus/pci/drivers/nouveau").mkdir(parents=True)
    symlink(root, f"/sys/devices/pci0000:00/{BDF}/driver", "../../../bus/pci/drivers/nouveau")
    report = run_host_checks(TreeHost(root, {"init": {"error": {"code": 9, "name": "driver-not-loaded", "message": "Driver Not Loaded"}}}))
    assert _root_cause(report) == ("pci.gpu.driver-bound", "pci")
    o = outcome(report, "pci.gpu.driver-bound")
    assert o.status.value == "fail" and "bound to nouveau" in o.results[0].summary
    cmds = fix_commands(report, "pci.gpu.driver-bound")
    assert any("blacklist nouveau" in c for c in cmds) and "sudo update-initramfs -u" in cmds
    assert outcome(report, "kernel.module.loaded").blocked_by == "pci.gpu.driver-bound"
    assert outcome(report, "kernel.nouveau").blocked_by == "pci.gpu.driver-bound"


def test_nouveau_loaded_but_not_bound_warns(real):
    root, snapshot = real
    edit(root, "/proc/modules", lambda t: t + "nouveau 2842624 0 - Live 0xffffffffc1a00000\n")
    report = run_host_checks(TreeHost(root, snapshot))
    assert report.verdict.ready
    o = outcome(report, "kernel.nouveau")
    assert o.status.value == "warn"
    assert any("blacklist nouveau" in c for c in fix_commands(report, "kernel.nouveau"))


def test_no_dev_nvidia_uvm(real):
    root, snapshot = real
    remove(root, "/dev/nvidia-uvm")
    report = run_host_checks(TreeHost(root, snapshot))
    assert _root_cause(report) == ("devices.control-nodes", "devices")
    o = outcome(report, "devices.control-nodes")
    assert o.status.value == "fail" and "/dev/nvidia-uvm" in o.results[0].summary
    assert o.results[0].evidence["failure_mode"] == "uvm-or-control-nodes-missing"
    assert "sudo nvidia-modprobe -u -c=0" in fix_commands(report, "devices.control-nodes")
    assert outcome(report, "devices.permissions").blocked_by == "devices.control-nodes"
    # NVML itself does not need nvidia-uvm: it still runs and passes.
    assert outcome(report, "nvml.init").status.value == "pass"


def test_nvidia_uvm_module_not_loaded(real):
    root, snapshot = real
    edit(root, "/proc/modules", lambda t: drop_lines(t, "nvidia_uvm"))
    edit(root, "/proc/devices", lambda t: drop_lines(t, "238 nvidia-uvm"))
    remove(root, "/sys/module/nvidia_uvm", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
    report = run_host_checks(TreeHost(root, snapshot))
    assert _root_cause(report) == ("kernel.module.loaded", "kernel")
    o = outcome(report, "kernel.module.loaded")
    assert [r.status.value for r in o.results] == ["pass", "fail"]
    assert "nvidia_uvm is not loaded" in o.results[1].summary
    assert "sudo nvidia-modprobe -u -c=0" in fix_commands(report, "kernel.module.loaded")
    assert outcome(report, "devices.control-nodes").blocked_by == "kernel.module.loaded"


def test_driver_library_version_mismatch_names_both_versions(real):
    root, snapshot = real
    # unattended-upgrades replaced the userspace; the old module stays loaded until reboot.
    lib = root / "usr/local/nvidia/lib64"
    os.rename(lib / "libnvidia-ml.so.580.159.04", lib / "libnvidia-ml.so.580.173.02")
    nvml = {"schema": snapshot["schema"], "init": {"error": {"code": 18, "name": "lib-rm-version-mismatch", "message": "Driver/library version mismatch"}}}
    report = run_host_checks(TreeHost(root, nvml))
    assert _root_cause(report) == ("nvml.init", "nvml")
    r = outcome(report, "nvml.init").results[0]
    assert r.status.value == "fail"
    assert "kernel module 580.159.04" in r.summary and "NVML library 580.173.02" in r.summary
    assert r.evidence["failure_mode"] == "driver-library-version-mismatch"
    cmds = fix_commands(report, "nvml.init")
    assert "sudo reboot" in cmds and "sudo apt-mark hold 'nvidia-*' 'libnvidia-*'" in cmds
    for cid in ("nvml.driver-version", "nvml.gpus", "nvml.mig", "nvml.gpu-count.agree"):
        assert outcome(report, cid).blocked_by == "nvml.init"


def _add_second_gpu(root, bdf="0000:00:07.0", minor=1):
    """Copy the real GPU's sysfs, /proc and /dev entries to a second bus id."""
    src = root / f"sys/devices/pci0000:00/{BDF}"
    dst = root / f"sys/devices/pci0000:00/{bdf}"
    dst.mkdir(parents=True)
    for f in ("vendor", "device", "class"):
        (dst / f).write_text((src / f).read_text())
    symlink(root, f"/sys/bus/pci/devices/{bdf}", f"../../../devices/pci0000:00/{bdf}")
    symlink(root, f"/sys/devices/pci0000:00/{bdf}/driver", "../../../bus/pci/drivers/nvidia")
    info = (root / f"proc/driver/nvidia/gpus/{BDF}/information").read_text()
    info = info.replace(BDF, bdf).replace("Device Minor: \t 0", f"Device Minor: \t {minor}").replace("a063a891", "b063a891")
    write(root, f"/proc/driver/nvidia/gpus/{bdf}/information", info)
    make_node(root, f"/dev/nvidia{minor}", 195, minor)


def test_gpu_on_pci_missing_from_nvml_is_named_by_bus_id(real):
    root, snapshot = real
    _add_second_gpu(root)
    report = run_host_checks(TreeHost(root, snapshot))  # NVML still lists only the first GPU
    assert _root_cause(report) == ("nvml.gpu-count.agree", "nvml")
    o = outcome(report, "nvml.gpu-count.agree")
    assert o.status.value == "fail"
    assert "0000:00:07.0" in o.results[0].summary and "NVML does not list it" in o.results[0].summary
    assert "sudo dmesg | grep -E 'NVRM: Xid|fallen off the bus'" in fix_commands(report, "nvml.gpu-count.agree")
    # Everything below NVML is fine.
    assert all(outcome(report, c).status.value == "pass" for c in ("kernel.gpus.known", "devices.gpu-nodes"))


def test_second_gpu_visible_everywhere_passes(real):
    root, snapshot = real
    _add_second_gpu(root)
    dev2 = json.loads(json.dumps(snapshot["devices"][0]))
    dev2.update(index=1, uuid={"value": "GPU-b063a891-e48a-e7bf-fe00-f170bc68c4bb"}, pci_bus_id={"value": "00000000:00:07.0"}, minor={"value": 1})
    snapshot["devices"].append(dev2)
    snapshot["device_count"] = {"value": 2}
    report = run_host_checks(TreeHost(root, snapshot))
    assert report.verdict.ready
    assert "pci 2, kernel 2, dev 2, nvml 2" in outcome(report, "nvml.gpu-count.agree").results[0].summary


@pytest.mark.skipif(not IS_ROOT, reason="node ownership needs root")
def test_restrictive_node_modes(real):
    root, snapshot = real
    # VirtualGL's vglserver_config: NVreg_DeviceFileMode=0660, NVreg_DeviceFileGID=<vglusers>.
    for name, (major, minor) in {"nvidia0": (195, 0), "nvidiactl": (195, 255), "nvidia-uvm": (238, 0), "nvidia-uvm-tools": (238, 1)}.items():
        make_node(root, f"/dev/{name}", major, minor, 0o660, 0, 1001)
    edit(root, "/proc/driver/nvidia/params", lambda t: t.replace("DeviceFileGID: 0", "DeviceFileGID: 1001").replace("DeviceFileMode: 438", "DeviceFileMode: 432"))
    report = run_host_checks(TreeHost(root, snapshot))
    assert _root_cause(report) == ("devices.permissions", "devices")
    r = outcome(report, "devices.permissions").results[0]
    assert r.status.value == "fail" and "/dev/nvidiactl 0660" in r.summary
    assert r.evidence["failure_mode"] == "device-node-permissions"
    cmds = fix_commands(report, "devices.permissions")
    assert "grep -rn NVreg_DeviceFile /etc/modprobe.d" in cmds
    assert "docker run --group-add 1001 --gpus all <image>" in cmds
    assert any("DeviceFileMode 660 (octal)" in d for d in r.details)


def test_driver_param_alone_warns_before_nodes_change(real):
    root, snapshot = real
    edit(root, "/proc/driver/nvidia/params", lambda t: t.replace("DeviceFileMode: 438", "DeviceFileMode: 432"))
    report = run_host_checks(TreeHost(root, snapshot))
    assert report.verdict.ready
    assert outcome(report, "devices.permissions").status.value == "warn"


def _set_gpu(snapshot, **values):
    for k, v in values.items():
        snapshot["devices"][0][k] = {"value": v}
    return snapshot


def test_compute_mode_prohibited_fails(real):
    root, snapshot = real
    report = run_host_checks(TreeHost(root, _set_gpu(snapshot, compute_mode=2)))
    assert _root_cause(report) == ("nvml.gpus", "nvml")
    r = outcome(report, "nvml.gpus").results[0]
    assert r.status.value == "fail" and "Prohibited" in r.summary
    assert r.evidence["failure_mode"] == "compute-mode-not-default"
    assert fix_commands(report, "nvml.gpus") == ["sudo nvidia-smi -i 0 -c DEFAULT"]


def test_compute_mode_exclusive_process_warns(real):
    root, snapshot = real
    report = run_host_checks(TreeHost(root, _set_gpu(snapshot, compute_mode=3)))
    assert report.verdict.ready
    r = outcome(report, "nvml.gpus").results[0]
    assert r.status.value == "warn" and "Exclusive_Process" in r.summary
    assert "sudo nvidia-smi -i 0 -c DEFAULT" in r.fix.commands


def test_mig_on_without_instances_fails(real):
    root, snapshot = real
    _set_gpu(snapshot, mig_mode=[1, 1], mig_devices=[])
    report = run_host_checks(TreeHost(root, snapshot))
    assert _root_cause(report) == ("nvml.mig", "nvml")
    r = outcome(report, "nvml.mig").results[0]
    assert r.status.value == "fail" and "no MIG devices" in r.summary
    assert r.evidence["failure_mode"] == "mig-misconfigured"
    cmds = fix_commands(report, "nvml.mig")
    assert "sudo nvidia-smi mig -i 0 -lgip" in cmds and "sudo nvidia-smi -i 0 -mig 0" in cmds


def test_mig_with_instances_passes_and_pending_change_warns(real):
    root, snapshot = real
    migs = [{"index": 0, "uuid": {"value": "MIG-5c89f5a7-3f0e-5e8f-9d0b-7a2b1c3d4e5f"}, "name": {"value": "NVIDIA H100 80GB HBM3 MIG 3g.40gb"}}]
    _set_gpu(snapshot, mig_mode=[1, 0], mig_devices=migs)
    report = run_host_checks(TreeHost(root, snapshot))
    assert report.verdict.ready
    o = outcome(report, "nvml.mig")
    assert sorted(r.status.value for r in o.results) == ["pass", "warn"]
    warn = next(r for r in o.results if r.status.value == "warn")
    assert "pending" in warn.summary and "sudo nvidia-smi -r -i 0" in warn.fix.commands


def test_mig_listing_error_is_not_mistaken_for_no_instances(real):
    root, snapshot = real
    _set_gpu(snapshot, mig_mode=[1, 1])
    snapshot["devices"][0]["mig_devices"] = {"error": {"code": 999, "name": "unknown", "message": "Unknown Error"}}
    report = run_host_checks(TreeHost(root, snapshot))
    r = outcome(report, "nvml.mig").results[0]
    assert r.status.value == "warn" and "could not be listed" in r.summary


def test_nvml_timeout_means_gpu_lost_or_hung_driver(real):
    root, _ = real
    hung = HostCallError("timeout", "NVML did not answer within 20s (the worker was killed)")
    report = run_host_checks(TreeHost(root, hung))
    assert _root_cause(report) == ("nvml.init", "nvml")
    r = outcome(report, "nvml.init").results[0]
    assert r.status.value == "fail" and "worker was killed" in r.summary
    assert r.evidence["failure_mode"] == "gpu-lost-xid79"
    assert "sudo reboot" in fix_commands(report, "nvml.init")


def test_nvml_no_permission_maps_to_device_node_permissions(real):
    root, snapshot = real
    nvml = {"init": {"error": {"code": 4, "name": "no-permission", "message": "Insufficient Permissions"}}}
    report = run_host_checks(TreeHost(root, nvml))
    r = outcome(report, "nvml.init").results[0]
    assert r.status.value == "fail" and r.evidence["failure_mode"] == "device-node-permissions"
    assert "ls -ln /dev/nvidia*" in r.fix.commands


def test_nvml_library_missing_on_a_loaded_driver(real):
    root, _ = real
    remove(root, "/usr/local/nvidia/lib64")
    nvml = {"init": {"error": {"code": 12, "name": "library-not-found", "message": "NVML Shared Library Not Found"}}}
    report = run_host_checks(TreeHost(root, nvml))
    assert _root_cause(report) == ("nvml.init", "nvml")
    r = outcome(report, "nvml.init").results[0]
    assert r.evidence["failure_mode"] == "host-nvml-missing"
    assert "sudo apt-get install -y nvidia-utils-580 libnvidia-compute-580" in r.fix.commands  # NVIDIA's repository first
    assert any("kernel module 580.159.04 is loaded" in d for d in r.details)


def test_lost_gpu_handle(real):
    root, snapshot = real
    snapshot["devices"] = [{"index": 0, "error": {"code": 15, "name": "gpu-is-lost", "message": "GPU is lost"}}]
    report = run_host_checks(TreeHost(root, snapshot))
    assert _root_cause(report) == ("nvml.gpus", "nvml")
    r = outcome(report, "nvml.gpus").results[0]
    assert r.status.value == "fail" and r.evidence["failure_mode"] == "gpu-lost-xid79"
    # The cross-check names the bus id NVML could no longer see.
    assert BDF in outcome(report, "nvml.gpu-count.agree").results[0].summary


def test_missing_gpu_node(real):
    root, snapshot = real
    remove(root, "/dev/nvidia0")
    report = run_host_checks(TreeHost(root, snapshot))
    assert _root_cause(report) == ("devices.gpu-nodes", "devices")
    assert "sudo nvidia-modprobe -c=0" in fix_commands(report, "devices.gpu-nodes")
    assert outcome(report, "nvml.gpu-count.agree").blocked_by == "devices.gpu-nodes"


def test_stale_uvm_major(real):
    root, snapshot = real
    make_node(root, "/dev/nvidia-uvm", 237, 0)  # left over from an earlier load; the kernel now says 238
    report = run_host_checks(TreeHost(root, snapshot))
    if IS_ROOT:
        r = outcome(report, "devices.control-nodes").results[0]
        assert r.status.value == "fail" and "driver's major is 238" in r.summary
        assert "sudo rm -r /dev/nvidia-uvm" in r.fix.commands


def test_char_links_missing_on_a_host_with_dev_char_warn(real):
    root, snapshot = real
    (root / "dev/char").mkdir()
    symlink(root, "/dev/char/1:3", "../null")
    symlink(root, "/dev/char/195:255", "../nvidiactl")
    report = run_host_checks(TreeHost(root, snapshot))
    assert report.verdict.ready
    o = outcome(report, "devices.char-symlinks")
    assert o.status.value == "warn" and "3 /dev/char link(s) missing" in o.results[0].summary
    assert o.results[0].fix.commands == ("sudo nvidia-ctk system create-dev-char-symlinks --create-all",)


def test_gpu_the_driver_did_not_probe(real):
    root, snapshot = real
    remove(root, f"/proc/driver/nvidia/gpus/{BDF}", f"/sys/devices/pci0000:00/{BDF}/driver", "/dev/nvidia0")
    snapshot["devices"], snapshot["device_count"] = [], {"value": 0}
    report = run_host_checks(TreeHost(root, snapshot))
    assert _root_cause(report) == ("kernel.gpus.known", "kernel")
    r = outcome(report, "kernel.gpus.known").results[0]
    assert r.status.value == "fail" and BDF in r.summary
    assert "sudo dmesg | grep -E 'NVRM|nvidia'" in r.fix.commands
    assert outcome(report, "nvml.gpus").blocked_by == "kernel.gpus.known"


def test_cli_reads_the_host_under_root(real):
    """`gpudoctor check --root <tree>` judges the tree's PCI, kernel and /dev (NVML is this machine's own)."""
    from tests.support.cli import run_cli

    root, _ = real
    args = ["check", "--root", str(root), "--format", "json"]
    for layer in ("platform", "pci", "kernel", "devices", "nvml"):
        args += ["--only", layer]
    proc = run_cli(args)
    data = json.loads(proc.stdout)
    below_nvml = {c["id"]: c["status"] for c in data["checks"] if not c["id"].startswith("nvml.")}
    assert below_nvml["pci.gpu.present"] == "pass" and below_nvml["devices.control-nodes"] == "pass"
    assert set(below_nvml.values()) <= {"pass", "skip"}, below_nvml
    # Here NVML has no library (CPU-only machine): the verdict blames NVML, not a lower layer.
    assert data["verdict"]["ready"] or data["verdict"]["root_cause"].startswith("nvml.")
