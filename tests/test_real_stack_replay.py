"""Replays of the real-stack matrix (scripts/real_stack_matrix.py) recorded on the GPU machine: one H200, driver 580,
NVIDIA Container Toolkit 1.20.0 over libnvidia-container 1.17.0, with Docker 20.10 and Docker 29.7.2, 25 host states
each. Beside every state's support bundle lies its ground truth: what plain `docker run` (and the Docker SDK for
the SDK forms) really did with each catalogued request form. Truth is what the daemon did: gpudoctor's verdict,
each form's verdict, and the behaviour model's prediction (which explain shows) must agree with it.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from gpudoctor.facts.host import ReplayHost
from gpudoctor.facts.registry import FactOptions, gather
from gpudoctor.gpu_requests.behaviour import predict
from gpudoctor.gpu_requests.request import env_mapping, host_gpus
from gpudoctor.gpu_requests.stack import stack_from_facts
from gpudoctor.probes.forms import FORMS, FormContext
from tests.support.cli import run_cli

FIXTURES = Path(__file__).parent / "fixtures"
ENGINES = {"20.10": FIXTURES / "real-h200-docker20-toolkit", "29.7": FIXTURES / "real-h200-docker29-toolkit"}
STATES = [(engine, d.name) for engine, root in ENGINES.items() for d in sorted(root.iterdir()) if d.is_dir()]

# The root cause each broken state's ground truth points at (read off ground-truth.json: which forms failed, with
# which words). Healthy states (every probed form did what it asked) are not listed: they must be ready.
ROOT_CAUSE = {
    ("20.10", "installed-unconfigured"): "docker.runtime.nvidia",  # runtime forms: Unknown runtime specified nvidia
    ("20.10", "cdi-runtime"): "toolkit.mode",  # --gpus: the hook refuses in cdi mode
    ("20.10", "jit-cdi-runtime"): "toolkit.mode",
    ("20.10", "cdi-no-runtime"): "toolkit.mode",
    ("20.10", "cdi-no-spec"): "toolkit.mode",
    ("20.10", "spec-only"): "docker.runtime.nvidia",
    ("20.10", "version-skew"): "toolkit.versions",  # unrecognized option '--cuda-compat-mode=ldconfig'
    ("20.10", "daemon-json-drift"): "docker.daemon-json.drift",
    ("20.10", "default-runtime-unregistered"): "docker.daemon-json",  # dockerd refused to start
    ("20.10", "daemon-json-invalid"): "docker.daemon-json",
    ("20.10", "runtime-binary-missing"): "docker.runtime.nvidia",
    ("20.10", "legacy-hook-missing"): "docker.gpu-driver",  # could not select device driver ""
    ("20.10", "hooks-installed-after-start"): "docker.gpu-driver",
    ("20.10", "ldconfig-wrong"): "toolkit.config",
    ("20.10", "default-nvidia-leak"): "containers.baseline",  # a container with no request saw the GPU
    ("29.7", "installed-unconfigured"): "cdi.specs",  # CDI forms: unresolvable (no spec); runtime forms: unknown runtime
    ("29.7", "jit-cdi-runtime"): "cdi.specs",
    ("29.7", "cdi-no-runtime"): "docker.runtime.nvidia",
    ("29.7", "spec-only"): "docker.runtime.nvidia",
    ("29.7", "cdi-no-spec"): "cdi.specs",
    ("29.7", "spec-index-only"): "cdi.devices",  # nvidia.com/gpu=GPU-… unresolvable
    ("29.7", "spec-stale"): "cdi.stale",  # open …libEGL_nvidia.so.580.0.1: no such file or directory
    ("29.7", "version-skew"): "toolkit.versions",
    ("29.7", "daemon-json-drift"): "docker.daemon-json.drift",
    ("29.7", "default-runtime-unregistered"): "docker.daemon-json",
    ("29.7", "daemon-json-invalid"): "docker.daemon-json",
    ("29.7", "runtime-binary-missing"): "docker.runtime.nvidia",
    ("29.7", "cdi-hook-missing"): "cdi.specs",
    ("29.7", "hooks-installed-after-start"): "docker.gpu-driver",  # AMD CDI spec not found
    ("29.7", "ldconfig-wrong"): "toolkit.config",
    ("29.7", "default-nvidia-leak"): "cdi.specs",  # CDI forms fail (no spec) below the baseline's leak
}


def _truth(engine: str, state: str) -> dict[str, Any]:
    return json.loads((ENGINES[engine] / state / "ground-truth.json").read_text())


def _bundle(engine: str, state: str) -> str:
    return str(ENGINES[engine] / state / "bundle.json")


@lru_cache(maxsize=None)
def _report(engine: str, state: str) -> dict[str, Any]:
    proc = run_cli(["check", "--replay", _bundle(engine, state), "--format", "json"])
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def _gpu_nodes(form: dict[str, Any]) -> list[str]:
    return [n for n in (form.get("seen") or {}).get("nodes", []) if re.fullmatch(r"nvidia\d+", n)]


def _probed(engine: str, key: str, truth: dict[str, Any], report: dict[str, Any]) -> bool:
    """Forms gpudoctor probes on this stack: CDI forms need a daemon that does CDI (the 20.10 CLI refuses them as
    paths; a 29.7 daemon with CDI off says so in docker.cdi)."""
    if not key.startswith("cdi"):
        return True
    checks = {c["id"]: c for c in report["checks"]}
    return engine != "20.10" and checks.get("containers.cdi", {}).get("status") != "skip"


def _form_right(key: str, form: dict[str, Any]) -> bool:
    """Did the daemon do what the request asks for? An over-count must be refused; no request must give no GPU."""
    if key == "gpus-count-over":
        return form["rc"] != 0
    nodes = _gpu_nodes(form)
    return form["rc"] == 0 and (not nodes if key == "baseline" else bool(nodes))


def test_every_recorded_state_is_here():
    assert len(STATES) == 49
    assert {s for e, s in STATES if e == "29.7"} >= {s for e, s in STATES if e == "20.10"}


@pytest.mark.parametrize("engine,state", STATES, ids=[f"{e}-{s}" for e, s in STATES])
def test_verdict_and_root_cause_follow_the_ground_truth(engine: str, state: str):
    truth, report = _truth(engine, state), _report(engine, state)
    wrong = [k for k, f in truth["forms"].items() if _probed(engine, k, truth, report) and not _form_right(k, f)]
    ready = truth["daemon"]["started"] and not wrong
    verdict = report["verdict"]
    assert verdict["ready"] is ready, (verdict["headline"], wrong)
    assert verdict["root_cause"] == ROOT_CAUSE.get((engine, state)), verdict["headline"]
    assert (engine, state) in ROOT_CAUSE or ready


@pytest.mark.parametrize("engine,state", STATES, ids=[f"{e}-{s}" for e, s in STATES])
def test_each_form_verdict_matches_what_docker_did(engine: str, state: str):
    truth, report = _truth(engine, state), _report(engine, state)
    if not truth["daemon"]["started"]:
        pytest.skip("dockerd did not start in this state: no form ran")
    summary = next(c for c in report["checks"] if c["id"] == "containers.summary")
    rows = {r["form"]: r for r in summary["results"][0]["evidence"]["table"]["rows"]}
    checked = 0
    for key, form in truth["forms"].items():
        if key not in rows:
            assert key == "sdk-device-request" or not _probed(engine, key, truth, report), key
            continue
        verdict = rows[key]["verdict"]
        if _form_right(key, form):
            assert verdict in ("works", "degraded"), (key, verdict, form["stderr"][-200:])
        else:
            assert verdict in ("fails", "mismatch"), (key, verdict)
        checked += 1
    assert checked >= 9


def _stable(text: str) -> str:
    """An error text up to its first variable part (the capabilities' order differs between CLI and API)."""
    return re.split(r"[\[{]", text, maxsplit=1)[0][:70]


@pytest.mark.parametrize("engine,state", STATES, ids=[f"{e}-{s}" for e, s in STATES])
def test_the_behaviour_model_predicts_what_docker_did(engine: str, state: str):
    """The prediction explain shows for each form, on this stack, against the daemon's real answer."""
    truth = _truth(engine, state)
    if not truth["daemon"]["started"]:
        pytest.skip("dockerd did not start in this state")
    host = ReplayHost.load(_bundle(engine, state))
    facts = gather(host, ["docker", "dockerd_process", "toolkit", "cdi", "nvml", "probes"],
                   FactOptions(dict(host.meta.get("options") or {})))
    v = facts.values
    stack = stack_from_facts(v["docker"], v["dockerd_process"], v["toolkit"], v["cdi"])
    gpus = host_gpus(v["nvml"])
    specs = {s.key: s for f in FORMS for s in f.expand(FormContext(gpus, truth["image"], True, True))}
    specs["sdk-device-request"] = specs["gpus-all"]  # the same DeviceRequest, sent by docker-py
    image_env = env_mapping(v["probes"].image_info.get("env"))
    disagree = []
    for key, form in truth["forms"].items():
        if key.startswith("cdi") and engine == "20.10":
            continue  # the 20.10 CLI refuses these itself ("is not an absolute path"); nothing reaches dockerd
        p = predict(specs[key].request(), stack, gpus, image_env)
        if p.refused != (form["rc"] != 0):
            disagree.append((key, "refused" if p.refused else "works", form["rc"], form["stderr"][-160:]))
        elif p.refused and p.exact and not any(_stable(e.text) in form["stderr"] for e in p.errors):
            disagree.append((key, p.text, form["stderr"][-160:]))
        elif not p.refused and p.devices is not None and len(p.devices) != len(_gpu_nodes(form)):
            disagree.append((key, p.devices, _gpu_nodes(form)))
    assert not disagree


def test_explain_on_the_host_says_what_the_daemon_then_does():
    """Docker 20.10, toolkit in cdi mode, default runtime runc: the daemon refuses --gpus and the SDK call without
    runtime; explain with this host's facts must say so and name the fix (issue 9)."""
    bundle = _bundle("20.10", "cdi-runtime")
    truth = _truth("20.10", "cdi-runtime")
    assert truth["forms"]["gpus-all"]["rc"] == 125
    def explained(text: str) -> dict[str, Any]:
        proc = run_cli(["explain", "--replay", bundle, "--format", "json", "--", text])
        return {"rc": proc.returncode, **json.loads(proc.stdout)["items"][0]}

    out = explained("--gpus all")
    assert out["rc"] == 1
    assert out["on_host"]["refused"] and out["on_host"]["blame"] == "toolkit.mode"
    assert any(p["id"] == "host.refused" for p in out["pitfalls"])
    sdk = 'client.containers.run("img", device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])])'
    assert explained(sdk)["on_host"]["refused"]
    assert truth["forms"]["sdk-runtime-nvidia"]["rc"] == 0
    assert explained("docker run --runtime=nvidia --gpus all img")["on_host"]["refused"] is False
