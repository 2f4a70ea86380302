"""Support bundles: every answer a live host gives is recorded, and a replay gives the same answers,
errors included, and refuses loudly to invent anything it was not given."""

from __future__ import annotations

import errno
import json
import os

import pytest

from gpudoctor.facts.host import BundleError, HostCallError, NotRecorded, RecordingHost, ReplayHost


@pytest.fixture()
def tree(tmp_path):
    (tmp_path / "proc/driver/nvidia").mkdir(parents=True)
    (tmp_path / "proc/driver/nvidia/version").write_text("NVRM version: NVIDIA UNIX Open Kernel Module  580.159.04\n")
    (tmp_path / "sys").mkdir()
    os.symlink("../../../bus/pci/drivers/nvidia", tmp_path / "sys/driver")
    (tmp_path / "secret").write_text("x")
    (tmp_path / "secret").chmod(0)
    return tmp_path


def _exercise(host):
    out = {}
    out["read"] = host.read_text("/proc/driver/nvidia/version")
    out["list"] = host.list_dir("/proc/driver/nvidia")
    out["stat"] = host.stat("/proc/driver/nvidia/version").kind
    out["link"] = host.readlink("/sys/driver")
    try:
        host.read_text("/proc/driver/nvidia/gpus/none")
    except OSError as e:
        out["missing"] = e.errno
    out["run"] = host.run(["sh", "-c", "echo hi; echo err >&2; exit 3"]).__dict__ | {"argv": None}
    out["notfound"] = host.run(["no-such-binary-gpudoctor"]).failure
    out["notrun"] = host.run(["/usr/bin/nvidia-ctk", "--version"]).failure  # in the root tree: never executed
    out["env"] = host.getenv("GPUDOCTOR_TEST_VAR")
    out["now"] = host.now()

    def unreachable():
        raise HostCallError("no-socket", "no such file: /var/run/docker.sock", {"path": "/var/run/docker.sock"})

    try:
        host.call("docker.ping", [], unreachable)
    except HostCallError as e:
        out["call"] = (e.kind, e.message, e.data)
    out["value"] = host.call("docker.info", ["x"], lambda: {"Runtimes": {"runc": {}}})
    return out


def test_record_then_replay_gives_identical_answers(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("GPUDOCTOR_TEST_VAR", "recorded-value")
    recorder = RecordingHost(str(tree))
    live = _exercise(recorder)
    assert live["read"].startswith("NVRM version")
    assert live["missing"] == errno.ENOENT
    assert live["run"]["rc"] == 3 and live["run"]["stdout"] == "hi\n"
    assert live["notfound"] == "not-found" and live["notrun"] == "not-run"

    bundle = recorder.bundle("test", meta={"options": {"probes": False}})
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    monkeypatch.setenv("GPUDOCTOR_TEST_VAR", "changed-after-recording")
    replayed = _exercise(ReplayHost.load(str(path)))
    assert replayed == live


def test_replay_refuses_what_was_not_recorded(tree):
    recorder = RecordingHost(str(tree))
    recorder.read_text("/proc/driver/nvidia/version")
    replay = ReplayHost(recorder.bundle("test"))
    with pytest.raises(NotRecorded, match="read"):
        replay.read_text("/proc/driver/nvidia/params")
    with pytest.raises(NotRecorded):
        replay.call("nvml.snapshot", [], lambda: pytest.fail("a replay must never call the producer"))


def test_os_errors_keep_their_errno_through_a_replay(tree):
    recorder = RecordingHost(str(tree))

    def denied():
        raise PermissionError(errno.EACCES, "Permission denied", "/dev/nvidia0")

    with pytest.raises(PermissionError):
        recorder.call("open", ["/dev/nvidia0"], denied)
    with pytest.raises(PermissionError) as e:
        ReplayHost(recorder.bundle("t")).call("open", ["/dev/nvidia0"], denied)
    assert e.value.errno == errno.EACCES


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"format": "something-else"}', "not a gpudoctor bundle"),
        ('{"format": "gpudoctor.bundle/v1", "answers": {}}', "'answers' must be a list"),
        ('{"format": "gpudoctor.bundle/v1", "answers": [{"op": "read"}]}', "malformed"),
        ('[1, 2, 3]', "not a gpudoctor bundle"),
    ],
)
def test_corrupt_bundles_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "b.json"
    path.write_text(content)
    with pytest.raises(BundleError, match=message):
        ReplayHost.load(str(path))


def test_answer_without_value_is_a_bundle_error_when_loaded():
    # Refused when the bundle is loaded, not when a fact happens to ask for that answer.
    with pytest.raises(BundleError, match=r'answer #0 \(env \["X"\]\).*exactly one of value, oserror, callerror'):
        ReplayHost({"format": "gpudoctor.bundle/v1", "answers": [{"op": "env", "args": ["X"], "answer": {"bogus": 1}}]})


def test_large_files_are_refused_not_read_whole(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 2048)
    host = RecordingHost(str(tmp_path))
    with pytest.raises(OSError) as e:
        host.read_text("/big", limit=1024)
    assert e.value.errno == errno.EFBIG
