"""Parsers of the Docker layer on real captures (docker info/version of Docker 20.10 on the H100 host and on
a CPU-only CI-kind machine; daemon.json written by `nvidia-ctk runtime configure`) and malformed variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpudoctor.checks import docker as docker_checks
from gpudoctor.facts.daemon_config import DaemonConfig, parse_daemon_json
from gpudoctor.facts.docker import DockerFacts, parse_version_info, version_tuple
from gpudoctor.facts.docker_client import Endpoint, classify, to_host_call_error
from gpudoctor.facts.dockerd_process import DockerdProcess, parse_flags
from gpudoctor.model import Status

FIXTURES = Path(__file__).parent / "fixtures"
H100 = FIXTURES / "real-h100-docker20-toolkit-cdi"
CPU = FIXTURES / "cpu-docker20-no-toolkit"
BASE = {"endpoint": "unix:///var/run/docker.sock", "endpoint_source": "default", "context": None,
        "is_local": True, "socket_path": "/var/run/docker.sock"}


def load_docker(folder: Path) -> DockerFacts:
    version = json.loads((folder / "docker-version.json").read_text())
    info = json.loads((folder / "docker-info.json").read_text())
    return DockerFacts(reachable=True, **parse_version_info(BASE, version, info))


def test_h100_capture_lists_the_nvidia_runtime_and_no_cdi_fields():
    d = load_docker(H100)
    assert d.server_version == "20.10.24+dfsg1"
    assert d.api_version == "1.41" and d.api_tuple == (1, 41)
    assert d.runtime("nvidia").path == "nvidia-container-runtime"
    assert d.default_runtime == "runc"
    assert (d.cgroup_driver, d.cgroup_version) == ("cgroupfs", "2")
    assert d.security_options == ("name=seccomp,profile=default", "name=cgroupns")
    # 20.10 predates CDISpecDirs (API 1.44): absent, not "empty".
    assert d.cdi_spec_dirs is None and d.cdi_enabled is None and d.discovered_devices is None
    assert not (d.rootless or d.is_desktop or d.is_podman or d.is_snap or d.is_remote)


def test_cpu_capture_has_the_stock_runtimes_only():
    d = load_docker(CPU)
    # `docker version --format '{{json .}}'` nests the server under "Server"; the parser handles both shapes.
    assert d.api_version == "1.41" and d.min_api_version == "1.12"
    assert "docker-init" in d.components
    assert set(d.runtime_names) == {"io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc"}
    assert d.runtime("nvidia") is None


def test_api_version_check_on_real_captures_passes_and_names_the_cdi_state():
    r = docker_checks.api_version.fn(docker=load_docker(H100))
    assert r.status is Status.PASS and "no CDI" in r.summary


def test_newer_info_fields_cdi_dirs_discovered_devices_and_engine_kinds():
    info = json.loads((H100 / "docker-info.json").read_text())
    info.update(ServerVersion="28.3.1", CDISpecDirs=["/etc/cdi", "/var/run/cdi"],
                DiscoveredDevices=[{"Source": "cdi", "ID": "nvidia.com/gpu=0"}, {"Source": "cdi", "ID": "nvidia.com/gpu=all"}],
                SecurityOptions=["name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"])
    d = DockerFacts(reachable=True, **parse_version_info(BASE, None, info))
    assert d.cdi_enabled is True and d.discovered_devices == ("nvidia.com/gpu=0", "nvidia.com/gpu=all")
    assert d.rootless and d.version_tuple == (28, 3, 1)
    desktop = DockerFacts(reachable=True, **parse_version_info(BASE, {"Platform": {"Name": "Docker Desktop 4.30.0 (149282)"}},
                                                               {**info, "OperatingSystem": "Docker Desktop", "Name": "docker-desktop"}))
    assert desktop.is_desktop
    r = docker_checks.engine.fn(docker=desktop)
    assert r.status is Status.FAIL and "docker context use default" in r.fix.commands
    podman = DockerFacts(reachable=True, **parse_version_info(BASE, {"Platform": {"Name": ""}, "Components": [{"Name": "Podman Engine"}]}, info))
    assert podman.is_podman and docker_checks.engine.fn(docker=podman).status is Status.WARN
    snap = DockerFacts(reachable=True, **parse_version_info(BASE, None, {**info, "DockerRootDir": "/var/snap/docker/common/var-lib-docker"}))
    assert snap.is_snap and "sudo snap remove --purge docker" in docker_checks.engine.fn(docker=snap).fix.commands


@pytest.mark.parametrize("bad", [None, "x", 5, [], {"Runtimes": "nvidia"}, {"CDISpecDirs": "nope", "SecurityOptions": None}])
def test_info_of_wrong_shapes_does_not_crash(bad):
    info = bad if isinstance(bad, dict) else None
    fields = parse_version_info(BASE, None, info)
    d = DockerFacts(reachable=True, **fields)
    assert d.runtimes == () and d.cdi_spec_dirs is None


def test_version_tuple():
    assert version_tuple("20.10.24+dfsg1") == (20, 10, 24)
    assert version_tuple("v1.44") == (1, 44)
    assert version_tuple("docker-desktop") is None and version_tuple(None) is None


def test_daemon_json_written_by_nvidia_ctk_parses():
    text = (H100 / "daemon.json-with-default-runtime").read_text()
    cfg = parse_daemon_json(text, "/etc/docker/daemon.json", "default")
    assert cfg.ok and cfg.default_runtime == "nvidia"
    assert cfg.runtimes["nvidia"]["path"] == "nvidia-container-runtime"


@pytest.mark.parametrize(
    "text, expect",
    [
        ('{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}', "invalid JSON"),  # truncated
        ("[1, 2]", "not a JSON object"),
        ('{"default-runtime": 1}', '"default-runtime" must be a string'),
        ('{"runtimes": ["nvidia"]}', '"runtimes" must be an object'),
        ('{"runtimes": {"nvidia": {"args": []}}}', 'runtime "nvidia" has no "path"'),
        ('{"features": {"cdi": "yes"}}', 'feature "cdi" must be true or false'),
    ],
)
def test_malformed_daemon_json_is_data_not_an_exception(text, expect):
    cfg = parse_daemon_json(text, "/etc/docker/daemon.json", "default")
    assert not cfg.ok
    assert expect in (cfg.parse_error or "") + " ".join(cfg.problems)
    d = load_docker(CPU)
    r = docker_checks.daemon_json.fn(daemon_config=cfg, dockerd_process=DockerdProcess(False), docker=d)
    assert r.status is Status.FAIL and r.fix.commands and r.fix.link


def test_empty_and_huge_daemon_json():
    assert parse_daemon_json("  \n", "/x", "default").ok
    big = json.dumps({"labels": ["x" * 100] * 20000, "default-runtime": "nvidia"})
    cfg = parse_daemon_json(big, "/x", "default")
    assert cfg.ok and cfg.default_runtime == "nvidia"


def test_flag_and_file_conflict_is_found():
    cfg = parse_daemon_json('{"default-runtime": "nvidia"}', "/etc/docker/daemon.json", "default")
    proc = DockerdProcess(True, pid=10, cmdline=("dockerd", "--default-runtime=runc"), flags=parse_flags(("dockerd", "--default-runtime=runc")))
    r = docker_checks.daemon_json.fn(daemon_config=cfg, dockerd_process=proc, docker=load_docker(CPU))
    assert r.status is Status.FAIL and "default-runtime" in r.summary


def test_parse_flags_forms():
    flags = parse_flags(("dockerd", "-H", "fd://", "--config-file=/srv/d.json", "--add-runtime", "nvidia=/usr/bin/x", "--rootless"))
    assert flags["--host"] == ("fd://",) and flags["--config-file"] == ("/srv/d.json",)
    assert flags["--add-runtime"] == ("nvidia=/usr/bin/x",) and flags["--rootless"] == ("true",)


def test_drift_check_on_the_captured_pair():
    # The H100 capture: daemon.json names default-runtime nvidia, the live daemon reports runc → drift.
    cfg = parse_daemon_json((H100 / "daemon.json-with-default-runtime").read_text(), "/etc/docker/daemon.json", "default")
    r = docker_checks.daemon_json_drift.fn(docker=load_docker(H100), daemon_config=cfg, dockerd_process=DockerdProcess(False))
    assert r.status is Status.FAIL and "default runtime" in r.summary
    assert r.fix.commands == ("sudo systemctl restart docker",)
    # The CPU capture has no nvidia runtime: the same file drifts on the runtime too.
    r = docker_checks.daemon_json_drift.fn(docker=load_docker(CPU), daemon_config=cfg, dockerd_process=DockerdProcess(False))
    assert "runtime 'nvidia' is in the file but not in the daemon" in r.summary


def test_unreachable_kinds_each_get_their_own_fix():
    seen = {}
    for kind in ("no-socket", "permission-denied", "connection-refused", "timeout", "remote-unreachable", "tls"):
        d = DockerFacts(reachable=False, error_kind=kind, error="x", dockerd_installed=("/usr/sbin/dockerd",),
                        socket_group="docker", user_uid=1000, **BASE)
        r = docker_checks.reachable.fn(docker=d)
        assert r.status is Status.FAIL and r.fix.link
        seen[kind] = r.fix.commands
    assert "sudo usermod -aG docker $USER" in seen["permission-denied"]
    assert "sudo systemctl enable --now docker" in seen["no-socket"]
    assert len({tuple(v) for v in seen.values()}) >= 4
    none_installed = DockerFacts(reachable=False, error_kind="no-socket", error="x", **BASE)
    assert "get.docker.com" in docker_checks.reachable.fn(docker=none_installed).fix.commands[0]


def test_classify_plain_os_errors():
    import errno

    assert classify(FileNotFoundError(errno.ENOENT, "x")) == "no-socket"
    assert classify(PermissionError(errno.EACCES, "x")) == "permission-denied"
    assert classify(ConnectionRefusedError(errno.ECONNREFUSED, "x")) == "connection-refused"
    remote = Endpoint("tcp://gpu-box:2376", "DOCKER_HOST", None, True, None)
    assert classify(ConnectionRefusedError(errno.ECONNREFUSED, "x"), remote) == "remote-unreachable"
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = PermissionError(errno.EACCES, "Permission denied")
    err = to_host_call_error(wrapped)
    assert err.kind == "permission-denied" and err.data["exception"] == "RuntimeError"


def test_daemon_config_defaults_when_file_missing():
    cfg = DaemonConfig("/etc/docker/daemon.json", "default", exists=False)
    r = docker_checks.daemon_json.fn(daemon_config=cfg, dockerd_process=DockerdProcess(False), docker=load_docker(CPU))
    assert r.status is Status.PASS


PODMAN_VERSION = {"Version": "4.3.1", "Platform": {"Name": ""}, "Components": [{"Name": "Podman Engine"}]}
NVIDIA_SPEC = """cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: all
  containerEdits:
    deviceNodes: [{path: /dev/nvidia0}]
"""


@pytest.mark.parametrize(
    "version, spec_path, status, words",
    [
        ("4.3.1", "/etc/cdi/nvidia.yaml", Status.PASS, "resolves CDI names itself"),
        ("4.3.1", "/var/run/cdi/nvidia.yaml", Status.PASS, "NVIDIA spec /var/run/cdi/nvidia.yaml"),
        ("4.3.1", None, Status.PASS, "no NVIDIA spec there"),
        ("4.3.1", "/opt/cdi/nvidia.yaml", Status.FAIL, "the NVIDIA spec is elsewhere"),
        ("4.0.2", "/etc/cdi/nvidia.yaml", Status.FAIL, "has no CDI (4.1.0+)"),
    ],
)
def test_docker_cdi_judges_podman_by_podmans_rules(version, spec_path, status, words):
    """Podman has no features.cdi and reports no CDISpecDirs: its CDI is native since 4.1.0, from /etc/cdi and
    /var/run/cdi. Docker's rule (CDI needs Engine 25+) must not be applied to Podman's 4.x version."""
    from gpudoctor.facts.cdi import CdiFacts, parse_spec

    info = json.loads((CPU / "docker-info.json").read_text())
    podman = DockerFacts(reachable=True, **parse_version_info(BASE, {**PODMAN_VERSION, "Version": version},
                                                              {**info, "ServerVersion": version}))
    assert podman.is_podman and podman.version_tuple < (25,)
    specs = (parse_spec(NVIDIA_SPEC, spec_path),) if spec_path else ()
    cdi = CdiFacts(dirs=("/etc/cdi", "/var/run/cdi"), specs=specs)
    (r,) = docker_checks.docker_cdi.fn(docker=podman, cdi=cdi, daemon_config=DaemonConfig("/etc/docker/daemon.json", "default"))
    assert r.status is status and words in r.summary, r.summary
    assert "25" not in r.summary and "features.cdi" not in r.summary
