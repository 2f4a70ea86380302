"""Odd and hostile host input: every case becomes a clear finding, never a traceback or a crash row."""

from __future__ import annotations

import os
import threading
import time

from gpudoctor import engine
from gpudoctor.facts.host import HostCallError
from gpudoctor.facts.registry import gather, registered_facts
from tests.support.hosttree import (
    HostSpec,
    TreeHost,
    build_real_h100_tree,
    build_tree,
    host_checks,
    make_node,
    nvml_snapshot,
    outcome,
    remove,
    run_host_checks,
    run_host_checks_with_facts,
    write,
)

BDF = "0000:00:06.0"


def _no_crash(report) -> None:
    """No check crashed and no fact failed: every row is a judgement about the host."""
    for o in report.outcomes:
        for r in o.results:
            assert not r.summary.startswith("check crashed"), (o.check.id, r.summary)
            assert not r.summary.startswith("could not gather fact"), (o.check.id, r.summary)


def _real(tmp_path):
    return build_real_h100_tree(tmp_path)


def test_garbage_version_file(tmp_path):
    root, snap = _real(tmp_path)
    write(root, "/proc/driver/nvidia/version", "\x00\x01\xffgarbage: yes\n")
    report, facts = run_host_checks_with_facts(TreeHost(root, snap))
    _no_crash(report)
    r = outcome(report, "kernel.module.loaded").results[0]
    assert r.status.value == "warn" and "not an NVRM version line" in r.summary
    # Still known to be loaded (/proc/modules, /sys/module/nvidia), and the sysfs version fills in.
    assert facts.values["kernel"].version.version == "580.159.04"


def test_version_file_is_a_directory(tmp_path):
    root, snap = _real(tmp_path)
    remove(root, "/proc/driver/nvidia/version")
    (root / "proc/driver/nvidia/version").mkdir()
    report = run_host_checks(TreeHost(root, snap))
    _no_crash(report)
    r = outcome(report, "kernel.module.loaded").results[0]
    assert r.status.value == "warn" and "/proc/driver/nvidia/version is a directory, expected a file" in r.summary


def test_huge_params_file(tmp_path):
    root, snap = _real(tmp_path)
    write(root, "/proc/driver/nvidia/params", "DeviceFileMode: 438\n" * 200_000)  # ~4 MB
    report, facts = run_host_checks_with_facts(TreeHost(root, snap))
    _no_crash(report)
    assert "too large" in facts.values["kernel"].params_problem
    assert report.verdict.ready


def test_garbage_gpu_information(tmp_path):
    root, snap = _real(tmp_path)
    write(root, f"/proc/driver/nvidia/gpus/{BDF}/information", "\xff\xfe binary junk without fields\n")
    report = run_host_checks(TreeHost(root, snap))
    _no_crash(report)
    r = outcome(report, "kernel.gpus.known").results[0]
    assert r.status.value == "warn" and "none of Model, Bus Location, Device Minor" in r.summary


def test_unparsable_device_minor(tmp_path):
    root, snap = _real(tmp_path)
    p = root / f"proc/driver/nvidia/gpus/{BDF}/information"
    p.write_text(p.read_text().replace("Device Minor: \t 0", "Device Minor: \t zero"))
    report = run_host_checks(TreeHost(root, snap))
    _no_crash(report)
    assert "'zero', not a number" in outcome(report, "kernel.gpus.known").results[0].summary


def test_information_is_a_directory(tmp_path):
    root, snap = _real(tmp_path)
    remove(root, f"/proc/driver/nvidia/gpus/{BDF}/information")
    (root / f"proc/driver/nvidia/gpus/{BDF}/information").mkdir()
    report = run_host_checks(TreeHost(root, snap))
    _no_crash(report)
    assert "is a directory" in outcome(report, "kernel.gpus.known").results[0].summary


def test_garbage_and_looping_pci_files(tmp_path):
    root, snap = _real(tmp_path)
    spec_dev = root / "sys/devices/pci0000:00"
    # A function whose vendor is garbage, and one whose vendor is a symlink loop (unreadable even as root).
    for bdf, how in (("0000:00:08.0", "garbage"), ("0000:00:09.0", "loop")):
        (spec_dev / bdf).mkdir()
        os.symlink(f"../../../devices/pci0000:00/{bdf}", root / f"sys/bus/pci/devices/{bdf}")
        if how == "garbage":
            (spec_dev / bdf / "vendor").write_text("0xZZZZ\n")
        else:
            os.symlink("vendor", spec_dev / bdf / "vendor")
    report, facts = run_host_checks_with_facts(TreeHost(root, snap))
    _no_crash(report)
    problems = facts.values["pci"].problems
    assert any("'0xZZZZ', not a hex vendor id" in p for p in problems)
    assert any("0000:00:09.0/vendor" in p and "symbolic links" in p for p in problems)
    assert report.verdict.ready  # the real GPU is still found; the oddities are in the details
    assert any("unreadable" in d for d in outcome(report, "pci.gpu.present").results[0].details)


def test_unlistable_sysfs_warns_and_lets_nvml_speak(tmp_path):
    root, snap = _real(tmp_path)
    remove(root, "/sys/bus/pci/devices")
    (root / "sys/bus/pci/devices").write_text("not a directory")
    report = run_host_checks(TreeHost(root, snap))
    _no_crash(report)
    r = outcome(report, "pci.gpu.present").results[0]
    assert r.status.value == "warn" and "cannot list" in r.summary and "is not a directory" in r.summary
    assert outcome(report, "nvml.init").status.value == "pass"


def test_proc_modules_is_a_directory(tmp_path):
    root, snap = _real(tmp_path)
    remove(root, "/proc/modules")
    (root / "proc/modules").mkdir()
    report, facts = run_host_checks_with_facts(TreeHost(root, snap))
    _no_crash(report)
    # /sys/module still tells what is loaded.
    assert facts.values["kernel"].loaded("nvidia") and facts.values["kernel"].loaded("nvidia_uvm")
    assert "is a directory" in facts.values["kernel"].proc_modules_problem
    assert report.verdict.ready


def test_garbage_proc_devices(tmp_path):
    root, snap = _real(tmp_path)
    write(root, "/proc/devices", "%%%\n195\nnvidia 195\n\n")
    report = run_host_checks(TreeHost(root, snap))
    _no_crash(report)
    # Without a registered uvm major the nodes are still judged (195 is assumed for nvidiactl).
    assert outcome(report, "devices.control-nodes").status.value == "pass"


def test_regular_file_and_directory_where_nodes_should_be(tmp_path):
    root, snap = _real(tmp_path)
    remove(root, "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
    (root / "dev/nvidia-uvm").write_text("")
    (root / "dev/nvidia-uvm-tools").mkdir()
    report = run_host_checks(TreeHost(root, snap))
    _no_crash(report)
    summaries = [r.summary for r in outcome(report, "devices.control-nodes").results]
    assert "/dev/nvidia-uvm is a regular file, not a character device" in summaries
    assert "/dev/nvidia-uvm-tools is a directory, not a character device" in summaries
    assert report.verdict.root_cause == "devices.control-nodes"


def test_dangling_node_symlink(tmp_path):
    root, snap = _real(tmp_path)
    remove(root, "/dev/nvidiactl")
    os.symlink("/nonexistent/nvidiactl", root / "dev/nvidiactl")
    report = run_host_checks(TreeHost(root, snap))
    _no_crash(report)
    r = outcome(report, "devices.control-nodes").results[0]
    assert r.status.value == "fail" and "dangling symlink" in r.summary


def test_nvml_unexpected_exception(tmp_path):
    root, _ = _real(tmp_path)
    nvml = {"init": {"error": {"code": None, "name": "RuntimeError", "message": "boom from a broken binding"}}}
    report = run_host_checks(TreeHost(root, nvml))
    _no_crash(report)
    r = outcome(report, "nvml.init").results[0]
    assert r.status.value == "fail" and "boom from a broken binding" in r.summary
    assert "nvidia-smi" in r.fix.commands


def test_nvml_worker_crash(tmp_path):
    root, _ = _real(tmp_path)
    crash = HostCallError("worker-crashed", "NVML worker exited -11: no output")
    report = run_host_checks(TreeHost(root, crash))
    r = outcome(report, "nvml.init").results[0]
    assert r.status.value == "fail" and "exited -11" in r.summary


def test_nvml_per_query_errors_are_warnings_not_crashes(tmp_path):
    spec = HostSpec()
    snap = nvml_snapshot(spec)
    snap["devices"][0]["uuid"] = {"error": {"code": 999, "name": "unknown", "message": "Unknown Error"}}
    snap["devices"][0]["memory"] = {"error": {"code": 3, "name": "not-supported", "message": "Not Supported"}}
    root = build_tree(tmp_path / "h", spec)
    report = run_host_checks(TreeHost(root, snap))
    _no_crash(report)
    r = outcome(report, "nvml.gpus").results[0]
    assert r.status.value == "warn" and "uuid (Unknown Error)" in r.summary and "memory" not in r.summary.split("tell")[1]


def test_malformed_nvml_snapshot_is_an_error_row_not_a_traceback(tmp_path):
    root, _ = _real(tmp_path)
    report = run_host_checks(TreeHost(root, {"init": {"value": True}, "devices": ["not-a-device"]}))
    o = outcome(report, "nvml.init")
    assert o.status.value == "error" and "could not gather fact 'nvml'" in o.results[0].summary
    # The layers below NVML are unaffected.
    assert outcome(report, "devices.permissions").status.value == "pass"


def test_a_fifo_where_a_file_should_be_is_refused_at_once_and_named(tmp_path):
    """A FIFO where /proc/driver/nvidia/version should be used to block open() until the kernel fact
    timed out. Reads are regular-files-only now (gpudoctor/facts/bounded.py): the FIFO is never
    opened, the fact finishes at once, and the finding names the file."""
    root, snap = _real(tmp_path)
    remove(root, "/proc/driver/nvidia/version")
    os.mkfifo(root / "proc/driver/nvidia/version")
    checks = host_checks()
    started = time.monotonic()
    facts = gather(TreeHost(root, snap), engine.needed_facts(checks), specs=dict(registered_facts()))
    outcomes = engine.run_checks(checks, facts)
    assert time.monotonic() - started < 10 and "kernel" not in facts.errors
    assert facts.values["kernel"].version_problem == (
        "/proc/driver/nvidia/version: is a named pipe (FIFO), not a regular file")
    o = next(o for o in outcomes if o.check.id == "kernel.module.loaded")
    assert "/proc/driver/nvidia/version: is a named pipe (FIFO)" in " ".join(
        [r.summary for r in o.results] + [d for r in o.results for d in r.details])
    assert not [t for t in threading.enumerate() if t.name.startswith("fact:")]


def test_node_that_is_a_block_device(tmp_path):
    root, snap = _real(tmp_path)
    remove(root, "/dev/nvidia0")
    if os.geteuid() == 0:
        os.mknod(root / "dev/nvidia0", 0o666 | 0o060000, os.makedev(195, 0))  # S_IFBLK
    else:
        make_node(root, "/dev/nvidia0", 195, 0)
    report = run_host_checks(TreeHost(root, snap))
    _no_crash(report)
    r = outcome(report, "devices.gpu-nodes").results[0]
    assert r.status.value == "fail" and "/dev/nvidia0 is a block device, not a character device" in r.summary
