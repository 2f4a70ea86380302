"""Made-up hosts from tests/support/hosttree.HostSpec: WSL2, multi-GPU, module flavours, passthrough."""

from __future__ import annotations

import pytest

from tests.support.hosttree import (
    GpuSpec,
    HostSpec,
    TreeHost,
    build_tree,
    fix_commands,
    make_host,
    nvml_snapshot,
    outcome,
    run_host_checks,
    run_host_checks_with_facts,
    statuses,
)

NATIVE_ONLY = (
    "pci.gpu.present",
    "pci.gpu.driver-bound",
    "kernel.module.loaded",
    "kernel.nouveau",
    "kernel.module.flavor",
    "kernel.gpus.known",
    "devices.control-nodes",
    "devices.gpu-nodes",
    "devices.permissions",
    "devices.char-symlinks",
)


def test_healthy_eight_gpu_host(tmp_path):
    spec = HostSpec.with_gpus(8, nvswitches=("0000:c0:00.0", "0000:c1:00.0"))
    report, facts = run_host_checks_with_facts(make_host(tmp_path, spec))
    assert report.verdict.ready, report.verdict.headline
    assert set(statuses(report).values()) == {"pass", "skip"}
    assert len(facts.values["pci"].gpus) == 8 and len(facts.values["pci"].nvswitches) == 2
    assert "2 NVSwitch bridge(s)" in " ".join(outcome(report, "pci.gpu.present").results[0].details)
    assert "pci 8, kernel 8, dev 8, nvml 8" in outcome(report, "nvml.gpu-count.agree").results[0].summary
    assert len(outcome(report, "nvml.gpus").results) == 8


def test_wsl2_is_judged_by_its_own_rules(tmp_path):
    spec = HostSpec(wsl=True)
    report = run_host_checks(make_host(tmp_path, spec))
    assert report.verdict.ready, report.verdict.headline
    st = statuses(report)
    assert st["platform.wsl"] == "pass"
    for cid in NATIVE_ONLY:
        o = outcome(report, cid)
        assert o.status.value == "skip" and o.results[0].summary.startswith("not applicable on WSL2"), cid
        assert o.blocked_by is None
    # NVML still applies (no minor numbers on WSL2, and that is not a warning).
    assert st["nvml.init"] == st["nvml.gpus"] == "pass"
    assert st["nvml.gpu-count.agree"] == "skip"


def test_wsl2_without_windows_driver_libraries(tmp_path):
    spec = HostSpec(wsl=True, wsl_libs=("libdxcore.so",), nvml_library=False)
    report = run_host_checks(make_host(tmp_path, spec))
    assert report.verdict.root_cause == "platform.wsl"
    r = outcome(report, "platform.wsl").results[0]
    assert r.status.value == "fail" and "libcuda.so.1" in r.summary
    assert "wsl --update" in r.fix.commands
    # One red line: everything above the platform waits for it.
    assert outcome(report, "nvml.init").blocked_by == "platform.wsl"


def test_wsl2_nvml_library_not_found_points_at_the_windows_driver(tmp_path):
    report = run_host_checks(make_host(tmp_path, HostSpec(wsl=True, nvml_library=False)))
    assert report.verdict.root_cause == "nvml.init"
    n = outcome(report, "nvml.init").results[0]
    assert n.status.value == "fail" and n.evidence["failure_mode"] == "wsl2-specific"
    assert "/usr/lib/wsl/lib" in n.summary and "wsl --update" in n.fix.commands


def test_wsl2_with_a_linux_driver_inside_the_distro(tmp_path):
    spec = HostSpec(wsl=True)
    root = build_tree(tmp_path / "wsl", spec)
    lib = root / "usr/lib/x86_64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "libnvidia-ml.so.550.54.14").write_text("")
    report = run_host_checks(TreeHost(root, nvml_snapshot(spec)))
    r = outcome(report, "platform.wsl").results[0]
    assert r.status.value == "fail" and "shadows" in r.summary
    assert "sudo ldconfig" in r.fix.commands


def test_wsl2_nvml_blocked_by_the_operating_system(tmp_path):
    spec = HostSpec(wsl=True, nvml_init_error="operating-system")
    report = run_host_checks(make_host(tmp_path, spec))
    r = outcome(report, "nvml.init").results[0]
    assert r.status.value == "fail" and "GPU access blocked by the operating system" in r.summary
    assert "wsl --update" in r.fix.commands


def test_wsl1_has_no_gpu(tmp_path):
    root = build_tree(tmp_path / "wsl1", HostSpec(gpus=(), modules=()))
    (root / "proc/sys/kernel/osrelease").write_text("4.4.0-19041-Microsoft\n")
    report = run_host_checks(TreeHost(root, {"init": {"error": {"code": 12, "name": "library-not-found", "message": "x"}}}))
    assert report.verdict.root_cause == "platform.wsl"
    assert "wsl --set-version <distro> 2" in fix_commands(report, "platform.wsl")
    assert outcome(report, "pci.gpu.present").status.value == "skip"


def test_open_module_on_a_pascal_gpu(tmp_path):
    # failure-modes.md #9: "NVRM: The NVIDIA GPU 0000:09:00.0 (PCI ID: 10de:1d01) ... not supported by open nvidia.ko"
    gpu = GpuSpec(bus_id="0000:09:00.0", device_id=0x1D01, name="NVIDIA GeForce GT 1030", pci_class=0x030000, kernel_knows=False)
    report = run_host_checks(make_host(tmp_path, HostSpec(gpus=(gpu,))))
    assert report.verdict.root_cause == "kernel.module.flavor"
    r = outcome(report, "kernel.module.flavor").results[0]
    assert "predates Turing" in r.summary and "10de:1d01" in r.summary
    assert "sudo apt-get install -y cuda-drivers" in r.fix.commands  # the proprietary modules, NVIDIA's repository
    assert outcome(report, "kernel.gpus.known").blocked_by == "kernel.module.flavor"


def test_proprietary_module_on_blackwell(tmp_path):
    gpu = GpuSpec(device_id=0x2901, name="NVIDIA B200", kernel_knows=False)
    report = run_host_checks(make_host(tmp_path, HostSpec(gpus=(gpu,), open_module=False, driver_version="570.133.20")))
    assert report.verdict.root_cause == "kernel.module.flavor"
    assert "sudo apt-get install -y nvidia-open" in fix_commands(report, "kernel.module.flavor")


def test_proprietary_module_on_hopper_is_fine(tmp_path):
    report, facts = run_host_checks_with_facts(make_host(tmp_path, HostSpec(open_module=False, driver_version="535.54.03")))
    assert report.verdict.ready
    assert (facts.values["kernel"].version.flavor, facts.values["kernel"].version.version) == ("proprietary", "535.54.03")
    assert "proprietary kernel module" in outcome(report, "kernel.module.flavor").results[0].summary


def test_vfio_on_the_only_gpu_fails(tmp_path):
    spec = HostSpec(gpus=(GpuSpec(pci_driver="vfio-pci"),))
    report = run_host_checks(make_host(tmp_path, spec))
    assert report.verdict.root_cause == "pci.gpu.driver-bound"
    assert "sudo driverctl unset-override 0000:00:06.0" in fix_commands(report, "pci.gpu.driver-bound")


def test_vfio_on_one_of_two_gpus_only_warns(tmp_path):
    spec = HostSpec.with_gpus(2).gpu_but(1, pci_driver="vfio-pci")
    report = run_host_checks(make_host(tmp_path, spec))
    assert report.verdict.ready, report.verdict.headline
    o = outcome(report, "pci.gpu.driver-bound")
    assert [r.status.value for r in o.results] == ["pass", "warn"]
    # The passthrough GPU is not expected in the kernel, /dev or NVML views.
    assert "pci 1, kernel 1, dev 1, nvml 1" in outcome(report, "nvml.gpu-count.agree").results[0].summary


def test_excluded_gpu(tmp_path):
    spec = HostSpec.with_gpus(2).gpu_but(1, excluded=True, in_nvml=False)
    report = run_host_checks(make_host(tmp_path, spec))
    assert report.verdict.root_cause == "kernel.gpus.known"
    r = [r for r in outcome(report, "kernel.gpus.known").results if r.status.value == "fail"][0]
    assert "NVreg_ExcludedGpus" in r.summary and "grep -rn ExcludedGpus /etc/modprobe.d" in r.fix.commands


def test_no_cuda_driver_version_warns(tmp_path):
    report = run_host_checks(make_host(tmp_path, HostSpec(cuda_driver_version=None)))
    assert report.verdict.ready
    r = outcome(report, "nvml.driver-version").results[0]
    assert r.status.value == "warn" and r.evidence["failure_mode"] == "host-libcuda-missing"
    assert "sudo apt-get install -y nvidia-utils-580 libnvidia-compute-580" in r.fix.commands


@pytest.mark.parametrize("name,expected", [("reset-required", "sudo nvidia-smi -r -i 0"), ("insufficient-power", "sudo poweroff")])
def test_gpu_handle_errors_have_their_own_fixes(tmp_path, name, expected):
    report = run_host_checks(make_host(tmp_path, HostSpec().gpu_but(0, nvml_handle_error=name)))
    assert report.verdict.root_cause == "nvml.gpus"
    assert expected in fix_commands(report, "nvml.gpus")
