"""gpudoctor's own image: the repo's Dockerfile built offline on a private dockerd (tests/support/gpudoctor_image.py),
then run against this machine with the host root, the daemon's socket and --pid host mounted as the README says.
Its verdict and root cause must be the native run's: the container judges the same host, not itself."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.cli import run_cli
from tests.support.dockerd import PrivateDockerd
from tests.support.engines import find_dockerd
from tests.support.gpudoctor_image import BuiltImage, build_image, why_not_buildable


@pytest.fixture(scope="module")
def daemon() -> Iterator[PrivateDockerd]:
    if os.geteuid() != 0:
        pytest.skip("a private dockerd needs root")
    if find_dockerd() is None:
        pytest.skip("no dockerd on this machine (Debian's docker.io)")
    d = PrivateDockerd(None, {})
    d.start()
    try:
        yield d
    finally:
        d.close()


@pytest.fixture(scope="module")
def image(daemon: PrivateDockerd, tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    reason = why_not_buildable()
    if reason:
        pytest.skip(reason)
    built = build_image(daemon, tmp_path_factory.mktemp("image"))
    print(f"\nimage {built.tag}: {built.size_bytes / 2**20:.1f} MiB (base {built.base_size_bytes / 2**20:.1f} MiB); "
          + ", ".join(f"{k} {v:.1f}" for k, v in built.timings.items()))
    return built


def host_mounts(daemon: PrivateDockerd) -> list[str]:
    """The README's run line, less --gpus (this machine has no GPU): the host root read-only, the daemon's socket
    at the default path, the host's PID namespace (the daemon's pid, seen through the socket, names a host
    process) and the socket's group for the image's non-root user."""
    return [
        "--network", "none", "--pid", "host",
        "-v", "/:/host:ro", "-v", f"{daemon.socket}:/var/run/docker.sock",
        "--group-add", str(os.stat(daemon.socket).st_gid),
    ]


def _report(stdout: str, stderr: str) -> dict[str, Any]:
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not a JSON report:\n{stdout[-2000:]}\n{stderr[-2000:]}") from None


@pytest.mark.docker
def test_image_runs_as_non_root(daemon: PrivateDockerd, image: BuiltImage) -> None:
    proc = daemon.docker("run", "--rm", "--network", "none", "--entrypoint", "python3", image.tag, "-c",
                         "import os, gpudoctor; print(os.getuid(), os.getgid(), gpudoctor.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["65532", "65532", "/opt/gpudoctor/gpudoctor/__init__.py"]
    proc = daemon.docker("run", "--rm", "--network", "none", image.tag, "--version")
    assert proc.returncode == 0 and proc.stdout.strip().startswith("gpudoctor "), proc.stderr
    inspect = json.loads(daemon.docker("image", "inspect", image.tag, check=True).stdout)[0]["Config"]
    assert inspect["Entrypoint"] == ["gpudoctor"] and inspect["User"] == "65532:65532"
    assert image.size_bytes < 120 * 2**20  # base ~44 MiB + gpudoctor and its dependencies ~21 MiB


@pytest.mark.docker
def test_container_verdict_equals_native(daemon: PrivateDockerd, image: BuiltImage) -> None:
    native_proc = run_cli(["check", "--format", "json"], env=daemon.env())
    native = _report(native_proc.stdout, native_proc.stderr)
    proc = daemon.docker("run", "--rm", *host_mounts(daemon), image.tag, "check", "--root", "/host", "--format", "json",
                         timeout=300)
    contained = _report(proc.stdout, proc.stderr)
    assert proc.returncode == native_proc.returncode, proc.stderr
    for key in ("ready", "root_cause", "layer"):
        assert contained["verdict"][key] == native["verdict"][key], (key, contained["verdict"], native["verdict"])
    assert contained["host"]["root"] == "/host" and native["host"]["root"] == "/"
    assert contained["host"]["hostname"] == native["host"]["hostname"]
    # Every check judged alike, but for what only root may read (/proc/<dockerd>/environ; the image is non-root).
    differ = {
        c["id"]: (c["status"], n["status"])
        for c, n in zip(contained["checks"], native["checks"])
        if c["status"] != n["status"]
    }
    assert [c["id"] for c in contained["checks"]] == [c["id"] for c in native["checks"]]
    assert differ == {}, differ


def test_hostname_under_a_root_is_the_trees(tmp_path: Path) -> None:
    """Under --root, /proc/sys/kernel/hostname would name the reader's UTS namespace (the container): the tree's
    /etc/hostname names the host, so `gpudoctor merge` of a DaemonSet's reports shows nodes, not pods."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hostname").write_text("gpu-node-17\n")
    proc = run_cli(["check", "--root", str(tmp_path), "--no-probes", "--format", "json"],
                   env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert _report(proc.stdout, proc.stderr)["host"]["hostname"] == "gpu-node-17"
    proc = run_cli(["check", "--root", "/", "--no-probes", "--format", "json"], env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert _report(proc.stdout, proc.stderr)["host"]["hostname"] == Path("/proc/sys/kernel/hostname").read_text().strip()


# -- deploy/*.yaml's container, run in the image -----------------------------------------------------------------
def _memory(quantity: str) -> str:
    units = {"Ki": "k", "Mi": "m", "Gi": "g"}
    return next((quantity[: -len(u)] + d for u, d in units.items() if quantity.endswith(u)), quantity)


def _cpus(quantity: str) -> str:
    return str(int(quantity[:-1]) / 1000) if quantity.endswith("m") else quantity


def docker_run_args(manifest: dict[str, Any], env_overrides: dict[str, str]) -> tuple[list[str], list[str]]:
    """The pod's container as `docker run` flags and the command after the image: hostPID, hostPath and emptyDir
    mounts, user, read-only root, dropped capabilities, no-new-privileges, limits and env, as the kubelet would
    ask a runtime for them. Not mapped: runtimeClassName (this machine has no GPU, so no nvidia runtime)."""
    spec = manifest["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    flags = ["--network", "none"]
    if spec.get("hostPID"):
        flags += ["--pid", "host"]
    for m in c["volumeMounts"]:
        v = volumes[m["name"]]
        if "hostPath" in v:
            flags += ["-v", f"{v['hostPath']['path']}:{m['mountPath']}" + (":ro" if m.get("readOnly") else "")]
        else:
            size = _memory(v["emptyDir"].get("sizeLimit", "64Mi"))
            flags += ["--tmpfs", f"{m['mountPath']}:size={size}"]
    sc = c["securityContext"]
    flags += ["--user", f"{sc['runAsUser']}:{sc['runAsGroup']}"]
    if sc.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    for cap in sc.get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", cap]
    if sc.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    limits = c["resources"]["limits"]
    flags += ["--memory", _memory(limits["memory"]), "--cpus", _cpus(limits["cpu"])]
    env = {e["name"]: e["value"] for e in c.get("env", [])}
    env.update(env_overrides)
    for k, v in env.items():
        flags += ["-e", f"{k}={v}"]
    flags += ["--entrypoint", c["command"][0]]
    return flags, [*c["command"][1:], *c.get("args", [])]


@pytest.mark.docker
@pytest.mark.parametrize("name", ["job.yaml", "daemonset.yaml"])
def test_manifest_container_runs_in_the_image(daemon: PrivateDockerd, image: BuiltImage, name: str) -> None:
    """The manifest's exact command, args, mounts, user and limits; only DOCKER_HOST points at this test's private
    daemon (under the same read-only /host mount), and the DaemonSet's loop stops after one run."""
    import yaml

    manifest = yaml.safe_load((Path(__file__).resolve().parent.parent / "deploy" / name).read_text())
    overrides = {"DOCKER_HOST": f"unix:///host{daemon.socket}"}
    if manifest["kind"] == "DaemonSet":
        overrides["GPUDOCTOR_REPEAT_TIMES"] = "1"
    flags, command = docker_run_args(manifest, overrides)
    native_proc = run_cli(["check", "--format", "json"], env=daemon.env())
    native = _report(native_proc.stdout, native_proc.stderr)
    proc = daemon.docker("run", "--rm", *flags, image.tag, *command, timeout=300)
    report = _report(proc.stdout, proc.stderr)
    # The Job gates on the exit code: it is the verdict's, as natively.
    assert proc.returncode == native_proc.returncode, proc.stderr
    for key in ("ready", "root_cause", "layer"):
        assert report["verdict"][key] == native["verdict"][key], (key, report["verdict"], native["verdict"])
    assert report["host"]["hostname"] == native["host"]["hostname"]
    if manifest["kind"] == "DaemonSet":
        assert "gpudoctor.repeat: run 1 exited" in proc.stderr
