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
