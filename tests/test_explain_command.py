"""`explain_command`: check ids, bad input, host-aware selection (replayed NVML), JSON/text output,
Rich-markup safety and import lightness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpudoctor.checking import check
from gpudoctor.explain.analysis import analyze
from gpudoctor.explain.checkinfo import describe, split_doc, suggestions
from gpudoctor.explain.command import explain_command, explain_one
from gpudoctor.explain.model import Explanation, HostGpu, HostView
from gpudoctor.explain.render import InputProblem
from gpudoctor.model import Layer, passed

UUID0 = "GPU-a063a891-e48a-e7bf-fe00-f170bc68c4bb"  # the real H100 host (tests/fixtures/real-h100-host/nvidia-smi-L.txt)
UUID1 = "GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821"
MIG_UUID = "MIG-5c3a2b1e-1111-2222-3333-444455556666"


def run(inputs: list[str], capsys: pytest.CaptureFixture[str], **kw: object) -> tuple[int, str]:
    args = dict(kind=None, fmt="text", output=None, replay=None, root="/", use_host=False, no_color=True)
    args.update(kw)
    code = explain_command(inputs, **args)  # type: ignore[arg-type]
    return code, capsys.readouterr().out


def bundle(tmp_path: Path, gpus: list[dict]) -> str:
    """A replay bundle whose only answer is the NVML worker's snapshot (gpudoctor/facts/nvml.py format)."""
    snap = {"init": {"value": True}, "driver_version": {"value": "580.95.05"}, "device_count": {"value": len(gpus)}, "devices": gpus}
    data = {"format": "gpudoctor.bundle/v1", "tool_version": "test", "root": "/", "meta": {},
            "answers": [{"op": "nvml.snapshot", "args": [], "answer": {"value": snap}}]}
    p = tmp_path / "bundle.json"
    p.write_text(json.dumps(data))
    return str(p)


def dev(index: int, uuid: str, mig: list[dict] | None = None) -> dict:
    d = {"index": index, "uuid": {"value": uuid}, "name": {"value": "NVIDIA H100 80GB HBM3"},
         "pci_bus_id": {"value": f"00000000:{0x18 + index:02X}:00.0"}}
    if mig is not None:
        d["mig_mode"] = {"value": [1, 1]}
        d["mig_devices"] = {"value": mig}
    return d


# --- check ids --------------------------------------------------------------------------------

DOC = """The thing is configured.

Why: without it containers get no GPU (failure mode `no-gpu-requested`).

Fix: `sudo do-the-thing`
"""


def test_split_doc_reads_what_why_fix() -> None:
    assert split_doc(DOC) == ("The thing is configured.", "without it containers get no GPU (failure mode `no-gpu-requested`).", "`sudo do-the-thing`")


def test_constructed_check_is_described() -> None:
    @check("test.thing.configured", "The thing is configured", layer=Layer.DOCKER, needs=("docker",))
    def thing(docker: object):  # type: ignore[no-untyped-def]
        """The thing is configured.

        Why: without it containers get no GPU.

        Fix: `sudo do-the-thing`
        """
        return passed("ok")

    d = describe(thing.info)
    assert (d.id, d.layer, d.what, d.why, d.fix) == ("test.thing.configured", "docker", "The thing is configured.", "without it containers get no GPU.", "`sudo do-the-thing`")


def test_every_registered_check_explains(capsys: pytest.CaptureFixture[str]) -> None:
    from gpudoctor.engine import all_checks

    ids = [c.id for c in all_checks()]
    if not ids:
        pytest.skip("no checks registered yet")
    code, out = run(ids, capsys, fmt="json")
    data = json.loads(out)
    assert code == 0 and [i["id"] for i in data["items"]] == ids
    assert all(i["what"] for i in data["items"])


def test_unknown_check_id_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert suggestions("docker.runtime.nvdia", ["docker.runtime.nvidia", "kernel.module.loaded"]) == ["docker.runtime.nvidia"]
    code, out = run(["nosuch.layer.thing"], capsys)
    assert code == 2 and "no check with id 'nosuch.layer.thing'" in out


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind, needle",
    [
        ('docker run --gpus "all img', None, "No closing quotation"),
        ("x = 1", "sdk", "no function call"),
        ("print(", "sdk", "not valid Python"),
        ("foo(1)", "sdk", "no Docker SDK call found (saw: foo)"),
        ("foo: bar\nbaz: 1", None, "not a Compose file"),
        ("services: [", "compose", "not valid YAML"),
        ("podman run --gpus all img", None, "podman"),
        ("ls -l", "cmdline", "no `docker run`"),
        ("CUDA_VISIBLE_DEVICES=0", "env", "not NVIDIA_VISIBLE_DEVICES"),
    ],
)
def test_bad_input_exits_2_and_names_what_was_expected(text: str, kind: str | None, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run([text], capsys, kind=kind, fmt="json")
    item = json.loads(out)["items"][0]
    assert code == 2 and needle in item["error"] and item["expected"]


def test_unknown_kind_and_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["all"], capsys, kind="helm")[0] == 2
    assert run(["all"], capsys, fmt="xml")[0] == 2


def test_nothing_is_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    snippet = f'__import__("os").system("touch {marker}")\nDeviceRequest(count=-1, capabilities=[["gpu"]])'
    items = explain_one(snippet, kind=None)
    assert isinstance(items[0], Explanation) and not marker.exists()
    items = explain_one(f"docker run --gpus all img; touch {marker}", kind=None)
    assert isinstance(items[0], Explanation) and not marker.exists()


# --- host facts ---------------------------------------------------------------------------------

HOST = HostView((HostGpu(0, UUID0, name="NVIDIA H100 80GB HBM3"), HostGpu(1, UUID1, name="NVIDIA H100 80GB HBM3")))


def _ex(text: str, host: HostView | None = HOST) -> Explanation:
    from gpudoctor.explain.command import _parse
    from gpudoctor.explain.detect import detect_kind

    return analyze(_parse(detect_kind(text), text, argv=None, source=text)[0], host, text)


def test_selection_on_host_by_count_index_and_uuid() -> None:
    assert _ex("1").selection.on_host == (f"GPU 0 (NVIDIA H100 80GB HBM3, {UUID0})",)
    assert _ex(f"device={UUID1}").selection.on_host == (f"GPU 1 (NVIDIA H100 80GB HBM3, {UUID1})",)
    assert len(_ex("all").selection.on_host) == 2
    assert _ex("all", None).selection.on_host is None
    assert "first 2 GPUs in NVML order" in _ex("2", None).selection.general


def test_count_beyond_host_gpus_fails_with_hook_error() -> None:
    ex = _ex("count=3")
    p = next(p for p in ex.pitfalls if p.id == "host.count-exceeds-gpus")
    assert p.errors[0].text == "nvidia-container-cli: device error: 2: unknown device"


def test_unknown_device_on_host() -> None:
    ex = _ex("device=7")
    assert [p.id for p in ex.pitfalls] == ["host.unknown-device"] and ex.exit_code == 1


def test_mig_device_names_on_host() -> None:
    host = HostView((HostGpu(0, UUID0, name="NVIDIA H100 80GB HBM3", mig_enabled=True, mig_devices=((0, MIG_UUID, "1g.10gb"),)),))
    assert [p.id for p in _ex("device=0", host).pitfalls] == ["host.mig-whole-gpu"]
    ok = _ex(f"device={MIG_UUID}", host)
    assert not ok.pitfalls and ok.selection.on_host and "MIG 0:0" in ok.selection.on_host[0]
    assert not _ex("device=0:0", host).pitfalls


def test_replay_bundle_supplies_host_gpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = bundle(tmp_path, [dev(0, UUID0), dev(1, UUID1)])
    code, out = run(["device=1"], capsys, replay=path, fmt="json")
    item = json.loads(out)["items"][0]
    assert code == 0 and item["selection"]["on_host"] == [f"GPU 1 (NVIDIA H100 80GB HBM3, {UUID1})"]
    code, out = run(["3"], capsys, replay=path, fmt="json")
    assert code == 1 and "host.count-exceeds-gpus" in [p["id"] for p in json.loads(out)["items"][0]["pitfalls"]]


def test_general_terms_without_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["2"], capsys, use_host=False)
    assert code == 1 and "no host facts: explained in general terms" in out


# --- output ---------------------------------------------------------------------------------------


def test_json_output_file_and_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "x.json"
    code, out = run(["device=0,1", "all"], capsys, fmt="json", output=str(out_file))
    assert out == "" and code == 1
    data = json.loads(out_file.read_text())
    assert data["schema"] == "gpudoctor.explain/v1" and data["exit_code"] == 1
    first, second = data["items"]
    assert first["request"]["device_requests"] == [{"Driver": "", "Count": 1, "DeviceIDs": ["0"], "Capabilities": [["gpu"]], "Options": {}}]
    assert first["pitfalls"][0]["failure_mode"] == "gpus-device-list-quoting" and second["exit_code"] == 0


def test_argv_words_form_one_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["docker", "run", "--gpus", '"device=0,1"', "img"], capsys, fmt="json")
    items = json.loads(out)["items"]
    assert code == 0 and len(items) == 1 and items[0]["request"]["device_requests"][0]["DeviceIDs"] == ["0", "1"]


def test_compose_file_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "compose.yaml"
    f.write_text("services:\n  db:\n    image: postgres\n  gpu:\n    image: img\n    deploy:\n      resources:\n        reservations:\n"
                 "          devices:\n            - driver: nvidia\n              count: 1\n              capabilities: [gpu]\n")
    code, out = run([str(f)], capsys, fmt="json")
    items = json.loads(out)["items"]
    assert code == 0 and [i["label"] for i in items] == ['service "gpu"']


def test_user_text_is_not_rich_markup(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["docker run --gpus '[bold red]x[/]' img"], capsys)
    assert "[bold red]x[/]" in out and code == 1


def test_color_output_still_readable(tmp_path: Path) -> None:
    from gpudoctor.explain.render import to_text

    text = to_text(explain_one("device=0,1", kind=None), color=True)
    assert "\x1b[" in text and "cannot set both Count and DeviceIDs on device request" in text


def test_import_is_light() -> None:
    code = ("import sys, gpudoctor.explain, gpudoctor.explain.command; "
            "heavy = [m for m in ('yaml', 'rich', 'docker', 'pynvml') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_input_problem_is_reported_not_raised() -> None:
    items = explain_one("services: [", kind="compose")
    assert isinstance(items[0], InputProblem)


def test_live_host_without_nvml_falls_back_to_general_terms(capsys: pytest.CaptureFixture[str]) -> None:
    """On a machine where NVML does not answer (CI: no GPU), explain still works, in general terms."""
    from gpudoctor.explain.command import _load_host_view

    view = _load_host_view(replay=None, root="/", use_host=True)
    code, out = run(["all"], capsys, use_host=True, fmt="json")
    item = json.loads(out)["items"][0]
    assert code == 0
    if view is None:
        assert item["host"] is None and item["selection"]["on_host"] is None
    else:  # a GPU machine: every GPU NVML lists is selected
        assert len(item["selection"]["on_host"]) == len(view.gpus)


def test_runtime_nvidia_fails_on_a_host_whose_daemon_lacks_it():
    """The real H100 bundle: Docker 20.10 with runc only. `runtime="nvidia"` is a failing pitfall there."""
    import json
    from pathlib import Path

    from gpudoctor.explain.command import explain_command

    bundle = Path(__file__).parent / "fixtures/real-h100-host/bundle.json"
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "out.json"
        code = explain_command(
            ['client.containers.run("img", runtime="nvidia", device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])])'],
            kind=None, fmt="json", output=str(target), replay=str(bundle), root="/", use_host=True, no_color=True,
        )
        data = json.loads(target.read_text())
    text = json.dumps(data)
    assert code == 1
    assert "runtime.not-registered" in text and "Unknown runtime specified nvidia" in text
