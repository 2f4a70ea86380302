"""The real NVIDIA Container Toolkit (the 1.20 kit) in `cdi` mode on a private dockerd of each engine.

No GPU and no NVML: the host is the spec recorded on the real H100, relocated into a temp root whose
device nodes and library files the test makes (tests/support/realtoolkit.py). What each request form
then gets, or the exact refusal, is what the real runtime, hooks and daemon do — the ground truth that
gpudoctor's model of engines and toolkit modes (issue 9) must agree with. gpudoctor's own toolkit and
CDI facts are read from the same stack.

Skips without the kit (`GPUDOCTOR_TEST_TOOLKIT_DIR`, set by scripts/test from ../shared/kits) and, per
engine, without that engine (tests/support/engines.py).
"""

from __future__ import annotations

import re
from typing import Iterator

import pytest

from gpudoctor.facts.docker_client import reset_client_cache
from gpudoctor.facts.host import LiveHost
from gpudoctor.facts.registry import gather
from tests.support.dockerd import DockerdFactory, PrivateDockerd
from tests.support.engines import Engine
from tests.support.realtoolkit import TOOLKIT_BINARIES, ToolkitHost, kit_version, make_host, toolkit_dir

pytestmark = pytest.mark.docker

IMAGE = "probe:busybox"
# Lists the GPU nodes, then whatever the spec's mounts and the real nvidia-cdi-hook left in the container.
LIST = "ls -ln /dev/nvidia* 2>/dev/null; echo @@; for f in $LINKS; do echo \"$f -> $(readlink $f)\"; done; echo @@; " \
       "for f in $MOUNTS; do [ -f $f ] && echo $f; done; echo @@; env | grep ^NVIDIA_ | sort"
# What the real hook and runtime print; the engine wraps it in its envelope (Engine.hook_error / runtime_error).
HOOK_IN_CDI_MODE = (
    "Using requested mode 'cdi'\ninvoking the NVIDIA Container Runtime Hook directly (e.g. specifying the docker --gpus"
    " flag) is not supported. Please use the NVIDIA Container Runtime (e.g. specify the --runtime=nvidia flag) instead"
)
UNRESOLVABLE = (
    "could not apply required modification to OCI specification: error modifying OCI spec: failed to inject CDI devices:"
    " unresolvable CDI devices "
)


def _bin_dir():  # type: ignore[no-untyped-def]
    bin_dir, absent, broken = toolkit_dir()
    if broken:
        pytest.fail(broken, pytrace=False)
    if absent:
        pytest.skip(absent)
    return bin_dir


def _host_and_daemon(dockerd_factory: DockerdFactory, with_spec: bool) -> tuple[ToolkitHost, PrivateDockerd]:
    host = make_host(_bin_dir(), with_spec=with_spec)
    try:
        engine: Engine = dockerd_factory.engine
        d = dockerd_factory.private(host.daemon_config(engine), path_prepend=[host.bin_dir], env=host.daemon_env())
        d.import_busybox(IMAGE)
    except BaseException:
        host.close()
        raise
    return host, d


@pytest.fixture(scope="module")
def stack(dockerd_factory: DockerdFactory) -> Iterator[tuple[ToolkitHost, PrivateDockerd]]:
    """The recorded spec in place, runtime `nvidia` registered, the kit on dockerd's PATH."""
    host, d = _host_and_daemon(dockerd_factory, with_spec=True)
    try:
        yield host, d
    finally:
        d.close()
        host.close()


@pytest.fixture(scope="module")
def stack_without_spec(dockerd_factory: DockerdFactory) -> Iterator[tuple[ToolkitHost, PrivateDockerd]]:
    """The same, but no spec in the spec dirs (cdi mode before `nvidia-ctk cdi generate`)."""
    host, d = _host_and_daemon(dockerd_factory, with_spec=False)
    try:
        yield host, d
    finally:
        d.close()
        host.close()


def run(host: ToolkitHost, d: PrivateDockerd, *args: str):  # type: ignore[no-untyped-def]
    links = " ".join(host.symlinks()) if host.spec else ""
    mounts = " ".join(host.mounts()) if host.spec else ""
    return d.docker("run", "--rm", "-e", f"LINKS={links}", "-e", f"MOUNTS={mounts}", *args, IMAGE, "sh", "-c", LIST)


def nodes(out: str) -> dict[str, tuple[int, int]]:
    found = {}
    for line in out.split("@@")[0].splitlines():
        m = re.match(r"^c\S*\s+\d+\s+\d+\s+\d+\s+(\d+),\s*(\d+)\s.*?(\S+)$", line.strip())
        if m:
            found[m.group(3)] = (int(m.group(1)), int(m.group(2)))
    return found


def error(proc) -> str:  # type: ignore[no-untyped-def]
    """The daemon's message as the CLI prints it, without the `docker: Error response from daemon: ` prefix."""
    text = proc.stderr.split("Error response from daemon: ", 1)[-1]
    return text.split("\n\nRun 'docker run --help'")[0].strip()


def assert_gets_the_spec(host: ToolkitHost, out) -> None:  # type: ignore[no-untyped-def]
    """The container holds exactly the spec's nodes for `all`, the hook's symlinks and the mounted files."""
    assert out.returncode == 0, f"{out.stderr}\nruntime log:\n{host.log_tail()}"
    sections = out.stdout.split("@@")
    assert nodes(out.stdout) == host.expected_nodes("all")
    links = dict(line.split(" -> ", 1) for line in sections[1].strip().splitlines())
    assert links == host.symlinks()  # made by the real `nvidia-cdi-hook create-symlinks`
    assert sections[2].split() == host.mounts()
    # The spec's env: NVIDIA_VISIBLE_DEVICES=void keeps the legacy hook from injecting again.
    assert "NVIDIA_VISIBLE_DEVICES=void" in sections[3].split()


# -- the spec in place ----------------------------------------------------------------------------------
def test_runtime_nvidia_with_visible_devices_all_gets_the_spec(stack) -> None:
    host, d = stack
    assert_gets_the_spec(host, run(host, d, "--runtime=nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=all"))


def test_runtime_nvidia_with_gpus_all_gets_the_spec(stack) -> None:
    """The runtime reads the request from the DeviceRequest too (NVIDIA_VISIBLE_DEVICES is unset here)."""
    host, d = stack
    assert_gets_the_spec(host, run(host, d, "--runtime=nvidia", "--gpus", "all"))


def test_cdi_device_flag(stack) -> None:
    """Docker 25+ resolves `--device nvidia.com/gpu=all` itself; 20.10 has no CDI device driver."""
    host, d = stack
    out = run(host, d, "--device", "nvidia.com/gpu=all")
    if d.engine.at_least(25):
        assert_gets_the_spec(host, out)
    else:
        assert out.returncode == 125
        assert error(out) == 'could not select device driver "cdi" with capabilities: []'


def test_gpus_without_the_runtime(stack) -> None:
    """Docker 29 with nvidia-cdi-hook on its PATH serves `--gpus all` through CDI, no runtime needed; 20.10 hands
    it to the legacy hook, which refuses in cdi mode (as on the real H100: observed-request-forms.log)."""
    host, d = stack
    out = run(host, d, "--gpus", "all")
    if d.engine.at_least(29):
        assert_gets_the_spec(host, out)
    else:
        assert out.returncode == 125
        assert error(out) == d.engine.hook_error(HOOK_IN_CDI_MODE)


def test_gpus_count_beyond_the_spec_goes_to_the_legacy_hook(stack) -> None:
    """`--gpus 2` on a one-GPU spec: Docker 29 does not resolve it through CDI but hands it to the legacy hook,
    whose refusal then depends on the toolkit's mode (issue 9); 20.10 always uses the hook."""
    host, d = stack
    out = run(host, d, "--gpus", "2")
    assert out.returncode == 125 and nodes(out.stdout) == {}
    assert error(out) == d.engine.hook_error(HOOK_IN_CDI_MODE)


def test_runtime_nvidia_with_an_index_the_spec_lacks(stack) -> None:
    host, d = stack
    out = run(host, d, "--runtime=nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=1")
    assert out.returncode == 125
    assert error(out) == d.engine.runtime_error(UNRESOLVABLE + "nvidia.com/gpu=1"), host.log_tail()


# -- no spec --------------------------------------------------------------------------------------------
def test_missing_spec_is_unresolvable_for_the_runtime(stack_without_spec) -> None:
    host, d = stack_without_spec
    out = run(host, d, "--runtime=nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=all")
    assert out.returncode == 125
    assert error(out) == d.engine.runtime_error(UNRESOLVABLE + "nvidia.com/gpu=all"), host.log_tail()


def test_missing_spec_with_cdi_device_flag_and_gpus(stack_without_spec) -> None:
    """Docker 29: `--device` gets the daemon's own CDI error; `--gpus all` falls back to the legacy hook (which
    refuses in cdi mode) rather than failing in CDI. 20.10: no CDI driver; `--gpus` goes to the hook as always."""
    host, d = stack_without_spec
    device, gpus = run(host, d, "--device", "nvidia.com/gpu=all"), run(host, d, "--gpus", "all")
    assert device.returncode == 125 and gpus.returncode == 125
    if d.engine.at_least(29):
        assert error(device) == "CDI device injection failed: unresolvable CDI devices nvidia.com/gpu=all"
    else:
        assert error(device) == 'could not select device driver "cdi" with capabilities: []'
    assert error(gpus) == d.engine.hook_error(HOOK_IN_CDI_MODE)


# -- what gpudoctor reads from this stack -----------------------------------------------------------------
def _facts(host: ToolkitHost, d: PrivateDockerd, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for k, v in host.facts_env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DOCKER_HOST", d.url)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    reset_client_cache()
    try:
        fs = gather(LiveHost(), ["toolkit", "cdi"])
    finally:
        reset_client_cache()
    assert not fs.errors, fs.errors
    return fs.values["toolkit"], fs.values["cdi"]


def test_gpudoctor_reads_the_real_toolkit_and_spec(stack, monkeypatch) -> None:
    host, d = stack
    toolkit, cdi = _facts(host, d, monkeypatch)
    versions = {b.name: b.version for b in toolkit.binaries if b.present}
    assert set(versions) == set(TOOLKIT_BINARIES)  # nvidia-container-cli is not in this kit
    assert len(set(versions.values())) == 1
    if kit_version(host.bin_dir):
        assert set(versions.values()) == {kit_version(host.bin_dir)}
    assert all(b.path == str(host.bin_dir / b.name) for b in toolkit.binaries if b.present)
    assert toolkit.config_path == str(host.config_path) and toolkit.config_exists and toolkit.mode == "cdi"
    assert toolkit.cdi_spec_dirs == (str(host.spec_dir),)
    assert str(host.spec_dir) in cdi.dirs
    [spec] = cdi.nvidia_specs
    assert spec.path == str(host.spec_path) and spec.ok and spec.kind == "nvidia.com/gpu"
    assert spec.qualified_names == tuple(f"nvidia.com/gpu={dev['name']}" for dev in host.spec["devices"])
    assert spec.driver_versions == ("580.159.04",)
    assert spec.hook_paths == (str(host.bin_dir / "nvidia-cdi-hook"),)


def test_gpudoctor_finds_every_host_path_of_the_spec(stack, monkeypatch) -> None:
    host, d = stack
    _, cdi = _facts(host, d, monkeypatch)
    [spec] = cdi.nvidia_specs
    assert spec.missing == ()
