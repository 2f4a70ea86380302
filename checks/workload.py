"""The workload probe: the user's own command (`check --image IMG --command CMD`, facts/workload.py), judged.

A probe proves that a container gets its GPUs; the user's command proves that *their* program can use them (a
framework's device query, a CUDA sample). It runs under the form that works best here; its exit code is the verdict.
"""

from __future__ import annotations

import shlex
from typing import Iterable

from ..checking import Check, check
from ..facts.workload import WorkloadFacts
from ..links import TOOLKIT_TROUBLESHOOTING
from ..model import Fix, Layer, Result, errored, failed, passed, skipped


def _tail(output: str) -> tuple[str, ...]:
    return tuple(line.rstrip() for line in output.splitlines() if line.strip())


@check("containers.workload", "Your command runs with the GPUs in your image", layer=Layer.CONTAINERS,
       needs=("workload",), after=("docker.reachable", "containers.summary"))
def workload(workload: WorkloadFacts) -> Iterable[Result]:
    """`gpudoctor check --image IMG --command CMD` runs CMD in IMG under the request form that works best here (the
    summary's first working form, or `--gpus all` when no GPU form was probed) and judges its exit code.

    Why: device nodes and nvidia-smi in a container do not prove that a workload runs there: an image can need a
    newer driver, miss its CUDA libraries, or pin other GPUs. A non-zero exit of the user's own command, under a
    request that is known to give the GPUs, points at the image or the program, and its output says why.

    Fix: read the command's last lines in the details; reproduce with the `docker run` line given, then fix the
    image (CUDA version, libraries) or the program.
    """
    if not workload.enabled:
        return [skipped(workload.reason or "the workload was not run")]
    out = workload.outcome
    command = shlex.join(workload.command)
    subject = command
    tail = _tail(str(out.get("output") or ""))
    evidence = {"command": list(workload.command), "image": workload.image, "form": workload.form_id,
                "request": workload.request, "cli": workload.cli, "why": workload.why,
                "exit_code": out.get("exit_code"), "output_tail": list(tail), "timings": dict(out.get("timings") or {})}
    rerun = (workload.cli,) if workload.cli else ()
    if out.get("daemon_error"):
        return [errored(f"the Docker daemon failed while the workload ran: {out.get('error')}", subject=subject,
                        evidence=evidence)]
    if out.get("timed_out"):
        return [failed(f"`{command}` did not finish within {workload.timeout_s:g}s under `{workload.request}`",
                       Fix("A command that hangs with GPUs often waits on a device it cannot open: run it by hand "
                           "and watch where it stops.", rerun, TOOLKIT_TROUBLESHOOTING),
                       subject=subject, evidence=evidence, details=tail)]
    if not out.get("ok"):
        from ..probes.errors import UNKNOWN, classify, strip_envelope  # only for a refusal: see probes/compare.py judge

        error = str(out.get("error") or "unknown error")
        cause = classify(error)
        fix = cause.fix if cause is not UNKNOWN else Fix(
            "Docker refused to start your image with the request that works for the probes: read the error; it is "
            "about the image (its entrypoint, its NVIDIA_REQUIRE_CUDA, its architecture).", rerun, TOOLKIT_TROUBLESHOOTING)
        return [failed(f"`{command}` could not start in {workload.image} under `{workload.request}`: "
                       f"{strip_envelope(error)}", fix, subject=subject,
                       evidence={**evidence, "phase": out.get("phase"), "cause": cause.id}, details=(error[:2000],))]
    code = out.get("exit_code")
    if code == 0:
        return [passed(f"`{command}` exited 0 in {workload.image} under `{workload.request}`", subject=subject,
                       evidence=evidence, details=(f"why this request: {workload.why}", *tail))]
    last = f": {tail[-1][:200]}" if tail else " with no output"
    return [failed(
        f"`{command}` exited {code} in {workload.image} under `{workload.request}`{last}",
        Fix("The container got its GPUs the way that works on this host, so the image or the program fails: read "
            "its last lines (`gpudoctor check -v` shows them), and reproduce it with this command.", rerun,
            TOOLKIT_TROUBLESHOOTING),
        subject=subject, evidence=evidence, details=tail or ("(no output)",),
    )]


CHECKS: tuple[Check, ...] = (workload,)
