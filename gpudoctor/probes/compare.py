"""Judges one probe: what it should have seen (from NVML) against what it saw. Pure.

Verdicts:
* works     — the container saw exactly the expected GPUs (or was refused, where refusal is right);
* fails     — Docker or the toolkit refused the container; the cause is named (errors.classify);
* mismatch  — it ran but saw the wrong GPUs (missing ones and extra ones are named);
* degraded  — the right GPUs are there but something a workload needs is not (nvidia-smi under
              the utility capability, /dev/nvidia-uvm for CUDA, NVML working inside);
* not-run   — the probe could not be judged (it timed out, or its report was cut short).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..frozen import frozen
from ..gpu_requests.behaviour import Prediction
from ..gpu_requests.request import HostGpu
from .forms import ProbeSpec

if TYPE_CHECKING:
    from .errors import Cause
    from .parse import ProbeView

WORKS, FAILS, MISMATCH, DEGRADED, NOT_RUN = "works", "fails", "mismatch", "degraded", "not-run"


@frozen
class Judgement:
    key: str
    verdict: str
    expected: str
    seen: str
    summary: str
    cause: Cause | None = None
    seen_indices: tuple[int, ...] = ()
    unknown_seen: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    view: ProbeView | None = None
    revealed: Cause | None = None  # a broken path an otherwise right outcome showed (an over-count's refusal)
    missing: tuple[int, ...] = ()  # host GPUs asked for and not seen (mismatch)
    extra: tuple[int, ...] = ()  # host GPUs seen and not asked for (mismatch)
    named: tuple[str, ...] = ()  # what a refusal names of the request ("GPU 7"), or the MIG devices not seen

    @property
    def ok(self) -> bool:
        return self.verdict == WORKS


def describe(indices: Sequence[int], gpus: Sequence[HostGpu]) -> str:
    if not indices:
        return "no GPU"
    by_index = {g.index: g for g in gpus}
    parts = []
    for i in indices:
        g = by_index.get(i)
        parts.append(f"GPU {i} ({g.uuid})" if g and g.uuid else f"GPU {i}")
    return ", ".join(parts)


def short(indices: Sequence[int]) -> str:
    """"GPU 0, 1" — the compact form for tables."""
    return "GPU " + ", ".join(str(i) for i in indices) if indices else "none"


def seen_gpus(view: ProbeView, gpus: Sequence[HostGpu]) -> tuple[tuple[int, ...], tuple[str, ...], str]:
    """Host GPU indices a probe saw, identifiers it saw that the host lacks, and how it was told.

    UUIDs from nvidia-smi are authoritative; without a working nvidia-smi (busybox image, no
    utility capability) the /dev/nvidiaN minors are mapped to GPUs through NVML's minor numbers.
    """
    by_uuid = {g.uuid: g.index for g in gpus if g.uuid}
    if view.smi_uuids:
        found = sorted({by_uuid[u] for u in view.smi_uuids if u in by_uuid})
        unknown = tuple(u for u in view.smi_uuids if u not in by_uuid)
        return tuple(found), unknown, "nvidia-smi UUIDs"
    by_minor = {g.minor: g.index for g in gpus if g.minor is not None}
    found = sorted({by_minor[m] for m in view.gpu_minors if m in by_minor})
    unknown = tuple(f"/dev/nvidia{m}" for m in view.gpu_minors if m not in by_minor)
    return tuple(found), unknown, "device nodes"


def judge(spec: ProbeSpec, outcome: Mapping[str, Any], gpus: Sequence[HostGpu],
          prediction: Prediction | None = None) -> Judgement:
    """`prediction` is what the behaviour model expected of this stack: it names the owning layer of a refusal
    whose words the classifier does not know."""
    expected = describe(spec.expect_indices, gpus) if not spec.expect_mig else ", ".join(spec.expect_mig)
    if spec.expect_error:
        expected = "refused (more GPUs than the host has)"
    # The classifier and the output parser load where a probe is judged: a --no-probes run, whose checks import this
    # module, needs neither (12 ms of import on the CI machine).
    from .errors import UNKNOWN, cause_for_blame, classify, strip_envelope
    from .parse import parse_probe_output

    if not outcome.get("ok"):
        error = str(outcome.get("error") or "unknown error")
        if outcome.get("timed_out"):
            return Judgement(spec.key, NOT_RUN, expected, "no answer", error)
        cause = classify(error)
        if prediction is not None and prediction.refused and prediction.blame and (
                cause is UNKNOWN or (cause.layer_check != prediction.blame and _predicted_words(prediction, error))):
            # The model saw the refusal coming for a reason the words alone do not tell (an unresolvable name with
            # no spec at all is cdi.specs, not cdi.devices; a hook refusal after a CDI fallback is the spec's):
            # it names the owning layer; the classifier's fix stays where it is that layer's.
            owner = cause_for_blame(prediction.blame, prediction.why)
            cause = replace(owner, fix=cause.fix, fix_for=cause.fix_for) if cause is not UNKNOWN and cause.layer_check == owner.layer_check else owner
        short = strip_envelope(error)
        if spec.expect_error:
            # Refused with no GPU given is the right outcome, whatever the words (issue 9: on Docker 29 an over-count
            # falls to the legacy hook, whose refusal depends on the toolkit's mode). What the words reveal about
            # that path is said separately, at its own layer.
            right_words = cause.refusal or _names_missing_index(error, len(gpus))
            revealed = cause if (cause.layer_check and not right_words) else None
            return Judgement(spec.key, WORKS, expected, "refused", f"refused as it should be: {short}", cause,
                             revealed=revealed)
        # A request naming several GPUs is refused whole: say which of them the refusal is about.
        named = named_in(error, spec)
        about = f" (the refusal names {', '.join(named)})" if named and len(spec.asks) > 1 else ""
        return Judgement(
            spec.key, FAILS, expected, f"error at {outcome.get('phase')}", f"{spec.title} fails: {short}{about}", cause,
            details=(error[:2000],), named=named,
        )

    view = parse_probe_output(str(outcome.get("output") or ""))
    if not view.valid:
        tail = str(outcome.get("output") or "").strip().splitlines()[-3:]
        return Judgement(
            spec.key, NOT_RUN, expected, "incomplete report",
            f"the probe script did not complete (exit {outcome.get('exit_code')}); does the image have /bin/sh?",
            details=tuple(tail), view=view,
        )
    indices, unknown, how = seen_gpus(view, gpus)
    seen = describe(indices, gpus) + (f" + unknown {', '.join(unknown)}" if unknown else "")
    details = [f"identified by {how}"] + [f"node {n.path} {n.major}:{n.minor}" for n in view.nodes]
    if view.smi_list_output and not view.smi_works:
        details.append(f"nvidia-smi -L: {view.smi_list_output[:300]}")

    if spec.expect_error:
        return Judgement(
            spec.key, MISMATCH, expected, seen,
            f"{spec.title} was accepted although the host has only {len(gpus)} GPU(s); the container saw {seen}",
            seen_indices=indices, unknown_seen=unknown, details=tuple(details), view=view,
        )
    if spec.expect_mig:
        got_mig = set(view.mig_uuids)
        if set(spec.expect_mig) <= got_mig:
            return Judgement(spec.key, WORKS, expected, ", ".join(sorted(got_mig)), f"saw {', '.join(spec.expect_mig)}", view=view)
        lacking = [m for m in spec.expect_mig if m not in got_mig]
        return Judgement(
            spec.key, MISMATCH, expected, ", ".join(sorted(got_mig)) or seen,
            f"{spec.title}: the container did not see MIG device {', '.join(lacking)}",
            details=tuple(details), view=view, named=tuple(lacking),
        )

    want = set(spec.expect_indices)
    got = set(indices)
    if got != want or unknown:
        missing = sorted(want - got)
        extra = sorted(got - want)
        bits = []
        if missing:
            bits.append(f"missing {describe(missing, gpus)}")
        if extra:
            bits.append(f"unexpected {describe(extra, gpus)}")
        if unknown:
            bits.append(f"devices the host does not list: {', '.join(unknown)}")
        return Judgement(
            spec.key, MISMATCH, expected, seen, f"{spec.title}: expected {expected}, saw {seen} ({'; '.join(bits)})",
            seen_indices=indices, unknown_seen=unknown, details=tuple(details), view=view,
            missing=tuple(missing), extra=tuple(extra),
        )

    if want:
        problems = _degradations(spec, view)
        if problems:
            return Judgement(
                spec.key, DEGRADED, expected, seen, f"{spec.title}: saw {seen}, but {'; '.join(problems)}",
                seen_indices=indices, details=tuple(details), view=view,
            )
    return Judgement(spec.key, WORKS, expected, seen, f"saw {seen}, as expected", seen_indices=indices,
                     details=tuple(details), view=view)


def named_in(error: str, spec: ProbeSpec) -> tuple[str, ...]:
    """The GPUs (or MIG devices) of the request that a refusal names, e.g. ("GPU 7",) for
    `unresolvable CDI devices nvidia.com/gpu=7` (CDI names, docker-gpu-internals.md §2.2) or
    `device error: 7: unknown device` (nvidia-container-cli, failure-modes.md #52). An index counts only where
    those messages put it (after `=` or `error: `), so a stray digit elsewhere names nothing."""
    out: list[str] = []
    targets: Sequence[int | str] = spec.expect_indices if not spec.expect_mig else spec.expect_mig
    if len(spec.asks) != len(targets):  # `all`, a count: the request names no GPU by itself
        return ()
    for ident, target in zip(spec.asks, targets):
        pattern = (rf"(?:=|error: ){re.escape(ident)}(?![\w.-])" if ident.isdigit()
                   else rf"(?<![\w-]){re.escape(ident)}(?![\w-])")
        if re.search(pattern, error, re.IGNORECASE):
            out.append(f"GPU {target}" if isinstance(target, int) else f"MIG device {target}")
    return tuple(out)


def _predicted_words(prediction: Prediction, error: str) -> bool:
    """The daemon refused with the words the model predicted (their stable head)."""
    return any(e.text.split("{")[0].split("[")[0][:60] in error for e in prediction.errors)


def _names_missing_index(error: str, gpu_count: int) -> bool:
    """In cdi/jit-cdi mode an index beyond the host's GPUs is refused as an unresolvable CDI name
    (`unresolvable CDI devices nvidia.com/gpu=1` on a 1-GPU host): that is the right refusal."""
    m = re.search(r"unresolvable CDI devices (.*)", error)
    if not m:
        return False
    indices = [int(i) for i in re.findall(r"nvidia\.com/gpu=(\d+)\b", m.group(1))]
    return bool(indices) and all(i >= gpu_count for i in indices)


def _degradations(spec: ProbeSpec, view: ProbeView) -> list[str]:
    problems = []
    if not view.has_node("/dev/nvidiactl"):
        problems.append("/dev/nvidiactl is missing (nothing can talk to the driver)")
    if spec.expect_uvm and not view.has_node("/dev/nvidia-uvm"):
        problems.append("/dev/nvidia-uvm is missing (CUDA fails with 'no CUDA-capable device')")
    if spec.expect_smi and view.smi_path is None:
        problems.append("nvidia-smi was not injected (the utility capability is missing)")
    out = view.smi_list_output
    if "Failed to initialize NVML: Unknown Error" in out:
        # failure-modes.md #11: device cgroup rules lost (systemd cgroup driver + legacy hook).
        problems.append("NVML inside says 'Unknown Error' (device cgroup access lost)")
    elif "Insufficient Permissions" in out:
        problems.append("NVML inside says 'Insufficient Permissions' (device node permissions)")
    elif spec.expect_smi and view.smi_path is not None and not view.smi_works:
        # Present but failing — e.g. a host nvidia-smi that is a wrapper whose target the toolkit did not inject
        # (real stack, legacy path): a workload calling NVML fails the same way.
        tail = " ".join(out.split())[:200] or f"exit {view.smi_list_rc}"
        problems.append(f"nvidia-smi is in the container ({view.smi_path}) but fails: {tail}")
    return problems
