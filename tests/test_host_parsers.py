"""Parsers of single raw host files, on the real H100 capture and known other formats."""

from __future__ import annotations

from gpudoctor.facts import kernel as k
from gpudoctor.facts import platform as plat
from gpudoctor.facts.pci import classify
from tests.support.hosttree import REAL_H100, parse_ls_ln


def test_real_version_line_is_the_open_module():
    v = k.parse_version((REAL_H100 / "proc-driver-nvidia/version").read_text())
    assert (v.version, v.flavor) == ("580.159.04", "open")


def test_proprietary_and_aarch64_version_lines():
    prop = k.parse_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.54.03  Tue Jun  6 22:20:39 UTC 2023\n")
    assert (prop.version, prop.flavor) == ("535.54.03", "proprietary")
    arm = k.parse_version("NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  570.124.06  Release Build\n")
    assert (arm.version, arm.flavor) == ("570.124.06", "open")
    arm_prop = k.parse_version("NVRM version: NVIDIA UNIX aarch64 Kernel Module  550.90.07  Fri May 31 09:30:47 UTC 2024\n")
    assert (arm_prop.version, arm_prop.flavor) == ("550.90.07", "proprietary")
    assert k.parse_version("") is None and k.parse_version("hello\n") is None


def test_real_information_file():
    g = k.parse_information("0000:00:06.0", (REAL_H100 / "proc-driver-nvidia/gpus/0000:00:06.0/information").read_text())
    assert (g.model, g.uuid, g.bus_id, g.minor, g.excluded, g.problem) == (
        "NVIDIA H100 80GB HBM3",
        "GPU-a063a891-e48a-e7bf-fe00-f170bc68c4bb",
        "0000:00:06.0",
        0,
        False,
        None,
    )


def test_old_information_format_and_unknown_uuid():
    # Older drivers: "Blacklisted:" instead of "GPU Excluded:"; UUIDs of uninitialised GPUs are "?".
    text = "Model: \t\t Tesla T4\nGPU UUID: \t GPU-????????-????-????-????-????????????\nBus Location: \t 0000:3B:00.0\nDevice Minor: \t 2\nBlacklisted:\t Yes\n"
    g = k.parse_information("0000:3b:00.0", text)
    assert (g.uuid, g.bus_id, g.minor, g.excluded) == (None, "0000:3b:00.0", 2, True)


def test_real_proc_devices_majors():
    majors = k.parse_proc_devices((REAL_H100 / "proc-devices").read_text())
    assert majors["nvidia"] == 195 and majors["nvidia-uvm"] == 238 and majors["nvidia-caps"] == 241
    assert "nvidia-frontend" not in majors
    older = k.parse_proc_devices("Character devices:\n195 nvidia-frontend\n237 nvidia-uvm\n\nBlock devices:\n195 nvidia-fake\n")
    assert older == {"nvidia-frontend": 195, "nvidia-uvm": 237}


def test_real_params_and_modules():
    params = k.parse_colon_fields((REAL_H100 / "proc-driver-nvidia/params").read_text())
    assert (params["DeviceFileMode"], params["DeviceFileUID"], params["DeviceFileGID"]) == ("438", "0", "0")
    assert k.parse_proc_modules((REAL_H100 / "proc-modules").read_text()) == {"nvidia", "nvidia_uvm"}


def test_real_pci_class_and_nvswitch():
    assert classify(int((REAL_H100 / "sysfs-pci/0000:00:06.0/class").read_text(), 16)) == "gpu"
    assert classify(0x030000) == "gpu" and classify(0x068000) == "nvswitch" and classify(0x040300) == "other"
    assert classify(None) == "other"


def test_real_dev_listing():
    nodes = {p: rest for p, *rest in parse_ls_ln((REAL_H100 / "dev-listing.txt").read_text())}
    assert nodes["/dev/nvidiactl"] == [0o666, 0, 0, 195, 255]
    assert nodes["/dev/nvidia-uvm-tools"] == [0o666, 0, 0, 238, 1]
    assert nodes["/dev/nvidia-caps/nvidia-cap1"] == [0o400, 0, 0, 241, 1]
    assert len(nodes) == 6  # the caps listing appears twice in the capture; kept once


def test_platform_classification():
    assert plat.classify("5.15.167.4-microsoft-standard-WSL2", None, False)[0] == "wsl2"
    assert plat.classify("6.6.36.3-microsoft-standard-WSL2+", None, True)[0] == "wsl2"
    assert plat.classify("4.4.0-19041-Microsoft", "Linux version 4.4.0-19041-Microsoft", False)[0] == "wsl1"
    real = (REAL_H100 / "osrelease").read_text(), (REAL_H100 / "proc-version").read_text()
    assert plat.classify(*real, False) == ("linux", ())
