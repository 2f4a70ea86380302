"""Per-GPU forms at most two containers whatever the GPU count (issue 12): GPU 0 alone (the spec and key of
before, so recorded 1-GPU bundles replay) and, with two or more GPUs, one request naming every GPU, whose
judgement still names the GPU it lacks. Pure: no engine."""

from __future__ import annotations

from typing import Any

import pytest

from gpudoctor.checks.containers import judge_check, summary
from gpudoctor.facts.probes import ProbeFacts
from gpudoctor.gpu_requests.behaviour import predict
from gpudoctor.gpu_requests.request import HostGpu
from gpudoctor.gpu_requests.stack import StackState
from gpudoctor.probes.compare import FAILS, MISMATCH, WORKS, judge
from gpudoctor.probes.forms import FORMS, FormContext, form

PER_GPU = ("gpus-device-index", "gpus-device-uuid", "cdi-index", "cdi-uuid", "mig")
MIGS = ((0, "MIG-aaaaaaaa-0000-0000-0000-000000000000", "3g.40gb"), (1, "MIG-bbbbbbbb-0000-0000-0000-000000000000", "3g.40gb"))
EIGHT = tuple(
    HostGpu(i, f"GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd", i, "NVIDIA H100 80GB HBM3",
            mig_enabled=i == 3, mig_devices=MIGS if i == 3 else ())
    for i in range(8)
)
ONE = (HostGpu(0, "GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821", 0, "NVIDIA H100 80GB HBM3"),)


def ctx(gpus: tuple[HostGpu, ...] = EIGHT) -> FormContext:
    return FormContext(gpus=gpus, image="img", cdi_supported=True, nvidia_runtime=True)


def _report(gpus: tuple[HostGpu, ...], migs: tuple[str, ...] = ()) -> str:
    lines = ["@@gpudoctor-probe 1", "@@dev"]
    lines += [f"crw-rw-rw- 1 0 0 195, {g.minor} Jan 1 00:00 /dev/nvidia{g.minor}" for g in gpus]
    lines += ["crw-rw-rw- 1 0 0 195, 255 Jan 1 00:00 /dev/nvidiactl", "crw-rw-rw- 1 0 0 238, 0 Jan 1 00:00 /dev/nvidia-uvm",
              "@@smi-path", "/usr/bin/nvidia-smi", "@@smi-L 0"]
    lines += [f"GPU {g.index}: NVIDIA H100 80GB HBM3 (UUID: {g.uuid})" for g in gpus]
    lines += [f"  MIG 3g.40gb     Device  {i}: (UUID: {u})" for i, u in enumerate(migs)]
    lines += ["@@env", "@@end"]
    return "\n".join(lines)


def _ok(output: str) -> dict[str, Any]:
    return {"ok": True, "output": output, "exit_code": 0}


def _refused(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error, "phase": "start"}


@pytest.mark.parametrize("form_id", PER_GPU)
def test_eight_gpus_take_two_specs_per_form_the_first_as_before(form_id: str) -> None:
    specs = form(form_id).expand(ctx())
    assert len(specs) == 2
    first, every = specs
    one_mig = (HostGpu(3, EIGHT[3].uuid, 3, mig_enabled=True, mig_devices=MIGS[:1]),)
    one_gpu = form(form_id).expand(ctx(EIGHT[:1] if form_id != "mig" else one_mig))
    # The first is the 1-GPU host's spec (same key and request), only its scope is said.
    assert (first.key, first.device_requests, first.title) == (one_gpu[0].key, one_gpu[0].device_requests, one_gpu[0].title)
    assert len(one_gpu) == 1 and one_gpu[0].scope == "" and first.scope.endswith(" alone")
    assert every.scope.endswith(" in one request") and every.key != first.key
    if form_id == "mig":
        assert every.expect_mig == tuple(u for _i, u, _n in MIGS)
    else:
        assert every.expect_indices == tuple(range(8)) and len(every.asks) == 8


def test_the_combined_requests_are_spelled_as_docker_takes_a_list() -> None:
    index, uuid, cdi = (form(f).expand(ctx())[1] for f in ("gpus-device-index", "gpus-device-uuid", "cdi-index"))
    # docker/cli reads --gpus as one CSV record: the list needs its inner quotes (failure-modes.md #47).
    assert index.title == """--gpus '"device=0,1,2,3,4,5,6,7"'"""
    assert index.device_requests[0]["DeviceIDs"] == [str(i) for i in range(8)] and index.device_requests[0]["Count"] == 0
    assert uuid.device_requests[0]["DeviceIDs"] == [g.uuid for g in EIGHT]
    # Several --device names are one CDI DeviceRequest (docker-gpu-internals.md §2.2).
    assert cdi.title.count("--device nvidia.com/gpu=") == 8
    assert cdi.device_requests == ({"Driver": "cdi", "Count": 0, "DeviceIDs": [f"nvidia.com/gpu={i}" for i in range(8)],
                                    "Capabilities": None, "Options": {}},)
    assert 'device_ids=["0", "1", "2", "3", "4", "5", "6", "7"]' in index.sdk


def test_all_forms_cost_on_eight_gpus_grows_by_the_forms_not_the_gpus() -> None:
    def count(gpus: tuple[HostGpu, ...]) -> int:
        c = ctx(gpus)
        return sum(len(f.expand(c)) for f in FORMS if not f.applies(c))

    one = count(ONE)
    assert one == 14  # as before issue 12
    assert count(EIGHT) == one + 4 + 2  # the four per-GPU forms' combined requests, and MIG's two
    assert count(tuple(g for g in EIGHT if not g.mig_devices)) <= 1.5 * one


def test_the_combined_judgement_names_the_gpu_it_lacks() -> None:
    every = form("gpus-device-index").expand(ctx())[1]
    assert judge(every, _ok(_report(EIGHT)), EIGHT).verdict == WORKS
    j = judge(every, _ok(_report(EIGHT[:7])), EIGHT)
    assert j.verdict == MISMATCH and j.missing == (7,) and "missing GPU 7 (GPU-00000007" in j.summary
    assert j.seen_indices == tuple(range(7))


def test_a_refused_combined_request_names_the_gpu_it_could_not_resolve() -> None:
    cdi = form("cdi-index").expand(ctx())[1]
    j = judge(cdi, _refused("CDI device injection failed: unresolvable CDI devices nvidia.com/gpu=7"), EIGHT)
    assert j.verdict == FAILS and j.named == ("GPU 7",) and "the refusal names GPU 7" in j.summary
    uuid = form("gpus-device-uuid").expand(ctx())[1]
    j = judge(uuid, _refused(f"nvidia-container-cli: device error: {EIGHT[5].uuid}: unknown device"), EIGHT)
    assert j.named == ("GPU 5",)
    index = form("gpus-device-index").expand(ctx())[1]
    j = judge(index, _refused("nvidia-container-cli: device error: 6: unknown device: exit status 1"), EIGHT)
    assert j.named == ("GPU 6",)  # "exit status 1" names no GPU 1
    # A single GPU's refusal says nothing more than before.
    first = form("cdi-index").expand(ctx())[0]
    assert "refusal names" not in judge(first, _refused("unresolvable CDI devices nvidia.com/gpu=0"), EIGHT).summary


def test_the_combined_mig_request_names_only_the_mig_device_it_lacks() -> None:
    every = form("mig").expand(ctx())[1]
    (a, b) = every.expect_mig
    assert judge(every, _ok(_report(EIGHT[3:4], (a, b))), EIGHT).verdict == WORKS
    j = judge(every, _ok(_report(EIGHT[3:4], (a,))), EIGHT)
    lacking = j.summary.partition(": the container did not see ")[2]
    assert j.verdict == MISMATCH and lacking == f"MIG device {b}" and j.named == (b,)


# -- the behaviour model predicts the combined request by the same rules as each GPU ------------------------
INDEX_NAMES = frozenset({"nvidia.com/gpu=all", *(f"nvidia.com/gpu={i}" for i in range(8))})
CDI_29 = StackState(engine=(29, 7, 2), cdi_enabled=True, legacy_hook_at_start=True, cdi_hook_at_start=True,
                    toolkit_installed=True, mode="auto", daemon_cdi_names=INDEX_NAMES, any_cdi_spec=True)


def test_prediction_resolves_every_index_name_of_the_combined_cdi_request() -> None:
    every = form("cdi-index").expand(ctx())[1]
    p = predict(every.request(), CDI_29, EIGHT)
    assert not p.refused and p.devices == tuple(range(8))


def test_prediction_refuses_the_combined_uuid_request_on_an_index_only_spec() -> None:
    every = form("cdi-uuid").expand(ctx())[1]
    p = predict(every.request(), CDI_29, EIGHT)
    assert p.refused and p.blame == "cdi.devices"
    assert p.text.startswith("unresolvable CDI devices nvidia.com/gpu=GPU-00000000") and EIGHT[7].uuid in p.text
    # --gpus by UUIDs on 29.x: the names are not in the spec, so Docker hands the request to the legacy hook.
    gpus = form("gpus-device-uuid").expand(ctx())[1]
    p = predict(gpus.request(), CDI_29, EIGHT)
    assert not p.refused and p.devices == tuple(range(8)) and p.via[-1] == "legacy-hook"


def test_prediction_of_the_combined_index_request_beyond_the_spec_names_the_missing_gpu() -> None:
    seven = StackState(**{**CDI_29.__dict__, "daemon_cdi_names": INDEX_NAMES - {"nvidia.com/gpu=7"}})
    p = predict(form("cdi-index").expand(ctx())[1].request(), seven, EIGHT)
    assert p.refused and p.blame == "cdi.devices" and p.text == "unresolvable CDI devices nvidia.com/gpu=7"


# -- what the report says ------------------------------------------------------------------------------------
def _facts(form_ids: tuple[str, ...], outcomes: dict[str, dict[str, Any]] | None = None) -> ProbeFacts:
    c = ctx()
    specs = tuple(s for f in FORMS if f.id in ("baseline", *form_ids) for s in f.expand(c))
    ok = {s.key: _ok(_report(tuple(EIGHT[i] for i in s.expect_indices), s.expect_mig)) for s in specs}
    ok["baseline"] = _ok(_report(()))
    return ProbeFacts(True, image="img", gpus=EIGHT, specs=specs, outcomes={**ok, **(outcomes or {})})


def test_the_report_says_what_each_container_covered() -> None:
    facts = _facts(("gpus-device-index", "gpus-device-uuid", "mig"))
    results = list(judge_check(facts, "containers.gpus-device"))
    assert [r.subject for r in results][:2] == ["--gpus device=0 (GPU 0 alone)",
                                                """--gpus '"device=0,1,2,3,4,5,6,7"' (GPUs 0–7 in one request)"""]
    combined = results[1].evidence
    assert combined["asked_indices"] == combined["seen_indices"] == list(range(8)) and combined["asked"] == [str(i) for i in range(8)]
    note = summary.fn(facts).evidence["verdict_note"]
    assert "not one per GPU" in note and "--gpus device=I: GPU 0 alone, and GPUs 0–7 in one request" in note
    assert "MIG device 3:0 alone, and MIG devices 3:0, 3:1 in one request" in note


def test_the_missing_gpu_is_named_in_the_check_and_its_evidence() -> None:
    every = form("gpus-device-index").expand(ctx())[1]
    facts = _facts(("gpus-all", "gpus-device-index"), {every.key: _ok(_report(EIGHT[:3] + EIGHT[4:]))})
    results = list(judge_check(facts, "containers.gpus-device"))
    bad = [r for r in results if r.status.value == "fail"]
    assert len(bad) == 1 and "missing GPU 3 (GPU-00000003" in bad[0].summary
    assert bad[0].evidence["missing_indices"] == [3] and bad[0].evidence["asked_indices"] == list(range(8))
    s = summary.fn(facts)
    row = next(r for r in s.evidence["table"]["rows"] if r["form"] == every.key)
    assert row["verdict"] == MISMATCH and row["seen"] == "GPU 0, 1, 2, 4, 5, 6, 7"
    assert "not working: --gpus device=I" in s.evidence["verdict_note"]


def test_one_gpu_hosts_report_as_before() -> None:
    (spec,) = form("gpus-device-index").expand(ctx(ONE))
    assert (spec.key, spec.title, spec.scope) == ("gpus-device-index:0", "--gpus device=0", "")
    facts = ProbeFacts(True, image="img", gpus=ONE, specs=(spec,), outcomes={spec.key: _ok(_report(ONE))})
    s = summary.fn(facts)
    assert "per_gpu_probes" not in s.evidence and "one per GPU" not in s.evidence["verdict_note"]
