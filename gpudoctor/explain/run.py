"""`gpudoctor explain --run REQUEST`: the user's own GPU request, reproduced on this host in a hardened probe.

The "my container sees zero GPUs" ticket in one command: explain says what should happen (the behaviour model,
gpu_requests/behaviour.py), `--run` proves it. Exactly the request's device part is sent — its DeviceRequests,
its runtime, its NVIDIA_* / CUDA_VISIBLE_DEVICES environment, its CDI devices — in the same hardened container
the probes use (gpudoctor/probes/runner.py: no network, no capabilities, no-new-privileges, limits, removed by id).
Nothing else of the user's command line is applied; it is listed as ignored. The user's image only with --image,
their command only with --command (the probe runner runs it in place of the probe script).
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Mapping, Sequence

from ..frozen import frozen
from ..gpu_requests.behaviour import Prediction, predict, resolve_tokens
from ..gpu_requests.request import GpuRequest, HostGpu
from ..gpu_requests.stack import StackState
from ..probes.compare import Judgement, describe, judge
from ..probes.forms import ProbeSpec

# The environment that decides devices and driver features: what the NVIDIA runtime and hook read.
DEVICE_ENV_PREFIXES = ("NVIDIA_",)
DEVICE_ENV_NAMES = ("CUDA_VISIBLE_DEVICES",)
RUN_KEY = "explain-run"


@frozen
class RunPlan:
    """What `--run` will send, and what it leaves out."""

    spec: ProbeSpec | None
    ignored: tuple[str, ...] = ()
    why_not: str | None = None  # the request cannot be reproduced (a value decided at run time, a refused input)


@frozen
class RunResult:
    label: str
    image: str
    plan: RunPlan
    prediction: Prediction | None
    judgement: Judgement | None
    outcome: Mapping[str, Any] = field(default_factory=dict)
    problem: str | None = None  # the run could not happen (no daemon, no image)
    gpus: tuple[HostGpu, ...] = ()

    @property
    def exit_code(self) -> int:
        return 0 if self.judgement is not None and self.judgement.verdict in ("works", "degraded") else 1

    def to_dict(self) -> dict[str, Any]:
        j, p = self.judgement, self.prediction
        return {
            "label": self.label,
            "image": self.image,
            "sent": self.plan.spec.create_args() if self.plan.spec else None,
            "ignored": list(self.plan.ignored),
            "why_not": self.plan.why_not,
            "problem": self.problem,
            "predicted": None if p is None else {
                "refused": p.refused, "path": p.path, "via": list(p.via),
                "devices": list(p.devices) if p.devices is not None else None,
                "errors": [e.text for e in p.errors], "blame": p.blame, "why": p.why,
            },
            "verdict": j.verdict if j else None,
            "expected": j.expected if j else None,
            "seen": j.seen if j else None,
            "summary": j.summary if j else None,
            "cause": j.cause.id if j and j.cause else None,
            "fix": None if not (j and j.cause) else {"summary": j.cause.fix.summary, "commands": list(j.cause.fix.commands)},
            "agrees_with_prediction": self.agrees,
            "exit_code": self.exit_code,
        }

    @property
    def agrees(self) -> bool | None:
        """Did the daemon do what explain predicted (refused or not)?"""
        if self.prediction is None or self.judgement is None or self.judgement.verdict == "not-run":
            return None
        ran = bool(self.outcome.get("ok"))
        return ran != self.prediction.refused


def _asked_for(req: GpuRequest, gpus: Sequence[HostGpu]) -> tuple[tuple[int, ...], bool]:
    """The host GPUs the request names, and whether it names one the host lacks (then refusal is right)."""
    tokens: list[str] = []
    for d in req.device_requests:
        if d.is_cdi:
            tokens += [str(n).partition("=")[2] for n in d.device_ids or ()]
        elif d.device_ids:
            tokens += [str(i) for i in d.device_ids]
        elif isinstance(d.count, int) and not isinstance(d.count, bool):
            tokens += ["all"] if d.count < 0 else [str(i) for i in range(d.count)]
    if not req.device_requests and req.runtime == "nvidia":
        tokens += [t for t in (req.env_value("NVIDIA_VISIBLE_DEVICES") or "").split(",") if t]
    found, unknown = resolve_tokens(tokens, gpus)
    return tuple(found), bool(unknown)


def plan(req: GpuRequest, gpus: Sequence[HostGpu], image: str) -> RunPlan:
    """The probe that reproduces `req`'s device part, never more (no privileged, mounts, network, user command)."""
    ignored = list(req.hints.get("ignored_options", ()))
    if req.privileged:
        ignored.append("--privileged (it would give every device; the probe never runs privileged)")
    env = [(k, v) for k, v in req.env if k.startswith(DEVICE_ENV_PREFIXES) or k in DEVICE_ENV_NAMES]
    ignored += [f"-e {k}" for k, _ in req.env if (k, _) not in env]
    unknown = [f"{d.origin or 'DeviceRequest'}: {', '.join(d.unknown)}" for d in req.device_requests if d.unknown]
    if unknown:
        return RunPlan(None, tuple(ignored), "decided at run time, so it cannot be reproduced: " + "; ".join(unknown))
    asked, beyond = _asked_for(req, gpus)
    caps = [c for d in req.device_requests if not d.is_cdi for group in (d.capabilities or ()) for c in (group if isinstance(group, (list, tuple)) else ())]
    explicit = [c for c in caps if c != "gpu"]
    cli = " ".join(["docker run --rm --network none",
                    *(f"--runtime={req.runtime}",) * bool(req.runtime),
                    *(f"-e {k}={v}" for k, v in env),
                    *(f"(DeviceRequest {d.to_api()})" for d in req.device_requests), image])
    spec = ProbeSpec(
        RUN_KEY, "user", "explain.run", req.label, cli, "", None,
        runtime=req.runtime,
        device_requests=tuple(d.to_api() for d in req.device_requests),
        environment=tuple(f"{k}={v}" for k, v in env),
        expect_indices=() if beyond else asked,
        expect_error=beyond,
        expect_smi=not explicit or "utility" in explicit,
        expect_uvm=not explicit or "compute" in explicit,
    )
    return RunPlan(spec, tuple(ignored))


def run(req: GpuRequest, *, gpus: Sequence[HostGpu], stack: StackState | None, image: str,
        image_env: Mapping[str, str], command: Sequence[str] | None, timeout_s: float) -> RunResult:
    """Reproduce `req` on the daemon (the probe runner), then judge it against the host and the prediction."""
    from ..probes import runner

    p = plan(req, gpus, image)
    if p.spec is None:
        return RunResult(req.label, image, p, None, None, problem=p.why_not)
    prediction = predict(req, stack, gpus, image_env) if stack is not None else None
    args = dict(p.spec.create_args())
    if command:
        args["command"] = list(command)
    try:
        outcome = runner.run_probe(RUN_KEY, "user", image, args, timeout_s)
    except Exception as e:  # the daemon went away: say so, no traceback
        return RunResult(req.label, image, p, prediction, None, problem=f"the Docker daemon failed: {e}", gpus=tuple(gpus))
    j = _judge_command(p.spec, outcome, gpus, prediction) if command else judge(p.spec, outcome, gpus, prediction)
    return RunResult(req.label, image, p, prediction, j, outcome, gpus=tuple(gpus))


def _judge_command(spec: ProbeSpec, outcome: Mapping[str, Any], gpus: Sequence[HostGpu],
                   prediction: Prediction | None) -> Judgement:
    """The user's own command: judged by its exit code once the container ran (the probe script's view of
    devices is not there to compare)."""
    if not outcome.get("ok") or outcome.get("timed_out"):
        return judge(spec, outcome, gpus, prediction)
    tail = " | ".join(str(outcome.get("output") or "").strip().splitlines()[-5:])
    code = outcome.get("exit_code")
    expected = describe(spec.expect_indices, gpus)
    if code == 0:
        return Judgement(spec.key, "works", expected, f"exit 0: {tail[:300]}", "the command ran and exited 0")
    return Judgement(spec.key, "fails", expected, f"exit {code}: {tail[:300]}", f"the command exited {code}: {tail[:300]}")


def render_text(results: Sequence[RunResult]) -> str:
    lines: list[str] = []
    for r in results:
        gpus = r.gpus
        lines.append(f"run {r.label}  (image {r.image})")
        if r.plan.spec is not None:
            lines.append(f"  sent: {r.plan.spec.cli}")
        for ig in r.plan.ignored:
            lines.append(f"  ignored: {ig}")
        if r.prediction is not None:
            p = r.prediction
            said = (f"refused ({p.text})" if p.refused else f"gives {describe(p.devices or (), gpus)}") if p.devices is not None or p.refused else "cannot tell"
            lines.append(f"  explain predicted: {said}, via {' → '.join(p.via or (p.path,))}")
        if r.problem:
            lines.append(f"  not run: {r.problem}")
            continue
        j = r.judgement
        assert j is not None
        lines.append(f"  expected: {j.expected}")
        lines.append(f"  seen: {j.seen}")
        lines.append(f"  verdict: {j.verdict} — {j.summary}")
        if r.agrees is False:
            lines.append("  the daemon did not do what explain predicted: please report this with `gpudoctor facts --record`")
        if j.cause is not None and j.verdict != "works":
            lines.append(f"  fix: {j.cause.fix.summary}")
            lines += [f"    $ {c}" for c in j.cause.fix.commands]
    return "\n".join(lines) + "\n"
