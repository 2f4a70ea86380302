"""The probe containers as a fact: which forms ran, with which image, and what each one returned.

The most expensive fact: it needs the daemon (`docker`) and the host's GPUs (`nvml`), then runs
one hardened container per request form concurrently (bounded). Every container answer goes
through `ctx.host.call("probe.*")` so that support bundles replay them.
"""

from __future__ import annotations

import time
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, TypeVar

from ..probes.forms import FormContext, HostGpu, ProbeSpec, select_forms
from .host import HostCallError
from .registry import FactContext, FactMissing, fact

T = TypeVar("T")
R = TypeVar("R")

PROBE_TIMEOUT_S = 60.0
MAX_CONCURRENT_PROBES = 6


@dataclass(frozen=True)
class ProbeFacts:
    enabled: bool
    reason: str | None = None  # why no probe ran
    image: str | None = None
    image_info: Mapping[str, Any] = field(default_factory=dict)
    gpus: tuple[HostGpu, ...] = ()
    specs: tuple[ProbeSpec, ...] = ()
    outcomes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # spec key → runner outcome
    not_applicable: Mapping[str, str] = field(default_factory=dict)  # form id → why it was not probed
    unknown_forms: tuple[str, ...] = ()
    swept: tuple[str, ...] = ()
    daemon_error: str | None = None  # the daemon died or hung mid-run
    wall_s: float = 0.0
    default_runtime: str | None = None

    def specs_for(self, check_id: str) -> tuple[ProbeSpec, ...]:
        return tuple(s for s in self.specs if s.check_id == check_id)


def default_image(cuda_driver_version: int | None) -> str:
    """A CUDA base image matched to the host's CUDA driver version (13000 → 13.0)."""
    if not cuda_driver_version:
        return "nvidia/cuda:12.4.1-base-ubuntu22.04"
    major, minor = cuda_driver_version // 1000, (cuda_driver_version % 1000) // 10
    return f"nvidia/cuda:{major}.{minor}.0-base-ubuntu24.04"


def host_gpus(nvml: Any) -> tuple[HostGpu, ...]:
    return tuple(
        HostGpu(g.index, g.uuid, g.minor, g.name, tuple(m.uuid for m in g.mig_devices if m.uuid)) for g in nvml.gpus
    )


def _run_bounded(fn: Callable[[T], R], items: Sequence[T], limit: int) -> list[R]:
    """fn over items, at most `limit` at once, in daemon threads: unlike a ThreadPoolExecutor's
    workers, they never hold up interpreter exit on Ctrl-C while a probe hangs (the atexit hook in
    probes/runner.py then removes the containers)."""
    gate = threading.BoundedSemaphore(max(1, limit))
    results: list[Any] = [None] * len(items)

    def work(i: int, item: T) -> None:
        with gate:
            results[i] = fn(item)

    threads = [threading.Thread(target=work, args=(i, it), daemon=True, name="probe") for i, it in enumerate(items)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@fact("probes", timeout_s=240)
def probes_fact(ctx: FactContext) -> ProbeFacts:
    """Probe containers, one per GPU request form, and what each saw."""
    from ..probes import runner

    opts = ctx.options
    if not opts.get("probes", True):
        return ProbeFacts(False, "probes disabled (--no-probes)")
    try:
        docker = ctx.get("docker")
    except FactMissing as e:
        return ProbeFacts(False, f"the Docker daemon could not be asked: {e}")
    if not docker.reachable:
        return ProbeFacts(False, "the Docker daemon is not reachable")
    try:
        nvml = ctx.get("nvml")
        gpus = host_gpus(nvml) if nvml.ok else ()
        cuda = nvml.cuda_driver_version
    except FactMissing:
        gpus, cuda = (), None

    image = opts.get("probe_image") or default_image(cuda)
    forms, unknown = select_forms(opts.get("probe_forms"), bool(opts.get("probe_all_forms")))
    form_ctx = FormContext(
        gpus=gpus,
        image=image,
        cdi_supported=bool(docker.cdi_enabled),
        nvidia_runtime=docker.runtime("nvidia") is not None,
    )
    specs: list[ProbeSpec] = []
    not_applicable: dict[str, str] = {}
    for form in forms:
        reason = form.applies(form_ctx)
        if reason:
            not_applicable[form.id] = reason
        else:
            specs.extend(form.expand(form_ctx))

    common = dict(image=image, gpus=gpus, not_applicable=not_applicable, unknown_forms=unknown,
                  default_runtime=docker.default_runtime)
    try:
        image_info = ctx.host.call(
            "probe.image", [image, bool(opts.get("probe_pull"))],
            lambda: runner.ensure_image(image, bool(opts.get("probe_pull"))),
        )
    except HostCallError as e:
        return ProbeFacts(False, f"could not inspect the probe image: {e.message}", daemon_error=e.message, **common)
    if not image_info.get("present"):
        why = image_info.get("error") or "not present locally and --pull was not given"
        return ProbeFacts(False, f"probe image {image} is not available: {why}", image_info=image_info, **common)
    try:
        swept = tuple(ctx.host.call("probe.sweep", [], runner.sweep).get("removed", []))
    except HostCallError:
        swept = ()

    started = time.monotonic()
    outcomes: dict[str, Mapping[str, Any]] = {}
    daemon_error: str | None = None

    def run_one(spec: ProbeSpec) -> tuple[str, Mapping[str, Any]]:
        args = spec.create_args()
        try:
            return spec.key, ctx.host.call(
                "probe.run", [spec.key, image, args],
                lambda: runner.run_probe(spec.key, spec.form_id, image, args, PROBE_TIMEOUT_S),
            )
        except HostCallError as e:
            return spec.key, {"key": spec.key, "ok": False, "phase": "daemon", "error": e.message,
                              "daemon_error": True, "timings": {}}

    for key, outcome in _run_bounded(run_one, specs, MAX_CONCURRENT_PROBES):
        outcomes[key] = outcome
        if outcome.get("daemon_error"):
            daemon_error = str(outcome.get("error"))
    return ProbeFacts(
        True, None, image_info=image_info, specs=tuple(specs), outcomes=outcomes, swept=swept,
        daemon_error=daemon_error, wall_s=time.monotonic() - started, **common,
    )
