"""Probe pieces that need no engine: the form catalogue, the report parser, error mapping, judging.

Error texts are the real ones (tests/fixtures/real-h100-docker20-toolkit-cdi/observed-request-forms.log).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpudoctor.probes.compare import DEGRADED, FAILS, MISMATCH, NOT_RUN, WORKS, judge, seen_gpus
from gpudoctor.probes.errors import classify, strip_envelope
from gpudoctor.gpu_requests.request import HostGpu
from gpudoctor.probes.forms import FORM_IDS, FORMS, FormContext, form, select_forms
from gpudoctor.probes.parse import parse_probe_output

FIX = Path(__file__).parent / "fixtures"
REAL_UUID = "GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821"
H100 = (HostGpu(0, REAL_UUID, 0, "NVIDIA H100 80GB HBM3"),)
FOUR = tuple(HostGpu(i, f"GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd", i) for i in range(4))

HOOK_CDI = (
    "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: "
    "error during container init: error running hook #0: error running hook: exit status 1, stdout: , stderr: "
    "Using requested mode 'cdi'\ninvoking the NVIDIA Container Runtime Hook directly (e.g. specifying the docker "
    "--gpus flag) is not supported. Please use the NVIDIA Container Runtime (e.g. specify the --runtime=nvidia flag) "
    "instead: unknown"
)


def ctx(gpus=FOUR, cdi=False):
    return FormContext(gpus=gpus, image="img", cdi_supported=cdi, nvidia_runtime=True)


def test_catalogue_has_every_form_once_with_three_spellings():
    assert len(set(FORM_IDS)) == len(FORM_IDS) == 15
    for f in FORMS:
        if f.applies(ctx(cdi=True)):
            continue
        for spec in f.expand(ctx(cdi=True)):
            assert spec.cli.startswith("docker run --rm") and "client.containers.run" in spec.sdk
            assert spec.check_id.startswith("containers.")


def test_count_is_not_an_index():
    (one,) = form("gpus-count-1").expand(ctx())
    assert one.device_requests[0]["Count"] == 1 and one.expect_indices == (0,)
    (over,) = form("gpus-count-over").expand(ctx())
    assert over.device_requests[0]["Count"] == 5 and over.expect_error
    devices = form("gpus-device-index").expand(ctx())
    # GPU 0 alone, then all four in one request (issue 12; the list quoted as one CSV field).
    assert [d.device_requests[0]["DeviceIDs"] for d in devices] == [["0"], ["0", "1", "2", "3"]]
    assert [d.expect_indices for d in devices] == [(0,), (0, 1, 2, 3)]
    assert devices[1].title == """--gpus '"device=0,1,2,3"'"""
    uuids = form("gpus-device-uuid").expand(ctx())
    assert uuids[1].device_requests[0]["DeviceIDs"] == [g.uuid for g in FOUR]


def test_cdi_forms_need_a_cdi_daemon_and_sdk_spelling_uses_cdi_driver():
    assert "CDI" in form("cdi-all").applies(ctx(cdi=False))
    (spec,) = form("cdi-all").expand(ctx(cdi=True))
    assert spec.device_requests[0]["Driver"] == "cdi"
    assert spec.device_requests[0]["DeviceIDs"] == ["nvidia.com/gpu=all"]


def test_selection_always_keeps_the_baseline_and_reports_unknown_ids():
    chosen, unknown = select_forms(["gpus-count-1", "bogus"], all_forms=False)
    assert [f.id for f in chosen] == ["baseline", "gpus-count-1"] and unknown == ("bogus",)
    default, _ = select_forms(None, False)
    assert {f.id for f in default} == {"baseline", "gpus-all", "sdk-runtime-nvidia", "runtime-nvidia-env", "cdi-all"}
    assert len(select_forms(None, True)[0]) == len(FORMS)


def test_parse_real_h100_probe_report():
    view = parse_probe_output((FIX / "probe-output/h100-cdi-runtime-nvidia.txt").read_text())
    assert view.valid
    assert view.gpu_minors == (0,)
    assert view.smi_uuids == (REAL_UUID,) and view.smi_works
    assert view.has_node("/dev/nvidia-uvm") and view.has_node("/dev/nvidiactl")
    assert view.env_value("NVIDIA_VISIBLE_DEVICES") == "void"
    assert view.lib_is_mounted("/usr/lib/x86_64-linux-gnu/libcuda.so.580.95.05")


def test_parse_coreutils_listing_mig_lines_and_garbage():
    text = "\n".join([
        "@@gpudoctor-probe 1", "@@dev",
        "crw-rw-rw- 1 0 0 195,   1 Nov 23 05:33 /dev/nvidia1",
        "crw-rw-rw- 1 0 0 195, 255 Nov 23 05:33 /dev/nvidiactl",
        "garbage line", "@@smi-path", "/usr/bin/nvidia-smi", "@@smi-L 0",
        "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-11111111-2222-3333-4444-555555555555)",
        "  MIG 3g.20gb     Device  0: (UUID: MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee)",
        "@@env", "NVIDIA_VISIBLE_DEVICES=1", "@@end",
    ])
    view = parse_probe_output(text)
    assert view.gpu_minors == (1,)
    assert view.mig_uuids == ("MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",)
    assert not parse_probe_output("sh: not found\n").valid


@pytest.mark.parametrize(
    "text, cause, owner",
    [
        ('could not select device driver "" with capabilities: [[gpu]]', "no-gpu-device-driver-in-dockerd", "toolkit.installed"),
        ("Unknown runtime specified nvidia", "runtime-not-registered", "docker.runtime.nvidia"),
        ("unknown or invalid runtime name: nvidia", "runtime-not-registered", "docker.runtime.nvidia"),
        (HOOK_CDI, "cdi-mode-hook-invoked-directly", "toolkit.mode"),
        ("CDI device injection failed: unresolvable CDI devices nvidia.com/gpu=GPU-3e3d", "cdi-spec-missing-or-unreadable", "cdi.devices"),
        ("cannot set both Count and DeviceIDs on device request", "gpus-device-list-quoting", None),
        ("... stderr: nvidia-container-cli: device error: 1: unknown device: unknown", "unknown-device", None),
        ("stderr: nvidia-container-cli: requirement error: unsatisfied condition: cuda>=13.1, please update your driver", "image-requires-newer-driver", None),
        ("nvidia-container-cli: initialization error: nvml error: driver/library version mismatch: unknown", "driver-library-version-mismatch", "nvml.init"),
        ("something nobody has seen", "unrecognised", None),
    ],
)
def test_real_error_texts_map_to_causes(text, cause, owner):
    got = classify(text)
    assert got.id == cause and got.layer_check == owner
    assert got.fix.summary


def test_strip_envelope_keeps_the_toolkits_words():
    assert strip_envelope(HOOK_CDI).startswith("Using requested mode 'cdi' invoking the NVIDIA Container Runtime Hook")


def _outcome(output=None, error=None, **kw):
    if error is not None:
        return {"ok": False, "error": error, "phase": "start", **kw}
    return {"ok": True, "output": output, "exit_code": 0, **kw}


def _report(minors=(), uuids=(), smi=True, uvm=True):
    lines = ["@@gpudoctor-probe 1", "@@dev"]
    lines += [f"crw-rw-rw- 1 0 0 195, {m} Jan 1 00:00 /dev/nvidia{m}" for m in minors]
    if minors:
        lines.append("crw-rw-rw- 1 0 0 195, 255 Jan 1 00:00 /dev/nvidiactl")
        if uvm:
            lines.append("crw-rw-rw- 1 0 0 238, 0 Jan 1 00:00 /dev/nvidia-uvm")
    lines.append("@@smi-path")
    if smi and minors:
        lines += ["/usr/bin/nvidia-smi", "@@smi-L 0"]
        lines += [f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: {u})" for i, u in enumerate(uuids)]
    lines += ["@@env", "@@end"]
    return "\n".join(lines)


def test_judging_each_verdict():
    (all_spec,) = form("gpus-all").expand(ctx())
    every = _report(range(4), [g.uuid for g in FOUR])
    assert judge(all_spec, _outcome(every), FOUR).verdict == WORKS

    three = _report(range(3), [g.uuid for g in FOUR[:3]])
    j = judge(all_spec, _outcome(three), FOUR)
    assert j.verdict == MISMATCH and "missing GPU 3" in j.summary

    j = judge(all_spec, _outcome(error='could not select device driver "" with capabilities: [[gpu]]'), FOUR)
    assert j.verdict == FAILS and j.cause.layer_check == "toolkit.installed"

    j = judge(all_spec, _outcome(_report(range(4), smi=False)), FOUR)
    assert j.verdict == DEGRADED and "nvidia-smi was not injected" in j.summary
    assert j.seen_indices == (0, 1, 2, 3)  # identified by device minors without nvidia-smi

    j = judge(all_spec, _outcome(_report(range(4), [g.uuid for g in FOUR], uvm=False)), FOUR)
    assert j.verdict == DEGRADED and "/dev/nvidia-uvm" in j.summary

    j = judge(all_spec, {"ok": False, "timed_out": True, "error": "the probe did not finish within 60s"}, FOUR)
    assert j.verdict == NOT_RUN


def test_count_one_exposes_gpu_zero_and_baseline_leak_is_a_mismatch():
    (one,) = form("gpus-count-1").expand(ctx())
    assert judge(one, _outcome(_report([0], [FOUR[0].uuid])), FOUR).verdict == WORKS
    (base,) = form("baseline").expand(ctx())
    assert judge(base, _outcome(_report()), FOUR).verdict == WORKS
    leak = judge(base, _outcome(_report(range(4), [g.uuid for g in FOUR])), FOUR)
    assert leak.verdict == MISMATCH and "unexpected GPU 0" in leak.summary


def test_count_over_must_be_refused():
    (over,) = form("gpus-count-over").expand(ctx())
    refused = judge(over, _outcome(error="stderr: nvidia-container-cli: device error: 4: unknown device: unknown"), FOUR)
    assert refused.verdict == WORKS
    accepted = judge(over, _outcome(_report(range(4), [g.uuid for g in FOUR])), FOUR)
    assert accepted.verdict == MISMATCH
    # Refused is right whatever the words (issue 9); words that reveal a broken path are a finding of their own.
    skew = judge(over, _outcome(error="stderr: nvidia-container-cli configure: unrecognized option "
                                      "'--cuda-compat-mode=ldconfig'"), FOUR)
    assert skew.verdict == WORKS
    assert skew.revealed is not None and skew.revealed.layer_check == "toolkit.versions"
    assert refused.revealed is None
    # cdi/jit-cdi mode refuses index 4 of a 4-GPU host as an unresolvable CDI name: right refusal
    cdi = judge(over, _outcome(error="... stderr: unresolvable CDI devices nvidia.com/gpu=4: unknown"), FOUR)
    assert cdi.verdict == WORKS
    # but a missing name of a GPU the host has is a real failure
    (one,) = form("gpus-count-1").expand(ctx())
    assert judge(one, _outcome(error="unresolvable CDI devices nvidia.com/gpu=0"), FOUR).verdict == FAILS


def test_unknown_uuid_is_named():
    view = parse_probe_output(_report([0], ["GPU-99999999-0000-0000-0000-000000000000"]))
    indices, unknown, how = seen_gpus(view, FOUR)
    assert indices == () and unknown == ("GPU-99999999-0000-0000-0000-000000000000",) and how == "nvidia-smi UUIDs"


def test_a_present_cuda_base_image_the_driver_supports_is_preferred():
    from gpudoctor.probes.cuda_images import present_fit

    present = ["nvidia/cuda:12.4.1-base-ubuntu22.04", "nvidia/cuda:13.1.0-base-ubuntu24.04",
               "nvidia/cuda:12.8.0-base-ubuntu24.04", "nvidia/cuda:12.8.0-devel-ubuntu24.04"]
    assert present_fit(13000, present) == "nvidia/cuda:12.8.0-base-ubuntu24.04"  # 13.1 needs a newer driver
    assert present_fit(12020, present) is None  # 12.4 needs a newer driver than 535's CUDA 12.2
    assert present_fit(None, ["nvidia/cuda:12.4.1-base-ubuntu22.04"]) == "nvidia/cuda:12.4.1-base-ubuntu22.04"
    assert present_fit(13000, ["nvidia/cuda:12.8.0-devel-ubuntu24.04", "busybox:latest"]) is None


def test_the_pull_tag_is_a_published_one_for_the_drivers_cuda_version():
    """The tag is the newest published base image the driver supports, never one derived from its number: driver
    535 (CUDA 12.2) has 12.2.2, not 12.2.0; 565 (CUDA 12.7) has no CUDA 12.7 image at all."""
    from gpudoctor.probes.cuda_images import BASE_TAGS, known_tag

    assert known_tag(12020) == "nvidia/cuda:12.2.2-base-ubuntu22.04"
    assert known_tag(12070) == "nvidia/cuda:12.6.3-base-ubuntu24.04"
    assert known_tag(12080) == "nvidia/cuda:12.8.2-base-ubuntu24.04"
    assert known_tag(13000) == "nvidia/cuda:13.0.3-base-ubuntu24.04"
    assert known_tag(99990) == "nvidia/cuda:13.2.1-base-ubuntu24.04"  # a newer driver runs the newest image
    assert known_tag(11040) is None and known_tag(None) is None
    published = {f"nvidia/cuda:{a}.{b}.{c}-base-{os}" for (a, b, c), oses in BASE_TAGS.items() for os in oses}
    for cuda in range(11070, 14000, 10):
        tag = known_tag(cuda)
        assert tag in published, cuda


@pytest.mark.parametrize(
    "args, default_runtime, read_only",
    [
        ({}, "runc", True),
        ({}, None, False),  # the default runtime is not known: it may be nvidia
        ({}, "nvidia", False),  # the daemon's default runtime is the NVIDIA one: the hook may run
        ({"runtime": "nvidia"}, "runc", False),
        ({"device_requests": [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]}, "runc", False),
        ({"device_requests": [{"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=all"]}]}, "runc", False),
    ],
)
def test_read_only_rootfs_only_where_no_nvidia_component_runs(args, default_runtime, read_only):
    from gpudoctor.probes import runner

    assert runner.hardening_for(args, default_runtime, True)["read_only_rootfs"] is read_only


def test_a_users_own_command_keeps_its_user_and_a_writable_rootfs():
    from gpudoctor.probes import runner

    got = runner.hardening_for({"command": ["python", "train.py"]}, "runc", True)
    assert got["read_only_rootfs"] is False and got["user"] is None
    assert got["cap_drop"] == "ALL" and got["nano_cpus"] == runner.PROBE_NANO_CPUS  # the limits still apply
    assert got["memory"] == runner.WORKLOAD_MEMORY and got["pids_limit"] == runner.WORKLOAD_PIDS


def test_forms_started_before_nvml_make_the_same_containers_whatever_the_gpu_list():
    """facts/probes.py starts GPU_LIST_FREE_FORMS' probes before NVML answers: their keys and create arguments must
    not depend on the GPU list (only their expectations may)."""
    from gpudoctor.facts.probes import GPU_LIST_FREE_FORMS

    assert GPU_LIST_FREE_FORMS <= set(FORM_IDS)
    one = (HostGpu(0, "GPU-aaaaaaaa-0000-0000-0000-000000000000", 0),)
    many = tuple(HostGpu(i, f"GPU-bbbbbbbb-0000-0000-0000-00000000000{i}", i + 3) for i in range(4))
    presumed = (HostGpu(0, None, 0),)
    for form_id in GPU_LIST_FREE_FORMS:
        made = [[(s.key, s.create_args()) for s in form(form_id).expand(FormContext(gpus, "img", True, True))]
                for gpus in (one, many, presumed)]
        assert made[0] == made[1] == made[2], form_id
