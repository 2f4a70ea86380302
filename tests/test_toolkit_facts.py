"""The toolkit fact on a host tree (the toolkit's binaries with the dpkg database that installed them, the
real H100 config.toml) and the toolkit.* checks, including the mode/default-runtime combination seen for real.
On the machine itself (root /) the binaries are run for their `--version` texts; under a root never."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from gpudoctor.checks import docker as docker_checks
from gpudoctor.checks import toolkit as toolkit_checks
from gpudoctor.facts.docker import DockerFacts, parse_version_info
from gpudoctor.facts.host import LiveHost
from gpudoctor.facts.registry import gather
from gpudoctor.facts.toolkit import config_type_problems, parse_config_toml, parse_dpkg_status, parse_version, upstream_version
from gpudoctor.model import Status
from tests.support.dpkg import write_dpkg, write_toolkit_packages

H100 = Path(__file__).parent / "fixtures" / "real-h100-docker20-toolkit-cdi"
BASE = {"endpoint": "unix:///var/run/docker.sock", "endpoint_source": "default", "context": None,
        "is_local": True, "socket_path": "/var/run/docker.sock"}

# The first line each binary prints for --version (toolkit 1.17.x texts).
VERSION_TEXT = {
    "nvidia-ctk": "NVIDIA Container Toolkit CLI version {v}\ncommit: 1a2b3c",
    "nvidia-container-runtime": "NVIDIA Container Runtime version {v}\ncommit: 1a2b3c\nspec: 1.2.0",
    "nvidia-container-runtime-hook": "NVIDIA Container Runtime Hook version {v}\ncommit: 1a2b3c",
    "nvidia-container-cli": "cli-version: {v}\nlib-version: {v}\nbuild date: 2025-06-01",
    "nvidia-cdi-hook": "NVIDIA CDI Hook version {v}\ncommit: 1a2b3c",
}


def stub_binaries(bin_dir: Path, versions: dict[str, str], ran: Path | None = None) -> None:
    """Scripts that print the real toolkit's `--version` texts (and, with `ran`, append their name to it)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, v in versions.items():
        script = bin_dir / name
        mark = f"echo {name} >> {ran}\n" if ran else ""
        script.write_text("#!/bin/sh\n" + mark + "cat <<'EOF'\n" + VERSION_TEXT[name].format(v=v) + "\nEOF\n")
        script.chmod(0o755)


def make_tree(root: Path, versions: dict[str, str], config: str | None) -> Path:
    """A host tree with the toolkit's binaries at these versions, installed as packages (dpkg database)."""
    stub_binaries(root / "usr/bin", versions, ran=root / "ran.log")
    write_toolkit_packages(root, versions)
    if config is not None:
        (root / "etc/nvidia-container-runtime").mkdir(parents=True, exist_ok=True)
        (root / "etc/nvidia-container-runtime/config.toml").write_text(config)
    (root / "sbin").mkdir(exist_ok=True)
    return root


def toolkit_of(root: Path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("NVIDIA_CTK_CONFIG_FILE_PATH", raising=False)
    facts = gather(LiveHost(str(root)), ["toolkit"])
    assert not facts.errors, facts.errors
    return facts.values["toolkit"]


def docker_from_capture(**info_changes) -> DockerFacts:
    info = json.loads((H100 / "docker-info.json").read_text())
    info.update(info_changes)
    version = json.loads((H100 / "docker-version.json").read_text())
    return DockerFacts(reachable=True, **parse_version_info(BASE, version, info))


ALL_1178 = {name: "1.17.8" for name in VERSION_TEXT}


def test_real_config_toml_parses_with_mode_cdi():
    cfg, err = parse_config_toml((H100 / "config.toml").read_text())
    assert err is None
    assert cfg["nvidia-container-runtime"]["mode"] == "cdi"
    assert cfg["nvidia-container-cli"]["ldconfig"] == "@/sbin/ldconfig.real"


def test_versions_come_from_the_trees_dpkg_database_and_no_binary_runs(tmp_path, monkeypatch):
    make_tree(tmp_path, ALL_1178, (H100 / "config.toml").read_text())
    (tmp_path / "sbin/ldconfig.real").write_text("")
    tk = toolkit_of(tmp_path, monkeypatch)
    assert tk.installed and tk.versions == ALL_1178
    assert not (tmp_path / "ran.log").exists(), "a binary of the --root tree was executed"
    assert tk.binary("nvidia-ctk").output == "dpkg: nvidia-container-toolkit-base 1.17.8-1 (not run under --root)"
    assert tk.mode == "cdi" and tk.ldconfig_exists is True and not tk.no_cgroups
    assert tk.supported_driver_capabilities == ("compat32", "compute", "display", "graphics", "ngx", "utility", "video")
    assert toolkit_checks.installed.fn(toolkit=tk).status is Status.PASS
    assert toolkit_checks.versions.fn(toolkit=tk)[0].status is Status.PASS
    assert toolkit_checks.config.fn(toolkit=tk)[0].status is Status.PASS


def test_no_toolkit_is_the_root_cause_named_toolkit_installed(tmp_path, monkeypatch):
    make_tree(tmp_path, {}, None)
    tk = toolkit_of(tmp_path, monkeypatch)
    r = toolkit_checks.installed.fn(toolkit=tk)
    assert r.status is Status.FAIL and "not installed" in r.summary
    assert "sudo apt-get install -y nvidia-container-toolkit" in r.fix.commands
    assert "sudo nvidia-ctk runtime configure --runtime=docker" in r.fix.commands


def test_only_ctk_is_an_incomplete_install(tmp_path, monkeypatch):
    make_tree(tmp_path, {"nvidia-ctk": "1.17.8"}, None)
    r = toolkit_checks.installed.fn(toolkit=toolkit_of(tmp_path, monkeypatch))
    assert r.status is Status.FAIL and "incomplete" in r.summary


def test_version_skew_and_known_bad_release(tmp_path, monkeypatch):
    # nvidia-container-toolkit-base (nvidia-ctk, -runtime, nvidia-cdi-hook) upgraded alone to 1.17.7,
    # libnvidia-container-tools left at 1.16.2.
    base = {"nvidia-ctk": "1.17.7", "nvidia-container-runtime": "1.17.7", "nvidia-cdi-hook": "1.17.7"}
    make_tree(tmp_path, {**ALL_1178, **base, "nvidia-container-cli": "1.16.2"}, None)
    results = toolkit_checks.versions.fn(toolkit=toolkit_of(tmp_path, monkeypatch))
    text = " | ".join(r.summary for r in results)
    assert "different versions" in text and "nvidia-container-cli 1.16.2" in text
    assert "1.17.7 is a release with a known regression" in text
    assert all(r.status is Status.WARN for r in results)


def test_binary_no_package_lists_has_its_version_unknown_and_says_why(tmp_path, monkeypatch):
    make_tree(tmp_path, ALL_1178, None)
    stub_binaries(tmp_path / "usr/local/bin", {"nvidia-ctk": "1.17.8"}, ran=tmp_path / "ran.log")  # a tarball install
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    tk = gather(LiveHost(str(tmp_path)), ["toolkit"]).values["toolkit"]
    ctk = tk.binary("nvidia-ctk")
    assert ctk.path == "/usr/local/bin/nvidia-ctk" and ctk.version is None
    assert "does not run programs of the --root tree" in (ctk.error or "") and "/usr/local/bin/nvidia-ctk" in ctk.error
    results = toolkit_checks.versions.fn(toolkit=tk)
    assert any(r.status is Status.WARN and r.subject == "nvidia-ctk" and "--root" in r.summary for r in results)
    assert not (tmp_path / "ran.log").exists()


def test_on_the_machine_itself_binaries_report_their_version(tmp_path, monkeypatch):
    # Root / : the binaries on PATH are this machine's own, run for `--version` (here: stubs on PATH).
    stub_binaries(tmp_path / "bin", ALL_1178, ran=tmp_path / "ran.log")
    (tmp_path / "bin/nvidia-ctk").write_text("#!/bin/sh\necho 'No help topic for version' >&2\nexit 3\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")  # first on PATH: the stubs
    monkeypatch.setenv("NVIDIA_CTK_CONFIG_FILE_PATH", str(tmp_path / "none.toml"))
    tk = gather(LiveHost("/"), ["toolkit"]).values["toolkit"]
    assert tk.binary("nvidia-container-cli").path == str(tmp_path / "bin/nvidia-container-cli")
    assert tk.versions["nvidia-container-cli"] == "1.17.8" and "nvidia-container-cli" in (tmp_path / "ran.log").read_text()
    results = toolkit_checks.versions.fn(toolkit=tk)
    assert any(r.status is Status.WARN and r.subject == "nvidia-ctk" and "(exit 3)" in r.summary for r in results)


def test_host_run_refuses_programs_of_the_root_tree(tmp_path):
    stub_binaries(tmp_path / "usr/bin", {"nvidia-ctk": "1.17.8"}, ran=tmp_path / "ran.log")
    res = LiveHost(str(tmp_path)).run(["/usr/bin/nvidia-ctk", "--version"])
    assert res.failure == "not-run" and not res.ok and "--root tree" in res.stderr
    assert not (tmp_path / "ran.log").exists()


def test_dpkg_status_parsing_keeps_installed_toolkit_packages_only(tmp_path):
    write_dpkg(tmp_path, {"nvidia-container-toolkit": ("1.17.8-1", ["/usr/bin/nvidia-container-runtime-hook"]),
                          "libnvidia-container1": ("1:1.17.8-1", [])})
    text = (tmp_path / "var/lib/dpkg/status").read_text()
    text += "\nPackage: nvidia-container-toolkit-base\nStatus: deinstall ok config-files\nVersion: 1.16.0-1\n"
    assert parse_dpkg_status(text) == {"nvidia-container-toolkit": "1.17.8-1", "libnvidia-container1": "1:1.17.8-1"}
    assert upstream_version("1:1.17.8-1") == "1.17.8" and upstream_version("1.18.0~rc.1-1") == "1.18.0~rc.1"


@pytest.mark.parametrize(
    "config, expect",
    [
        ('[nvidia-container-cli]\nldconfig = "/sbin/ldconfig"\n', "not host-relative"),
        ('[nvidia-container-cli]\nldconfig = "@/sbin/ldconfig.real"\n', "does not exist on this host"),
        ("[nvidia-container-runtime\nmode = 'cdi'\n", "invalid TOML"),
        ('supported-driver-capabilities = "graphics,display"\n', "lacks compute, utility"),
    ],
)
def test_config_toml_problems(tmp_path, monkeypatch, config, expect):
    make_tree(tmp_path, ALL_1178, config)
    results = toolkit_checks.config.fn(toolkit=toolkit_of(tmp_path, monkeypatch))
    assert any(expect in r.summary for r in results), [r.summary for r in results]
    assert all(r.fix and r.fix.commands and r.fix.link for r in results if r.status is Status.FAIL)


@pytest.mark.parametrize(
    "config, expect",
    [
        ("[nvidia-container-cli]\nldconfig = 5\n", "nvidia-container-cli.ldconfig = 5: the toolkit expects a string"),
        ('[nvidia-container-cli]\nno-cgroups = "yes"\n', 'nvidia-container-cli.no-cgroups = "yes": the toolkit expects true or false'),
        ('nvidia-container-runtime = "cdi"\n', 'nvidia-container-runtime = "cdi": the toolkit expects a table'),
        ('[nvidia-container-runtime.modes.cdi]\nspec-dirs = "/etc/cdi"\n',
         'nvidia-container-runtime.modes.cdi.spec-dirs = "/etc/cdi": the toolkit expects a list of strings'),
        ("supported-driver-capabilities = [\"compute\"]\n", "supported-driver-capabilities = [\"compute\"]: the toolkit expects a string"),
    ],
)
def test_config_toml_wrong_types_fail_naming_key_and_type(tmp_path, monkeypatch, config, expect):
    make_tree(tmp_path, ALL_1178, config)
    tk = toolkit_of(tmp_path, monkeypatch)
    assert tk.config_error is None and expect in tk.config_problems
    [r] = toolkit_checks.config.fn(toolkit=tk)
    assert r.status is Status.FAIL and expect in r.summary and "/etc/nvidia-container-runtime/config.toml" in r.summary
    assert r.fix.commands == ("sudoedit /etc/nvidia-container-runtime/config.toml", "nvidia-ctk config")


def test_the_real_config_has_no_type_problems():
    cfg, err = parse_config_toml((H100 / "config.toml").read_text())
    assert err is None and config_type_problems(cfg) == ()


def test_config_toml_that_is_a_fifo_or_nested_too_deep_is_a_named_failure(tmp_path, monkeypatch):
    make_tree(tmp_path, ALL_1178, "")
    cfg = tmp_path / "etc/nvidia-container-runtime/config.toml"
    cfg.unlink()
    os.mkfifo(cfg)
    tk = toolkit_of(tmp_path, monkeypatch)  # returns at once: the FIFO is never opened
    [r] = toolkit_checks.config.fn(toolkit=tk)
    assert r.status is Status.FAIL and r.summary == (
        "/etc/nvidia-container-runtime/config.toml: cannot read it: is a named pipe (FIFO), not a regular file")
    cfg.unlink()
    cfg.write_text("a = " + "[" * 50_000 + "]" * 50_000 + "\n")
    [r] = toolkit_checks.config.fn(toolkit=toolkit_of(tmp_path, monkeypatch))
    assert r.status is Status.FAIL and "invalid TOML: nested deeper than 100 levels" in r.summary


def test_mode_cdi_with_default_runtime_runc_fails_like_the_real_host(tmp_path, monkeypatch):
    # Seen on the H100 host (observed-request-forms.log): mode cdi + default runc → every --gpus
    # request without --runtime=nvidia fails with the hook's refusal.
    log = (H100 / "observed-request-forms.log").read_text()
    assert docker_checks.HOOK_REFUSAL in log
    make_tree(tmp_path, ALL_1178, (H100 / "config.toml").read_text())
    tk = toolkit_of(tmp_path, monkeypatch)
    r = toolkit_checks.mode.fn(toolkit=tk, docker=docker_from_capture())
    assert r.status is Status.FAIL and docker_checks.HOOK_REFUSAL in r.summary
    assert "sudo nvidia-ctk config --in-place --set nvidia-container-runtime.mode=auto" in r.fix.commands
    assert "sudo nvidia-ctk runtime configure --runtime=docker --set-as-default" in r.fix.commands
    # ...and with the daemon.json the host used next (default-runtime nvidia), the same mode is fine.
    fixed = docker_from_capture(DefaultRuntime="nvidia")
    assert toolkit_checks.mode.fn(toolkit=tk, docker=fixed).status is Status.PASS
    # With mode cdi the nvidia runtime is the only way in: not having it is a failure, not a warning.
    no_rt = docker_from_capture(Runtimes={"runc": {"path": "runc"}})
    from gpudoctor.facts.dockerd_process import DockerdProcess

    r = docker_checks.runtime_nvidia.fn(docker=no_rt, toolkit=tk, dockerd_process=DockerdProcess(False))
    assert r.status is Status.FAIL and "sudo nvidia-ctk runtime configure --runtime=docker" in r.fix.commands


def test_mode_legacy_needs_nvidia_container_cli(tmp_path, monkeypatch):
    versions = {k: v for k, v in ALL_1178.items() if k != "nvidia-container-cli"}
    make_tree(tmp_path, versions, '[nvidia-container-runtime]\nmode = "legacy"\n')
    r = toolkit_checks.mode.fn(toolkit=toolkit_of(tmp_path, monkeypatch), docker=docker_from_capture())
    assert r.status is Status.FAIL and "nvidia-container-cli" in r.summary


def test_mode_auto_and_unknown(tmp_path, monkeypatch):
    make_tree(tmp_path, ALL_1178, None)
    assert toolkit_checks.mode.fn(toolkit=toolkit_of(tmp_path, monkeypatch), docker=docker_from_capture()).status is Status.PASS
    shutil.rmtree(tmp_path / "etc", ignore_errors=True)
    make_tree(tmp_path, ALL_1178, '[nvidia-container-runtime]\nmode = "turbo"\n')
    r = toolkit_checks.mode.fn(toolkit=toolkit_of(tmp_path, monkeypatch), docker=docker_from_capture())
    assert r.status is Status.FAIL and "turbo" in r.summary


def test_rootless_daemon_needs_no_cgroups(tmp_path, monkeypatch):
    make_tree(tmp_path, ALL_1178, None)
    tk = toolkit_of(tmp_path, monkeypatch)
    rootless = docker_from_capture(SecurityOptions=["name=seccomp,profile=default", "name=rootless"])
    results = docker_checks.rootless.fn(docker=rootless, toolkit=tk)
    assert results[0].status is Status.FAIL
    assert "sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place" in results[0].fix.commands
    assert "systemctl --user restart docker" in results[0].fix.commands
    os.makedirs(tmp_path / "etc/nvidia-container-runtime", exist_ok=True)
    (tmp_path / "etc/nvidia-container-runtime/config.toml").write_text("[nvidia-container-cli]\nno-cgroups = true\n")
    tk = toolkit_of(tmp_path, monkeypatch)
    assert docker_checks.rootless.fn(docker=rootless, toolkit=tk)[0].status is Status.PASS
    rootful = docker_from_capture(SecurityOptions=["name=selinux"])
    statuses = [r.status for r in docker_checks.rootless.fn(docker=rootful, toolkit=tk)]
    assert statuses == [Status.WARN, Status.WARN]  # no-cgroups on a rootful daemon; SELinux


def test_parse_version_variants():
    assert parse_version("cli-version: 1.17.8\nlib-version: 1.17.8") == "1.17.8"
    assert parse_version("NVIDIA Container Runtime version 1.18.0-rc.1\ncommit: x") == "1.18.0-rc.1"
    assert parse_version("garbage") is None
