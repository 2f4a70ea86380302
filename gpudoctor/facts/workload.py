"""The workload probe as a fact: the user's own command (`check --image IMG --command CMD`) in their image, under
the GPU request form that works best here, and what it returned.

The form is the first working one of the probe matrix (probes/best.py: the summary's "use …"), or `--gpus all` when
no GPU form was probed. When GPU forms were probed and none works, the command is not run: every way of asking for
the GPUs already fails, and the checks below say why. The container is as hardened as a probe (runner.run_probe:
no network, no capabilities, no-new-privileges, limits, always removed) and asks for nothing the form does not.
Its answer goes through `ctx.host.call("probe.workload")`, so support bundles replay it.
"""

from __future__ import annotations

import shlex
from dataclasses import field
from typing import Any, Mapping

from ..frozen import frozen
from ..probes.best import NOT_RECOMMENDED, verdicts_by_form, working_forms
from ..probes.forms import FormContext, ProbeSpec, form
from .host import HostCallError
from .probes import PROBES_FACT_TIMEOUT_S, ProbeFacts
from .registry import FactContext, fact

WORKLOAD_TIMEOUT_S = 120.0
FALLBACK_FORM = "gpus-all"


@frozen
class WorkloadFacts:
    enabled: bool
    reason: str | None = None  # why the command did not run
    command: tuple[str, ...] = ()
    image: str | None = None
    form_id: str | None = None
    request: str | None = None  # the form as people write it ("--gpus all")
    cli: str | None = None  # the whole docker run line that reproduces it
    why: str | None = None  # why that form
    outcome: Mapping[str, Any] = field(default_factory=dict)  # runner.run_probe's answer
    timeout_s: float = WORKLOAD_TIMEOUT_S


def best_spec(probes: ProbeFacts) -> tuple[ProbeSpec | None, str]:
    """The probe spec to run the workload under, and why; None when GPU forms were probed and none works."""
    by_form = verdicts_by_form(probes.specs, probes.outcomes, probes.gpus)
    working = working_forms(by_form)
    if working:
        spec = next(s for s in probes.specs if s.form_id == working[0])
        return spec, f"the request form that works best here (containers.summary: {spec.title})"
    if any(f not in NOT_RECOMMENDED for f in by_form):
        return None, "no GPU request form gives a container its GPUs here (containers.summary), so the workload was not run"
    ctx = FormContext(probes.gpus, probes.image or "IMAGE", False, False)
    return form(FALLBACK_FORM).expand(ctx)[0], "`--gpus all`: no GPU request form was probed in this run"


# gather's deadline for a fact counts from the start of the run, and this one waits for the probes first.
@fact("workload", timeout_s=PROBES_FACT_TIMEOUT_S + WORKLOAD_TIMEOUT_S + 30)
def workload_fact(ctx: FactContext) -> WorkloadFacts:
    """The user's command (--command) in their image (--image), under the request form that works best."""
    text = ctx.options.get("workload_command")
    if not text:
        return WorkloadFacts(False, "no workload given (gpudoctor check --image IMAGE --command CMD)")
    from ..probes import runner

    command = tuple(shlex.split(str(text)))  # the CLI has refused what does not split
    probes: ProbeFacts = ctx.get("probes")
    if not probes.enabled:
        return WorkloadFacts(False, f"no probe ran: {probes.reason}", command, probes.image)
    spec, why = best_spec(probes)
    if spec is None:
        return WorkloadFacts(False, why, command, probes.image, why=why)
    image = str(probes.image)
    args = {**spec.create_args(), "command": list(command)}
    cli = f"{spec.cli} {shlex.join(command)}"
    try:
        outcome = ctx.host.call(
            "probe.workload", [spec.key, image, args],
            lambda: runner.run_probe(f"workload:{spec.key}", spec.form_id, image, args, WORKLOAD_TIMEOUT_S),
            expect=dict,
        )
    except HostCallError as e:
        outcome = {"ok": False, "phase": "daemon", "error": e.message, "daemon_error": True, "timings": {}}
    return WorkloadFacts(True, None, command, image, spec.form_id, spec.title, cli, why, outcome)
