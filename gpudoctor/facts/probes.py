"""The probe containers as a fact: which forms ran, with which image, and what each one returned.

The most expensive fact: it needs the daemon (`docker`) and the host's GPUs (`nvml`), then runs
one hardened container per request form concurrently (bounded). Every container answer goes
through `ctx.host.call("probe.*")` so that support bundles replay them.
"""

from __future__ import annotations

import time
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

from ..gpu_requests.request import HostGpu, host_gpus
from ..probes.forms import FormContext, ProbeSpec, select_forms
from .host import HostCallError
from .probe_image import USER, choose_default_image
from .registry import FactContext, FactMissing, fact

T = TypeVar("T")
R = TypeVar("R")

PROBE_TIMEOUT_S = 60.0
PROBES_FACT_TIMEOUT_S = 240.0
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
    swept: tuple[str, ...] = ()
    daemon_error: str | None = None  # the daemon died or hung mid-run
    wall_s: float = 0.0
    default_runtime: str | None = None
    image_source: str | None = None  # user | local-cuda | pulled | host-built (facts/probe_image.py)
    image_why: str | None = None  # why that image, in words for the report

    def specs_for(self, check_id: str) -> tuple[ProbeSpec, ...]:
        return tuple(s for s in self.specs if s.check_id == check_id)


class _ProbePool:
    """Runs probes at most `limit` at once in daemon threads: unlike a ThreadPoolExecutor's workers,
    they never hold up interpreter exit on Ctrl-C while a probe hangs (the atexit hook in
    probes/runner.py then removes the containers). Work can be submitted while other probes run."""

    def __init__(self, fn: Callable[[ProbeSpec], tuple[str, Mapping[str, Any]]], limit: int) -> None:
        self._fn = fn
        self._gate = threading.BoundedSemaphore(max(1, limit))
        self._threads: list[threading.Thread] = []
        self._results: dict[str, Mapping[str, Any]] = {}

    def submit(self, spec: ProbeSpec) -> None:
        def work() -> None:
            with self._gate:
                key, outcome = self._fn(spec)
                self._results[key] = outcome

        t = threading.Thread(target=work, daemon=True, name=f"probe:{spec.key}")
        self._threads.append(t)
        t.start()

    def join(self) -> dict[str, Mapping[str, Any]]:
        for t in self._threads:
            t.join()
        return dict(self._results)


@fact("probes", timeout_s=PROBES_FACT_TIMEOUT_S)
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
    # The CLI has already refused unknown form ids.
    forms, _unknown = select_forms(opts.get("probe_forms"), bool(opts.get("probe_all_forms")))
    pull = bool(opts.get("probe_pull"))
    started = time.monotonic()

    def prepare(image: str) -> Mapping[str, Any] | str:
        """Inspect (or pull) the image; a str is why probing cannot go on."""
        try:
            return ctx.host.call("probe.image", [image, pull], lambda: runner.ensure_image(image, pull))
        except HostCallError as e:
            return f"could not inspect the probe image: {e.message}"

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

    pool = _ProbePool(run_one, MAX_CONCURRENT_PROBES)
    # With an explicit image, the baseline probe needs nothing from NVML: start it while NVML answers.
    image = opts.get("probe_image")
    early: Mapping[str, Any] | str | None = None
    baseline_started = False
    if image:
        early = prepare(image)
        if isinstance(early, Mapping) and early.get("present") and any(f.id == "baseline" for f in forms):
            pool.submit(_baseline_spec(image))
            baseline_started = True
    try:
        nvml = ctx.get("nvml")
        gpus = host_gpus(nvml) if nvml.ok else ()
        cuda = nvml.cuda_driver_version
    except FactMissing:
        gpus, cuda = (), None
    if image:
        image_info, source, why = early if early is not None else prepare(image), USER, "given with --image"
    else:
        choice = choose_default_image(ctx, cuda, pull, prepare)
        image, image_info, source, why = choice.image, choice.info, choice.source, choice.why

    form_ctx = FormContext(
        gpus=gpus,
        image=image or "IMAGE",
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

    common = dict(image=image, gpus=gpus, not_applicable=not_applicable, default_runtime=docker.default_runtime,
                  image_source=source, image_why=why)
    if isinstance(image_info, str):
        pool.join()
        return ProbeFacts(False, image_info, daemon_error=image_info, **common)
    if not image_info.get("present"):
        lack = image_info.get("error") or "not present locally and --pull was not given"
        what = f"probe image {image}" if image else "gpudoctor's probe image"
        return ProbeFacts(False, f"{what} is not available: {lack}", image_info=image_info, **common)
    try:
        swept = tuple(ctx.host.call("probe.sweep", [], runner.sweep).get("removed", []))
    except HostCallError:
        swept = ()

    for spec in specs:
        if not (baseline_started and spec.form_id == "baseline"):
            pool.submit(spec)
    outcomes = pool.join()
    daemon_error = next((str(o.get("error")) for o in outcomes.values() if o.get("daemon_error")), None)
    return ProbeFacts(
        True, None, image_info=image_info, specs=tuple(specs), outcomes=outcomes, swept=swept,
        daemon_error=daemon_error, wall_s=time.monotonic() - started, **common,
    )


def _baseline_spec(image: str) -> ProbeSpec:
    from ..probes.forms import form

    return form("baseline").expand(FormContext((), image, False, False))[0]
