"""CDI: the real spec from the H100 host (nvidia-ctk, cdiVersion 0.5.0), malformed variants, and the
cdi.* checks against NVML views of the host (matching, missing UUID names, another driver, missing files)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from gpudoctor.checks import cdi as cdi_checks
from gpudoctor.checks import docker as docker_checks
from gpudoctor.facts.cdi import parse_spec
from gpudoctor.facts.daemon_config import DaemonConfig
from gpudoctor.facts.docker import DockerFacts
from gpudoctor.facts.host import LiveHost
from gpudoctor.facts.nvml import MigDevice, NvmlFacts, NvmlGpu
from gpudoctor.facts.registry import gather
from gpudoctor.facts.toolkit import ToolkitFacts
from gpudoctor.model import Status

H100 = Path(__file__).parent / "fixtures" / "real-h100-docker20-toolkit-cdi"
SPEC_TEXT = (H100 / "cdi-nvidia.yaml").read_text()
SPEC_UUID = "GPU-e7f66286-4090-14e9-f85e-15aa1fd7a06c"
DRIVER = "580.159.04"
BASE = {"endpoint": "unix:///var/run/docker.sock", "endpoint_source": "default", "context": None,
        "is_local": True, "socket_path": "/var/run/docker.sock"}


def gpu(index: int, uuid: str, mig: tuple[MigDevice, ...] = (), mig_on: int = 0) -> NvmlGpu:
    return NvmlGpu(index, uuid, "NVIDIA H100 80GB HBM3", f"00000000:{index + 1:02x}:00.0", index, 80 << 30, 1, 0,
                   mig_on, mig_on, mig, {})


def nvml(*gpus: NvmlGpu, driver: str = DRIVER) -> NvmlFacts:
    return NvmlFacts(None, driver, 13000, "13.580", len(gpus), None, tuple(gpus))


def host_tree(root: Path, spec_text: str = SPEC_TEXT, name: str = "nvidia.yaml", all_paths: bool = True) -> Path:
    """A host root holding the spec in /etc/cdi and (optionally) every path the spec references."""
    (root / "etc/cdi").mkdir(parents=True, exist_ok=True)
    (root / "etc/cdi" / name).write_text(spec_text)
    if all_paths:
        spec = parse_spec(spec_text, name)
        for p in (*spec.device_nodes, *spec.host_paths, *spec.hook_paths):
            target = root / p.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("")
    return root


def cdi_of(root: Path):
    facts = gather(LiveHost(str(root)), ["cdi"], specs=None)
    assert "cdi" in facts.values, facts.errors
    return facts.values["cdi"]


def test_real_spec_parses_with_names_versions_and_paths():
    spec = parse_spec(SPEC_TEXT, "/etc/cdi/nvidia.yaml")
    assert spec.ok and spec.kind == "nvidia.com/gpu" and spec.cdi_version == "0.5.0"
    assert spec.device_names == ("0", SPEC_UUID, "all")
    assert "nvidia.com/gpu=all" in spec.qualified_names
    assert spec.driver_versions == (DRIVER,)
    assert "/dev/nvidia0" in spec.device_nodes and "/dev/nvidiactl" in spec.device_nodes
    assert "/usr/local/nvidia/lib64/libcuda.so.580.159.04" in spec.host_paths
    assert spec.hook_paths == ("/tmp/ctk/bin/nvidia-cdi-hook",)


def test_same_spec_as_json_parses_the_same():
    data = yaml.safe_load(SPEC_TEXT)
    spec = parse_spec(json.dumps(data), "/var/run/cdi/nvidia.json")
    assert spec.ok and spec.format == "json" and spec.device_names == ("0", SPEC_UUID, "all")


@pytest.mark.parametrize(
    "mutate, expect",
    [
        (lambda t: t[: len(t) // 3] + "\n  - name: [unclosed", "invalid YAML"),  # truncated mid-file
        (lambda t: "- just\n- a list\n", "top level is list"),
        (lambda t: t.replace("kind: nvidia.com/gpu", "kind: gpu"), '"kind" must look like vendor.com/class'),
        (lambda t: t.replace("cdiVersion: 0.5.0", "cdiVersion: [0, 5]"), "cdiVersion"),
        (lambda t: t.replace("    - name: all\n", "    - name: {all: 1}\n"), "has no string name"),
        (lambda t: t.replace("        deviceNodes:\n            - path: /dev/nvidia0\n              major: 195\n"
                             "              fileMode: 438\n              permissions: rwm\n", "        deviceNodes: /dev/nvidia0\n", 1),
         "deviceNodes must be a list"),
        (lambda t: t.replace('    - name: "0"', '    - name: all'), 'device "all" is defined twice'),
        (lambda t: t.replace("devices:\n", "devices: 7\nx:\n", 1), '"devices" must be a non-empty list'),
    ],
)
def test_malformed_specs_are_findings_naming_the_error(mutate, expect):
    spec = parse_spec(mutate(SPEC_TEXT), "/etc/cdi/broken.yaml")
    assert not spec.ok and expect in spec.error, spec.error


def test_unknown_keys_are_noted_not_fatal():
    spec = parse_spec("x-extra: 1\n" + SPEC_TEXT.replace("---\n", ""), "/etc/cdi/nvidia.yaml")
    assert spec.ok and spec.unknown_keys == ("x-extra",)


def test_hostile_yaml_does_not_crash():
    bomb = "a: &a [" + ",".join(["x"] * 10) + "]\n" + "".join(f"{c}: &{c} [*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    assert not parse_spec(bomb, "/etc/cdi/bomb.yaml").ok
    assert not parse_spec("!!python/object:os.system 'true'", "/etc/cdi/evil.yaml").ok


def test_fact_reads_dirs_and_flags_bad_and_huge_files(tmp_path):
    host_tree(tmp_path)
    # cut inside a quoted string, as a full disk during `nvidia-ctk cdi generate` leaves it
    (tmp_path / "etc/cdi/broken.yaml").write_text(SPEC_TEXT[: SPEC_TEXT.index('"0"') + 2])
    (tmp_path / "etc/cdi/notes.txt").write_text("ignored")
    (tmp_path / "var/run/cdi").mkdir(parents=True)
    (tmp_path / "var/run/cdi/huge.json").write_text(" " * (9 << 20))
    cdi = cdi_of(tmp_path)
    assert [s.path for s in cdi.nvidia_specs] == ["/etc/cdi/nvidia.yaml"]
    bad = {s.path: s.error for s in cdi.bad_specs}
    assert set(bad) == {"/etc/cdi/broken.yaml", "/var/run/cdi/huge.json"}
    assert "cannot read" in bad["/var/run/cdi/huge.json"]
    toolkit = ToolkitFacts((), "/etc/nvidia-container-runtime/config.toml")
    results = cdi_checks.specs.fn(cdi=cdi, toolkit=toolkit, docker=DockerFacts(reachable=False, **BASE))
    failed = [r for r in results if r.status is Status.FAIL]
    assert {r.subject for r in failed} == set(bad)
    assert all(r.fix.link and any("nvidia-ctk cdi generate" in c for c in r.fix.commands) for r in failed)


NO_TOOLKIT = ToolkitFacts((), "/etc/nvidia-container-runtime/config.toml")


def _cdi_mode_toolkit() -> ToolkitFacts:
    from gpudoctor.facts.toolkit import ToolkitBinary

    return ToolkitFacts((ToolkitBinary("nvidia-container-runtime", "/usr/bin/nvidia-container-runtime", "1.17.8"),),
                        "/x", True, None, {"nvidia-container-runtime": {"mode": "cdi"}})


def test_matching_host_passes_devices_and_stale(tmp_path):
    cdi = cdi_of(host_tree(tmp_path))
    view = nvml(gpu(0, SPEC_UUID))
    assert [r.status for r in cdi_checks.devices.fn(cdi=cdi, nvml=view, toolkit=NO_TOOLKIT)] == [Status.PASS]
    assert [r.status for r in cdi_checks.stale.fn(cdi=cdi, nvml=view)] == [Status.PASS]


def test_real_h100_pair_spec_names_a_gpu_the_host_does_not_have(tmp_path):
    # The captured spec names GPU-e7f66286…, while the GPU in observed-request-forms.log is GPU-3e3d6e36…:
    # by UUID that GPU is unresolvable, and the spec is stale.
    host_uuid = "GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821"
    assert host_uuid in (H100 / "observed-request-forms.log").read_text()
    cdi = cdi_of(host_tree(tmp_path))
    view = nvml(gpu(0, host_uuid))
    dev = cdi_checks.devices.fn(cdi=cdi, nvml=view, toolkit=NO_TOOLKIT)
    assert [r.status for r in dev] == [Status.WARN] and host_uuid in dev[0].summary
    assert "--device-name-strategy=uuid" in dev[0].fix.commands[0]
    stale = cdi_checks.stale.fn(cdi=cdi, nvml=view)
    assert stale[0].status is Status.FAIL and SPEC_UUID in stale[0].summary
    # In cdi mode (the real host's config.toml) every request by UUID resolves through the spec: a fail.
    in_cdi_mode = cdi_checks.devices.fn(cdi=cdi, nvml=view, toolkit=_cdi_mode_toolkit())
    assert [r.status for r in in_cdi_mode] == [Status.FAIL] and "cdi mode" in in_cdi_mode[0].summary


def test_other_driver_and_missing_files_make_it_stale(tmp_path):
    cdi = cdi_of(host_tree(tmp_path, all_paths=False))
    results = cdi_checks.stale.fn(cdi=cdi, nvml=nvml(gpu(0, SPEC_UUID), driver="590.44.01"))
    r = results[0]
    assert r.status is Status.FAIL
    assert "generated for driver 580.159.04, running driver is 590.44.01" in r.summary
    assert "/dev/nvidia0" in r.evidence["missing"]
    assert r.fix.commands[0] == "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"


def test_second_gpu_and_mig_devices_missing_from_the_spec(tmp_path):
    cdi = cdi_of(host_tree(tmp_path))
    view = nvml(gpu(0, SPEC_UUID, (MigDevice(0, "MIG-1111", "1g.10gb"),), mig_on=1), gpu(1, "GPU-2222"))
    results = cdi_checks.devices.fn(cdi=cdi, nvml=view, toolkit=NO_TOOLKIT)
    summaries = [r.summary for r in results if r.status is Status.FAIL]
    assert any("MIG device 0:0" in s for s in summaries)
    assert any("GPU 1" in s and "by index" in s for s in summaries)


def test_no_nvidia_spec_matters_only_where_cdi_is_relied_on(tmp_path):
    (tmp_path / "etc/cdi").mkdir(parents=True)
    cdi = cdi_of(tmp_path)
    idle = ToolkitFacts((), "/x")
    assert cdi_checks.specs.fn(cdi=cdi, toolkit=idle, docker=DockerFacts(reachable=False, **BASE))[0].status is Status.SKIP
    from gpudoctor.facts.toolkit import ToolkitBinary

    cdi_mode = ToolkitFacts((ToolkitBinary("nvidia-container-runtime", "/usr/bin/nvidia-container-runtime", "1.17.8"),),
                            "/x", True, None, {"nvidia-container-runtime": {"mode": "cdi"}})
    r = cdi_checks.specs.fn(cdi=cdi, toolkit=cdi_mode, docker=DockerFacts(reachable=False, **BASE))[0]
    assert r.status is Status.FAIL and "unresolvable CDI devices nvidia.com/gpu=all" in r.summary


def test_docker_cdi_check_by_engine_version(tmp_path):
    cdi = cdi_of(host_tree(tmp_path))
    cfg = DaemonConfig("/etc/docker/daemon.json", "default", exists=False)
    old = DockerFacts(reachable=True, server_version="20.10.24+dfsg1", **BASE)
    assert docker_checks.docker_cdi.fn(docker=old, cdi=cdi, daemon_config=cfg)[0].status is Status.SKIP
    off = DockerFacts(reachable=True, server_version="27.5.1", cdi_spec_dirs=(), **BASE)
    r = docker_checks.docker_cdi.fn(docker=off, cdi=cdi, daemon_config=cfg)[0]
    assert r.status is Status.WARN and "--cdi.enabled" in r.fix.commands[0]
    elsewhere = DockerFacts(reachable=True, server_version="28.3.0", cdi_spec_dirs=("/var/run/cdi",), **BASE)
    r = docker_checks.docker_cdi.fn(docker=elsewhere, cdi=cdi, daemon_config=cfg)[0]
    assert r.status is Status.FAIL and "/etc/cdi/nvidia.yaml" in r.summary
    good = DockerFacts(reachable=True, server_version="28.3.0", cdi_spec_dirs=("/etc/cdi", "/run/cdi"),
                       discovered_devices=("nvidia.com/gpu=0", "nvidia.com/gpu=all"), **BASE)
    assert docker_checks.docker_cdi.fn(docker=good, cdi=cdi, daemon_config=cfg)[0].status is Status.PASS


# -- hostile and odd spec files (issue 14 items 2, 6, 8) -----------------------------------------------
def _alias_bomb_in_hook_args() -> str:
    """1 KB: the hook's args are 9 levels of 9 aliases (9**9 strings once expanded): it grew past 5 GB."""
    rows = ['      - &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    rows += [f"      - &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return ("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: all\n  containerEdits:\n"
            "    deviceNodes:\n    - path: /dev/nvidia0\n    hooks:\n    - path: /usr/bin/nvidia-cdi-hook\n"
            "      hookName: createContainer\n      args:\n" + "\n".join(rows) + "\n")


def test_alias_bomb_in_hook_args_is_refused_before_it_expands():
    text = _alias_bomb_in_hook_args()
    assert len(text) < 1200
    spec = parse_spec(text, "/etc/cdi/bomb.yaml")
    assert spec.error == "invalid YAML: aliases expand to more than 10000 nodes (an alias bomb?)"


def test_a_few_anchors_are_fine_and_hook_args_must_be_strings():
    text = ("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n  containerEdits: &edits\n"
            "    deviceNodes:\n    - path: /dev/nvidia0\n- name: all\n  containerEdits: *edits\n")
    spec = parse_spec(text, "/etc/cdi/anchors.yaml")
    assert spec.ok and spec.device_names == ("0", "all") and spec.device_nodes == ("/dev/nvidia0",)
    nested = SPEC_TEXT.replace("            - create-symlinks\n", "            - [create-symlinks]\n", 1)
    assert nested != SPEC_TEXT
    assert parse_spec(nested, "/etc/cdi/nvidia.yaml").error == (
        "containerEdits.hooks[0].args must be a list of strings, not list")


@pytest.mark.parametrize(
    "name, text, expect",
    [
        ("deep.json", "[" * 100_000 + "]" * 100_000, "invalid JSON: nested deeper than 100 levels"),
        ("deep.yaml", "a:\n" + "".join(f"{'  ' * i}- \n" for i in range(1, 120)), "invalid YAML: nested deeper than 100 levels"),
        ("loop.yaml", "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: &d [*d]\n", "recursive structure"),
    ],
)
def test_nesting_is_bounded_and_named(name, text, expect):
    spec = parse_spec(text, f"/etc/cdi/{name}")
    assert spec.error is not None and expect in spec.error, spec.error


@pytest.mark.parametrize("version, ok", [("0.5.0", True), ("v0.8.0", True), ("0.1.0", True), ("99.0.0", False),
                                         ("0.9.0", False), ("1.0.0", False), ("latest", False)])
def test_cdi_version_must_be_one_the_cdi_library_knows(version, ok):
    spec = parse_spec(SPEC_TEXT.replace("cdiVersion: 0.5.0", f"cdiVersion: {version}"), "/etc/cdi/nvidia.yaml")
    assert spec.ok is ok, spec.error
    if not ok:
        assert spec.error == (f'cdiVersion "{version}" is not a CDI spec version (known: 0.1.0, 0.2.0, 0.3.0, 0.4.0, '
                              '0.5.0, 0.6.0, 0.7.0, 0.8.0): the CDI registry refuses the spec ("invalid version")')


def test_unknown_cdi_version_fails_cdi_specs_and_leaves_no_nvidia_spec(tmp_path):
    host_tree(tmp_path, SPEC_TEXT.replace("cdiVersion: 0.5.0", "cdiVersion: 99.0.0"))
    cdi = cdi_of(tmp_path)
    assert cdi.nvidia_specs == () and [s.cdi_version for s in cdi.bad_specs] == ["99.0.0"]
    toolkit = ToolkitFacts((), "/etc/nvidia-container-runtime/config.toml", config={"nvidia-container-runtime": {"mode": "cdi"}})
    from gpudoctor.facts.toolkit import ToolkitBinary

    toolkit = replace(toolkit, binaries=(ToolkitBinary("nvidia-ctk", "/usr/bin/nvidia-ctk", "1.17.8"),))
    results = cdi_checks.specs.fn(cdi=cdi, toolkit=toolkit, docker=DockerFacts(reachable=False, **BASE))
    assert [r.status for r in results] == [Status.FAIL, Status.FAIL]
    assert '/etc/cdi/nvidia.yaml: cdiVersion "99.0.0" is not a CDI spec version' in results[0].summary
    assert "no nvidia.com/gpu CDI spec" in results[1].summary


def test_fifo_spec_is_refused_at_once_and_a_subdirectory_is_skipped(tmp_path):
    host_tree(tmp_path)
    os.mkfifo(tmp_path / "etc/cdi/pipe.yaml")
    (tmp_path / "etc/cdi/old.yaml").mkdir()  # the CDI library's scan skips sub-directories
    started = time.monotonic()
    cdi = cdi_of(tmp_path)
    assert time.monotonic() - started < 10
    assert {s.path: s.error for s in cdi.bad_specs} == {
        "/etc/cdi/pipe.yaml": "cannot read: is a named pipe (FIFO), not a regular file"}
    assert [s.path for s in cdi.nvidia_specs] == ["/etc/cdi/nvidia.yaml"]


def test_absolute_symlinks_resolve_inside_the_root(tmp_path):
    """/etc/cdi/nvidia.yaml → /opt/specs/nvidia.yaml names the host's /opt: under --root that is
    <root>/opt/specs/nvidia.yaml, never this machine's /opt (issue 14 item 8)."""
    root = tmp_path / "root"
    host_tree(root)
    (root / "opt/specs").mkdir(parents=True)
    (root / "etc/cdi/nvidia.yaml").rename(root / "opt/specs/nvidia.yaml")
    os.symlink("/opt/specs/nvidia.yaml", root / "etc/cdi/nvidia.yaml")
    # A link that climbs out with .. stops at the root, as on the host.
    os.symlink("../../../../../../../../opt/specs/nvidia.yaml", root / "etc/cdi/climb.yaml")
    outside = tmp_path / "outside.yaml"
    outside.write_text(SPEC_TEXT.replace("kind: nvidia.com/gpu", "kind: leaked.example/outside"))
    os.symlink(str(outside), root / "etc/cdi/escape.yaml")  # absolute: means <root>/<tmp>/outside.yaml
    cdi = cdi_of(root)
    ok = {s.path: s.kind for s in cdi.specs if s.ok}
    assert ok == {"/etc/cdi/nvidia.yaml": "nvidia.com/gpu", "/etc/cdi/climb.yaml": "nvidia.com/gpu"}
    assert all(s.kind != "leaked.example/outside" for s in cdi.specs)
    # escape.yaml dangles inside the root: "not there" is what the host itself would see
    assert "/etc/cdi/escape.yaml" not in ok
