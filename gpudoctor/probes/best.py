"""Which GPU request forms work on this host, best first: the one rule behind the summary's "use …" and the form a
workload probe runs under. Pure."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..gpu_requests.request import HostGpu
from .compare import DEGRADED, WORKS, judge
from .forms import ProbeSpec

# Not forms to recommend: the control without a request, and the over-count, which "works" when it is refused.
NOT_RECOMMENDED = ("baseline", "gpus-count-over")


def verdicts_by_form(
    specs: Sequence[ProbeSpec], outcomes: Mapping[str, Mapping[str, Any]], gpus: Sequence[HostGpu]
) -> dict[str, list[str]]:
    """form id → the verdict of each of its probes, in the order the forms were probed."""
    by_form: dict[str, list[str]] = {}
    for spec in specs:
        outcome = outcomes.get(spec.key)
        if outcome is not None:
            by_form.setdefault(spec.form_id, []).append(judge(spec, outcome, gpus).verdict)
    return by_form


def working_forms(by_form: Mapping[str, Sequence[str]]) -> list[str]:
    """The form ids whose every probe gave the container its GPUs (e.g. device=I: GPU 0 alone and every GPU in one
    request, forms.per_gpu): those that work fully first, then the degraded ones (GPUs given, but not all a workload
    needs), each in probing order."""
    usable = (WORKS, DEGRADED)
    working = [f for f, verdicts in by_form.items()
               if f not in NOT_RECOMMENDED and verdicts and all(v in usable for v in verdicts)]
    return sorted(working, key=lambda f: any(v != WORKS for v in by_form[f]))
