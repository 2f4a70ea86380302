"""Issue 11 #2: install/upgrade fixes follow NVIDIA's install guide for the host's distro family, repository first."""

from __future__ import annotations

import json

import pytest

from gpudoctor.install import APT, DNF, ZYPPER, parse_os_release, toolkit_install
from tests.support.cli import run_cli

OS_RELEASES = {
    DNF: 'NAME="Red Hat Enterprise Linux"\nVERSION_ID="9.4"\nID="rhel"\nID_LIKE="fedora"\n'
         'PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n',
    APT: 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n',
    ZYPPER: 'NAME="openSUSE Leap"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\nPRETTY_NAME="openSUSE Leap 15.6"\n',
}
MANAGER = {DNF: "sudo dnf ", APT: "sudo apt-get ", ZYPPER: "sudo zypper "}


def test_family_from_id_and_id_like():
    assert parse_os_release('ID=rocky\nID_LIKE="rhel centos fedora"\n').family == DNF
    assert parse_os_release("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n").family == APT
    assert parse_os_release("ID=sles\n").family == ZYPPER
    assert parse_os_release("ID=arch\n").family is None
    assert parse_os_release(None).family is None


@pytest.mark.parametrize("family", [DNF, APT, ZYPPER])
def test_toolkit_fix_uses_the_hosts_package_manager_repository_first(tmp_path, family):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text(OS_RELEASES[family])
    proc = run_cli(["check", "--root", str(tmp_path), "--only", "toolkit", "--no-probes", "--format", "json"])
    assert proc.returncode == 1, proc.stderr
    fix = json.loads(proc.stdout)["verdict"]["fix"]
    commands = fix["commands"]
    install = next(i for i, c in enumerate(commands) if " install" in c and "nvidia-container-toolkit" in c and c.startswith(MANAGER[family]))
    repo = next(i for i, c in enumerate(commands) if "nvidia.github.io/libnvidia-container" in c)
    assert repo < install, commands
    others = set(MANAGER.values()) - {MANAGER[family]}
    assert not any(c.startswith(tuple(others)) for c in commands), commands
    assert fix["link"].endswith("install-guide.html")


def test_probe_causes_add_the_repository_before_installing():
    from gpudoctor.probes.errors import classify

    cause = classify('could not select device driver "" with capabilities: [[gpu]]')
    commands = cause.fix.commands
    assert commands[: len(toolkit_install(None)) - 1] == toolkit_install(None)[:-1]
    assert any("nvidia.github.io" in c for c in commands[:2])


# -- the driver: NVIDIA's driver installation guide, through gpudoctor/install.py --------------------------------
HEADERS = {APT: "sudo apt-get install -y linux-headers-$(uname -r)",
           DNF: "sudo dnf install -y kernel-devel-$(uname -r) kernel-headers-$(uname -r)",
           ZYPPER: "sudo zypper install -y kernel-default-devel=$(uname -r | sed 's/-default//')"}
INITRAMFS = {APT: "sudo update-initramfs -u", DNF: "sudo dracut -f", ZYPPER: "sudo dracut -f"}


def _driver_tree(tmp_path, family, **changes):
    from tests.support.hosttree import HostSpec, build_tree

    root = build_tree(tmp_path / family, HostSpec().but(**changes))
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "os-release").write_text(OS_RELEASES[family])
    return root


def _check(root, only):
    proc = run_cli(["check", "--root", str(root), *(a for o in only.split(",") for a in ("--only", o)), "--no-probes",
                    "--format", "json"])
    assert proc.returncode in (0, 1, 4), proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("family", [DNF, APT, ZYPPER])
def test_kernel_module_fix_rebuilds_with_the_distros_headers(tmp_path, family):
    report = _check(_driver_tree(tmp_path, family, modules=()), "pci,kernel")
    v = report["verdict"]
    assert v["root_cause"] == "kernel.module.loaded", v
    commands = v["fix"]["commands"]
    assert HEADERS[family] in commands and "sudo dkms autoinstall" in commands, commands
    assert not any(c.startswith(tuple(set(MANAGER.values()) - {MANAGER[family]})) for c in commands), commands


@pytest.mark.parametrize("family", [DNF, APT, ZYPPER])
def test_nouveau_blacklist_rebuilds_the_distros_initramfs(tmp_path, family):
    report = _check(_driver_tree(tmp_path, family, nouveau_loaded=True), "kernel.nouveau")
    (check,) = report["checks"]
    commands = check["results"][0]["fix"]["commands"]
    assert INITRAMFS[family] in commands and "blacklist nouveau" in commands[0], commands


@pytest.mark.parametrize("family", [DNF, APT, ZYPPER])
def test_driver_install_adds_nvidias_repository_first(family):
    from gpudoctor.install import OPEN_DRIVER, PROPRIETARY_DRIVER, driver_install

    distro = parse_os_release(OS_RELEASES[family] + 'VERSION_ID="9.4"\n' if family == DNF else OS_RELEASES[family])
    for flavor in (OPEN_DRIVER, PROPRIETARY_DRIVER):
        commands = driver_install(distro, flavor)
        repo = next(i for i, c in enumerate(commands) if "developer.download.nvidia.com/compute/cuda/repos" in c)
        install = next(i for i, c in enumerate(commands) if c.startswith(MANAGER[family]) and c.endswith(flavor))
        assert repo < install, commands
    assert "cuda-keyring" in " ".join(driver_install(parse_os_release(OS_RELEASES[APT])))
    assert "/repos/ubuntu2404/" in driver_install(parse_os_release(OS_RELEASES[APT] + 'VERSION_ID="24.04"\n'))[0]


@pytest.mark.parametrize("family", [DNF, APT, ZYPPER])
def test_probe_cause_fixes_use_the_hosts_package_manager(family):
    from gpudoctor.gpu_requests import texts
    from gpudoctor.probes.errors import classify

    distro = parse_os_release(OS_RELEASES[family])
    for error in ('could not select device driver "" with capabilities: [[gpu]]', texts.NO_GPU_VENDOR,
                  texts.CLI_SKEW, "cgroup subsystem devices not found"):
        commands = classify(error).fix_on(distro).commands
        installs = [c for c in commands if " install" in c and "nvidia-container" in c]
        assert installs and all(c.startswith(MANAGER[family]) for c in installs), (error, commands)
        repo = next(i for i, c in enumerate(commands) if "nvidia.github.io/libnvidia-container" in c)
        assert repo < commands.index(installs[0]), commands
