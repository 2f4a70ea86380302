"""Two forms that send the daemon the same request, to the byte, are answered by one probe container (issue 12):
on a 1-GPU host `--gpus N` is `--gpus 1` (count 1 both times). The report says which container answered, and a
bundle holds one probe for the two. Forms the daemon may only turn into the same container (`--gpus 1` and
`--gpus device=0`) keep a container each: that is what the probes find out."""

from __future__ import annotations

import json

import pytest

from gpudoctor.facts.probes import SAME_REQUEST_AS, same_requests
from gpudoctor.gpu_requests.request import HostGpu
from gpudoctor.probes.forms import FORMS, FormContext
from tests.sim.bed import NVIDIA_RUNTIME
from tests.sim.fixtures import sim_beds  # noqa: F401  (pytest fixture)
from tests.sim.host import SimHost
from tests.sim.toolkit import ToolkitSpec
from tests.support.cli import run_cli


def _gpus(n: int) -> tuple[HostGpu, ...]:
    return tuple(HostGpu(i, f"GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd", i, "NVIDIA H100 80GB HBM3") for i in range(n))


def _specs(n: int) -> list:
    ctx = FormContext(gpus=_gpus(n), image="img", cdi_supported=True, nvidia_runtime=True)
    return [s for f in FORMS if f.applies(ctx) is None for s in f.expand(ctx)]


def test_on_one_gpu_the_count_of_the_host_is_the_count_of_one():
    assert same_requests(_specs(1)) == {"gpus-count-host": "gpus-count-1"}


@pytest.mark.parametrize("n", [2, 8])
def test_on_several_gpus_every_form_sends_its_own_request(n: int):
    assert same_requests(_specs(n)) == {}


def test_a_request_differing_in_anything_is_its_own():
    one = next(s for s in _specs(1) if s.key == "gpus-count-1")
    by_index = next(s for s in _specs(1) if s.key == "gpus-device-index:0")
    # The daemon turns both into NVIDIA_VISIBLE_DEVICES=0, but that is for the probes to show, not to assume.
    assert same_requests([one, by_index]) == {}


@pytest.mark.docker
def test_one_container_answers_both_and_the_report_says_so(sim_beds, docker_engine, tmp_path):  # noqa: F811
    bed = sim_beds.shared(SimHost.standard(1), ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME, engine=docker_engine)
    forms = ["--image", bed.image, "--forms", "gpus-count-1,gpus-count-host", "--root", str(bed.root)]
    report = bed.check_json("--image", bed.image, "--forms", "gpus-count-1,gpus-count-host")
    check = next(c for c in report["checks"] if c["id"] == "containers.gpus-count")
    by_form = {r["evidence"]["form"]: r for r in check["results"]}
    assert set(by_form) == {"gpus-count-1", "gpus-count-host"}
    host, one = by_form["gpus-count-host"], by_form["gpus-count-1"]
    assert one["status"] == host["status"] == "pass"
    assert host["evidence"][SAME_REQUEST_AS] == "gpus-count-1" and SAME_REQUEST_AS not in one["evidence"]
    assert host["evidence"]["seen_indices"] == one["evidence"]["seen_indices"] == [0]
    assert any("one probe container answered both" in d and "--gpus 1" in d for d in host["details"])

    bundle = tmp_path / "b.json"
    rec = run_cli(["facts", "--record", str(bundle), *forms], env=bed.env(), timeout=300)
    assert rec.returncode == 0, rec.stderr
    probed = [a["args"][0] for a in json.loads(bundle.read_text())["answers"] if a["op"] == "probe.run"]
    assert sorted(probed) == ["baseline", "gpus-count-1"]
    replayed = run_cli(["check", "--replay", str(bundle), "--format", "json"])
    assert replayed.returncode == 0, replayed.stderr
    again = next(c for c in json.loads(replayed.stdout)["checks"] if c["id"] == "containers.gpus-count")
    assert [r["evidence"].get(SAME_REQUEST_AS) for r in again["results"]] == [None, "gpus-count-1"]
