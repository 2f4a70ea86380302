"""Checks of the probe-container layer: what containers really see, per GPU request form.

Each check judges the probes of its forms (gpudoctor/probes/forms.py) with probes/compare.py.
They come after the layers that would make every probe fail for the same reason (no toolkit,
no daemon, no NVML): one broken layer gives one red line.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..checking import Check, check
from ..facts.platform import PlatformFacts
from ..facts.probes import SAME_REQUEST_AS, ProbeFacts
from ..install import Distro
from .docker import host_distro
from ..gpu_requests.behaviour import predict
from ..gpu_requests.request import env_mapping
from ..gpu_requests.stack import StackState, stack_from_facts
from ..links import TOOLKIT_DOCS
from ..model import Fix, Layer, Result, errored, failed, passed, skipped, warned
from ..probes.best import working_forms
from ..probes.compare import DEGRADED, FAILS, MISMATCH, NOT_RUN, WORKS, Judgement, judge, short
from ..probes.forms import FORMS, ProbeSpec

# docker.stayed-up: probes that failed because the daemon went away say nothing about GPUs (issue 14).
HOST_LAYERS = ("nvml.init", "toolkit.installed", "docker.reachable", "docker.stayed-up")
RUNTIME_LAYERS = (*HOST_LAYERS, "docker.runtime.nvidia")
DOCS = f"{TOOLKIT_DOCS}/docker-specialized.html"


def _not_probed(probes: ProbeFacts, check_id: str) -> Result | None:
    """The skip row when this check has nothing to judge, else None."""
    if not probes.enabled:
        return skipped(f"no probe ran: {probes.reason}")
    if probes.specs_for(check_id):
        return None
    forms = [f for f in FORMS if f.check_id == check_id]
    reasons = [f"{f.title}: {probes.not_applicable[f.id]}" for f in forms if f.id in probes.not_applicable]
    if reasons:
        return skipped("not applicable here — " + "; ".join(reasons))
    ids = ",".join(f.id for f in forms)
    return skipped(f"not probed in this run (add --forms {ids} or --all-forms)")


def _fix_for(j: Judgement, distro: Distro | None = None) -> Fix:
    if j.cause is not None:
        return j.cause.fix_on(distro)  # package commands for the host's distro (gpudoctor/install.py)
    if j.verdict == DEGRADED:
        return Fix(
            "Ask for the capabilities the workload needs (utility for nvidia-smi/NVML, compute for CUDA).",
            ("docker run --rm --gpus 'all,\"capabilities=compute,utility\"' IMAGE nvidia-smi -L",),
            f"{DOCS}#driver-capabilities",
        )
    return Fix(
        "The container saw other GPUs than requested: compare the request with `nvidia-smi -L` on the host "
        "and regenerate the toolkit's view of the GPUs.",
        ("nvidia-smi -L", "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"),
        DOCS,
    )


def _revealed(j: Judgement, spec: ProbeSpec, distro: Distro | None = None) -> Result:
    """The right refusal came through a broken path: say so at that path's layer (a warning here, which the engine
    weighs with that layer's own check)."""
    cause = j.revealed
    assert cause is not None
    return warned(
        f"{spec.title} was refused as it should be, but by a path that is broken: {cause.summary} "
        f"(requests that Docker hands to that path fail the same way)",
        subject=_subject(spec), fix=cause.fix_on(distro),
        evidence={"form": spec.form_id, "cause": cause.id, "explained_by": cause.layer_check, "revealed": True},
    )


def _subject(spec: ProbeSpec) -> str:
    """The request, and for a per-GPU form on a multi-GPU host which GPUs its one container covered (issue 12:
    GPU 0 alone, then every GPU in one request), so that nobody reads the results as one container per GPU."""
    return f"{spec.title} ({spec.scope})" if spec.scope else spec.title


def _result(j: Judgement, spec: ProbeSpec, probes: ProbeFacts, distro: Distro | None = None) -> Result:
    evidence = {
        "form": spec.form_id, "request": spec.title, "cli": spec.cli, "sdk": spec.sdk, "compose": spec.compose,
        "expected": j.expected, "seen": j.seen, "verdict": j.verdict,
        # What the one container asked for and saw, GPU by GPU (a combined request's missing GPU is named here).
        "asked": list(spec.asks), "asked_indices": list(spec.expect_indices), "seen_indices": list(j.seen_indices),
        "cause": j.cause.id if j.cause else None,
        "timings": dict(probes.outcomes.get(spec.key, {}).get("timings") or {}),
    }
    if spec.scope:
        evidence["scope"] = spec.scope
    details = tuple(j.details)
    twin = probes.outcomes.get(spec.key, {}).get(SAME_REQUEST_AS)
    if twin:
        # One container answered both (facts/probes.py same_requests): the report says so, rather than count two.
        evidence[SAME_REQUEST_AS] = twin
        twin_title = next((s.title for s in probes.specs if s.key == twin), twin)
        details = (*details, f"the same Docker API request as {twin_title} on this host: one probe container answered both")
    if spec.expect_mig:
        evidence["asked_mig"] = list(spec.expect_mig)
        evidence["seen_mig"] = list(j.view.mig_uuids) if j.view else []
    if j.missing or j.extra:
        evidence["missing_indices"], evidence["extra_indices"] = list(j.missing), list(j.extra)
    if j.named:
        evidence["named"] = list(j.named)
    subject = _subject(spec)
    if j.verdict == WORKS:
        return passed(j.summary, subject=subject, evidence=evidence, details=details)
    if j.verdict == NOT_RUN:
        return errored(j.summary, subject=subject, evidence=evidence, details=details)
    if j.verdict == DEGRADED:
        return warned(j.summary, subject=subject, evidence=evidence, details=details, fix=_fix_for(j, distro))
    if j.cause and j.cause.layer_check:
        # The engine promotes that check when its own finding was only a warning (engine.promote_explained).
        evidence["explained_by"] = j.cause.layer_check
        details = (f"root cause check: {j.cause.layer_check}", *details)
    summary = j.summary if j.verdict == MISMATCH else f"{j.summary} — {j.cause.summary if j.cause else ''}".rstrip(" —")
    return failed(summary, _fix_for(j, distro), subject=subject, evidence=evidence, details=details)


def image_env(probes: ProbeFacts) -> dict[str, str]:
    return env_mapping(probes.image_info.get("env"))


def judge_check(probes: ProbeFacts, check_id: str, stack: StackState | None = None,
                distro: Distro | None = None) -> Iterable[Result]:
    skip = _not_probed(probes, check_id)
    if skip is not None:
        return [skip]
    results = []
    env = image_env(probes)
    for spec in probes.specs_for(check_id):
        outcome = probes.outcomes.get(spec.key)
        if outcome is None:
            results.append(errored(f"{spec.title}: no outcome recorded", subject=_subject(spec)))
            continue
        prediction = predict(spec.request(), stack, probes.gpus, env) if stack is not None else None
        j = judge(spec, outcome, probes.gpus, prediction)
        results.append(_result(j, spec, probes, distro))
        if j.revealed is not None:
            results.append(_revealed(j, spec, distro))
    return results


STACK_FACTS = ("probes", "docker", "dockerd_process", "toolkit", "cdi", "platform")


@check("containers.baseline", "A container with no GPU request sees no GPU", layer=Layer.CONTAINERS,
       needs=("probes", "platform"), after=("docker.reachable", "docker.stayed-up"))
def baseline(probes: ProbeFacts, platform: PlatformFacts | None = None) -> Iterable[Result]:
    """A container started without any GPU request sees no NVIDIA device.

    Why: GPUs leak into every container when the default runtime is nvidia and the image bakes
    NVIDIA_VISIBLE_DEVICES=all (nvidia/cuda images do), or with --privileged (failure modes
    `visible-devices-semantics`, `privileged-breaks-isolation`). Workloads then share GPUs nobody
    scheduled for them.

    Fix: do not make nvidia the default runtime unless you need it; run such containers with
    -e NVIDIA_VISIBLE_DEVICES=void, or rebuild the image without that ENV.
    """
    results = list(judge_check(probes, "containers.baseline", distro=platform.distro if platform else None))
    out = []
    for r in results:
        if r.status.value == "fail" and r.evidence.get("verdict") == MISMATCH:
            image_env = [e for e in probes.image_info.get("env", []) if e.startswith("NVIDIA_VISIBLE_DEVICES=")]
            why = []
            if probes.default_runtime == "nvidia":
                why.append("the default runtime is nvidia")
            if image_env:
                why.append(f"the image sets {image_env[0]}")
            fix = Fix(
                "Stop GPUs leaking into containers that did not ask for them: keep runc as the default runtime "
                "(use --runtime=nvidia or --gpus per container), or hide GPUs explicitly.",
                ("docker run -e NVIDIA_VISIBLE_DEVICES=void IMAGE",
                 "sudo nvidia-ctk runtime configure --runtime=docker  # without --set-as-default",
                 "sudo systemctl restart docker"),
                f"{DOCS}#gpu-enumeration",
            )
            summary = f"a container with no GPU request saw {r.evidence.get('seen')}"
            if why:
                summary += f" ({' and '.join(why)})"
            out.append(failed(summary, fix, subject=r.subject, evidence=r.evidence, details=r.details))
        else:
            out.append(r)
    return out


def _form_check(check_id: str, title: str, after: tuple[str, ...], doc: str) -> Check:
    def fn(probes: ProbeFacts, docker: Any, dockerd_process: Any, toolkit: Any, cdi: Any,
           platform: PlatformFacts | None = None) -> Iterable[Result]:
        # A remote daemon's host is not this machine: its distro is unknown here.
        return judge_check(probes, check_id, stack_from_facts(docker, dockerd_process, toolkit, cdi),
                           host_distro(docker, platform))

    fn.__doc__ = doc
    return check(check_id, title, layer=Layer.CONTAINERS, needs=STACK_FACTS, after=after)(fn)


gpus_all = _form_check(
    "containers.gpus-all", "`--gpus all` gives the container every GPU", HOST_LAYERS,
    """`docker run --gpus all` (DeviceRequest count=-1) sees every host GPU.

    Why: this is the form most people use; it needs dockerd's nvidia device driver, which exists only
    if nvidia-container-runtime-hook was on dockerd's PATH when it started, and a toolkit not in
    cdi/jit-cdi mode unless --runtime=nvidia is added.

    Fix: sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker""",
)
sdk_runtime = _form_check(
    "containers.sdk-runtime-nvidia", 'Docker SDK `runtime="nvidia"` + DeviceRequest works', RUNTIME_LAYERS,
    """`client.containers.run(image, runtime="nvidia", device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])])`
    sees every GPU.

    Why: the form copied into Python services; it fails with `Unknown runtime specified nvidia` where the
    runtime is not registered in daemon.json.

    Fix: sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker""",
)
gpus_count = _form_check(
    "containers.gpus-count", "`--gpus N` gives GPUs 0..N-1, and N > host GPUs is refused", HOST_LAYERS,
    """`--gpus 1` is a count, not an index: it gives GPU 0. A count above the host's GPUs must be refused.

    Why: `--gpus 1` is often written meaning "the second GPU" (failure mode `gpus-count-is-not-index`).

    Fix: use `--gpus device=1` (or `"device=0,1"` with inner quotes) to pick GPUs.""",
)
gpus_device = _form_check(
    "containers.gpus-device", "`--gpus device=I|UUID` gives exactly the GPUs named", HOST_LAYERS,
    """Every GPU can be requested by index and by UUID and the container sees exactly the GPUs named.

    Probed with two containers per form whatever the GPU count (issue 12): GPU 0 alone, and every GPU in one
    request (`--gpus '"device=0,1,…"'`); the combined container names any GPU it lacks.

    Why: schedulers pin workloads by UUID; a GPU that cannot be requested is lost capacity.

    Fix: compare `nvidia-smi -L` with what the container sees; regenerate CDI specs with UUID names.""",
)
capabilities = _form_check(
    "containers.capabilities", "Driver capabilities inject what they promise", HOST_LAYERS,
    """`capabilities=compute,utility` injects CUDA and nvidia-smi; `utility` alone injects nvidia-smi.

    Why: a missing capability gives a container with device nodes but no nvidia-smi or libcuda
    (failure mode `driver-capabilities-wrong`).

    Fix: request the capabilities the workload needs, e.g. --gpus 'all,"capabilities=compute,utility"'.""",
)
runtime_env = _form_check(
    "containers.runtime-nvidia-env", "`--runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=all` works", RUNTIME_LAYERS,
    """The nvidia-docker2 form: the NVIDIA runtime reads NVIDIA_VISIBLE_DEVICES.

    Why: many compose files and older guides use it; it needs the runtime registered.

    Fix: sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker""",
)
cdi = _form_check(
    "containers.cdi", "CDI `--device nvidia.com/gpu=…` gives the named GPUs", (*HOST_LAYERS, "docker.cdi"),
    """CDI requests resolve (all; GPU 0 and then every GPU in one request, by index and by UUID) and give the
    named GPUs.

    Why: CDI is the toolkit's future default; a spec generated with index names only rejects UUID
    requests with `unresolvable CDI devices`.

    Fix: sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml --device-name-strategy=index --device-name-strategy=uuid""",
)
mig = _form_check(
    "containers.mig", "Each MIG device can be requested by its UUID", HOST_LAYERS,
    """With MIG enabled, MIG devices are requested as device=MIG-<uuid> and are seen inside: the first alone, and
    every one in one request (`--gpus '"device=MIG-…,MIG-…"'`), which names any it lacks.

    Why: MIG devices need their own names (failure mode `mig-device-naming`).

    Fix: list them with `nvidia-smi -L` and request `--gpus device=MIG-…`.""",
)


def _cli_of(probes: ProbeFacts, form_title: str) -> str:
    form_id = next((f.id for f in FORMS if f.title == form_title), None)
    spec = next((s for s in probes.specs if s.form_id == form_id), None)
    return spec.cli if spec else form_title


@check("containers.summary", "At least one GPU request form works", layer=Layer.CONTAINERS, needs=("probes",),
       after=HOST_LAYERS)
def summary(probes: ProbeFacts) -> Result:
    """Which request forms work on this host, and which one to use.

    Why: a host can pass one form and fail another (`--gpus` fine but `--runtime=nvidia` broken, or
    CDI fine but `--gpus` broken because dockerd predates the toolkit).

    Fix: use a form listed as working; fix the others through the checks that failed.
    """
    if not probes.enabled:
        # Said again under the verdict: without probes, "ready" rests on the host's layers alone.
        return skipped(
            f"no probe ran: {probes.reason}",
            evidence={"verdict_note": f"No container was started with a GPU ({probes.reason}); GPU access from "
                                      "containers is inferred from the layers below, not proven."},
        )
    rows = []
    by_form: dict[str, list[str]] = {}
    for spec in probes.specs:
        outcome = probes.outcomes.get(spec.key)
        if outcome is None:
            continue
        j = judge(spec, outcome, probes.gpus)
        expected = "refused" if spec.expect_error else (", ".join(spec.expect_mig) or short(spec.expect_indices))
        seen = {FAILS: "error", NOT_RUN: "no answer"}.get(j.verdict) or (
            "refused" if j.seen == "refused" else (", ".join(j.view.mig_uuids) if spec.expect_mig and j.view else short(j.seen_indices))
        )
        rows.append({"form": spec.key, "request": _subject(spec), "expected": expected, "seen": seen, "verdict": j.verdict})
        by_form.setdefault(spec.form_id, []).append(j.verdict)
    # A form works when every probe of it works (device=I for GPU 0 alone and for every GPU in one request); a
    # degraded one gives the GPUs but not all a workload needs (it warns on its own line).
    titles = {f.id: f.title for f in FORMS}
    usable = (WORKS, DEGRADED)
    working = [titles[f] for f in working_forms(by_form)]
    broken = [titles[f] for f, verdicts in by_form.items() if f != "baseline" and not all(v in usable for v in verdicts)]
    gpu_rows = [r for r in rows if r["form"] != "baseline"]
    table = {"columns": ["request", "expected", "seen", "verdict"], "rows": rows}
    # Also: how long the matrix took, and which leftovers of killed runs were removed first.
    ev = {"table": table, "matrix_wall_s": round(probes.wall_s, 3), "swept_leftovers": list(probes.swept),
          "image": probes.image, "image_source": probes.image_source, "image_why": probes.image_why}
    probed = _per_gpu_probed(probes)
    if probed:
        ev["per_gpu_probes"] = probed
    if not gpu_rows:
        return skipped("no GPU request form was probed", evidence=ev)
    if probes.daemon_error:
        return errored(f"the Docker daemon failed during the probes: {probes.daemon_error}", evidence=ev)
    if working:
        note = f"GPU request forms that work here: {', '.join(working)}"
        if broken:
            note += f"; not working: {', '.join(broken)}"
        note += f". Use `{_cli_of(probes, working[0])}`."
        if probed:
            note += " " + _per_gpu_note(probed)
        return passed(
            f"works: {', '.join(working)}; use `{working[0]}`",
            evidence={**ev, "working": working, "verdict_note": note},
        )
    return failed(
        "no GPU request form gave a container its GPUs",
        Fix("Fix the lowest failing check above first; then re-run gpudoctor.", ("gpudoctor check -v",), None),
        evidence=ev,
    )


def _per_gpu_probed(probes: ProbeFacts) -> dict[str, list[str]]:
    """Form title → what each of its containers covered, for the per-GPU forms that took two on this host."""
    titles = {f.id: f.title for f in FORMS}
    out: dict[str, list[str]] = {}
    for spec in probes.specs:
        if spec.scope:
            out.setdefault(titles.get(spec.form_id, spec.form_id), []).append(spec.scope)
    return out


def _per_gpu_note(probed: dict[str, list[str]]) -> str:
    """"`--gpus device=I`: GPU 0 alone, and GPUs 0–7 in one request" — said under the verdict, so that a working
    per-GPU form is not read as every GPU having had its own container."""
    parts = [f"{title}: {', and '.join(scopes)}" for title, scopes in probed.items()]
    return "Per-GPU forms ran two containers each, not one per GPU (" + "; ".join(parts) + ")."


CHECKS: tuple[Check, ...] = (
    baseline, gpus_all, sdk_runtime, gpus_count, gpus_device, capabilities, runtime_env, cdi, mig, summary,
)
