"""The probe containers as a fact: which forms ran, with which image, and what each one returned.

The most expensive fact: it needs the daemon (`docker`) and the host's GPUs (`nvml`), then runs
one hardened container per request form concurrently (bounded); forms that send the same request share one
(`same_requests`). With `--image`, the forms whose containers do
not depend on the GPU list (`GPU_LIST_FREE_FORMS`) start as soon as the daemon answers, before NVML does. Every container answer goes
through `ctx.host.call("probe.*")` so that support bundles replay them.

Bounded in time: the probes end `DEADLINE_MARGIN_S` before the run's deadline (`--timeout`); a
probe not finished by then is reported not-run with that reason ("probe.unfinished" records which,
so that a replay says the same) and its container is removed (`runner.ProbeRun.close`). When a
probe got no answer, the daemon is asked whether it still answers ("probe.ping"): a daemon that
stopped answering, or went away, is a daemon-layer finding (`daemon_error`), not a probe error.
"""

from __future__ import annotations

import json
import os
import time
import threading
from dataclasses import field
from typing import Any, Callable, Mapping, Sequence, TypeVar

from ..frozen import frozen
from ..gpu_requests.request import HostGpu, host_gpus
from ..probes.forms import FormContext, ProbeSpec, select_forms
from .host import HostCallError, NotRecorded
from .probe_image import USER, choose_default_image
from .registry import FactContext, FactMissing, fact

T = TypeVar("T")
R = TypeVar("R")

PROBE_TIMEOUT_S = 60.0
PROBES_FACT_TIMEOUT_S = 240.0
# Probes at once: a container's start is CPU work for the daemon, containerd, the runtime and the NVIDIA hook, so the
# host's cores bound it (on the GPU machine, 14 probes at 6 at once took three waves of starts). At least 4, at
# most 16, so that a small host is not swamped and a big one does not start a whole matrix at once.
MAX_CONCURRENT_PROBES = max(4, min(16, os.cpu_count() or 4))
# Left to the rest of the run after the probes: recording the unfinished ones, a ping (runner.PING_TIMEOUT_S,
# 2 s), removing what is left (runner.CLEANUP_BUDGET_S, 8 s), judging and rendering.
DEADLINE_MARGIN_S = 12.0
SAME_REQUEST_AS = "same_request_as"  # an outcome's key: the probe whose container answered this one (same_requests)
REMOTE_FORMS_REASON = "the daemon is remote: which GPUs its host has cannot be read from this machine"


@frozen
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
    daemon_error: str | None = None  # the daemon died or stopped answering mid-run
    daemon_error_kind: str | None = None  # a docker_client.KINDS word for daemon_error
    wall_s: float = 0.0
    default_runtime: str | None = None
    image_source: str | None = None  # user | local-cuda | pulled | host-built (facts/probe_image.py)
    image_why: str | None = None  # why that image, in words for the report
    unfinished: tuple[str, ...] = ()  # spec keys given up at the run's deadline
    deadline_s: float | None = None
    cleanup: Mapping[str, Any] = field(default_factory=dict)  # what removing the run's containers did

    def specs_for(self, check_id: str) -> tuple[ProbeSpec, ...]:
        return tuple(s for s in self.specs if s.check_id == check_id)


class _ProbePool:
    """Runs probes at most `limit` at once in daemon threads: unlike a ThreadPoolExecutor's workers,
    they never hold up interpreter exit on Ctrl-C while a probe hangs (the CLI then closes the probe
    run). Work can be submitted while other probes run; `join` waits until a deadline at most."""

    def __init__(self, fn: Callable[[ProbeSpec], tuple[str, Mapping[str, Any]]], limit: int) -> None:
        self._fn = fn
        self._gate = threading.BoundedSemaphore(max(1, limit))
        self._threads: list[threading.Thread] = []
        self._keys: list[str] = []
        self._results: dict[str, Mapping[str, Any]] = {}
        self._missing: dict[str, NotRecorded] = {}
        self._current: dict[str, object] = {}  # key → its last submission
        self._lock = threading.Lock()

    def submit(self, spec: ProbeSpec) -> None:
        """Run `spec`; submitted again under the same key, only the last submission's outcome counts."""
        from ..probes.runner import Abandoned

        token = object()

        def work() -> None:
            with self._gate:
                try:
                    key, outcome = self._fn(spec)
                except Abandoned:
                    return  # the deadline passed: join() already reported it unfinished
                except NotRecorded as e:  # a replay without this answer: the run gave up on it, or it lacks it
                    with self._lock:
                        if self._current.get(spec.key) is token:
                            self._missing[spec.key] = e
                    return
                with self._lock:
                    if self._current.get(spec.key) is token:
                        self._results[key] = outcome

        t = threading.Thread(target=work, daemon=True, name=f"probe:{spec.key}")
        with self._lock:
            self._current[spec.key] = token
            self._results.pop(spec.key, None)
            self._missing.pop(spec.key, None)
        self._threads.append(t)
        self._keys.append(spec.key)
        t.start()

    def join(
        self, until: float, keys: "list[str] | None" = None
    ) -> tuple[dict[str, Mapping[str, Any]], list[str], dict[str, NotRecorded]]:
        """(outcomes of finished probes, keys of the unfinished, replay misses) at `until` at the latest, of the
        probes `keys` (default: every one submitted; a probe started early and then dropped is not waited for)."""
        wanted = list(dict.fromkeys(self._keys if keys is None else keys))
        # The last thread submitted for a key is the one whose outcome counts (a key is submitted again only when
        # its early spec did not match).
        threads = {k: t for k, t in zip(self._keys, self._threads)}
        for k in wanted:
            if k in threads:
                threads[k].join(max(0.0, until - time.monotonic()))
        with self._lock:
            results = {k: self._results[k] for k in wanted if k in self._results}
            missing = {k: self._missing[k] for k in wanted if k in self._missing}
        pending = [k for k in wanted if k not in results and k not in missing]
        return results, pending, missing


def _optional_call(ctx: FactContext, op: str, produce: Callable[[], Any], default: Any) -> Any:
    """A recorded answer that bundles of older versions lack: replaying them gives `default`."""
    try:
        return ctx.host.call(op, [], produce)
    except NotRecorded:
        return default


def _unfinished_reason(limit: str, phase: tuple[str, float] | None, runner: Any) -> str:
    """Why a probe is reported not run at the deadline: where it was, and for how long."""
    where = runner.stuck_text(*phase) if phase is not None else runner.stuck_text(None, 0.0)
    return f"not finished within the run's deadline ({limit}): {where}"


def _unfinished_outcome(key: str, reason: str) -> dict[str, Any]:
    # "timed_out": the comparison treats it as a probe that gave no answer (not-run).
    return {"key": key, "ok": False, "phase": "deadline", "error": reason, "exit_code": None, "output": "",
            "timed_out": True, "timings": {}}


@fact("probes", timeout_s=PROBES_FACT_TIMEOUT_S)
def probes_fact(ctx: FactContext) -> ProbeFacts:
    """Probe containers, one per GPU request form, and what each saw."""
    opts = ctx.options
    if not opts.get("probes", True):
        return ProbeFacts(False, "probes disabled (--no-probes)")
    from ..probes import runner
    try:
        docker = ctx.get("docker")
    except FactMissing as e:
        return ProbeFacts(False, f"the Docker daemon could not be asked: {e}")
    if not docker.reachable:
        return ProbeFacts(False, "the Docker daemon is not reachable")
    if ctx.host.kind != "replay":
        from ..probes.api import uses_sdk

        if uses_sdk():
            _import_sdk_meanwhile()
    # The CLI has already refused unknown form ids.
    forms, _unknown = select_forms(opts.get("probe_forms"), bool(opts.get("probe_all_forms")))
    pull = bool(opts.get("probe_pull"))
    started = time.monotonic()
    deadline_s = float(opts.get("deadline_s")) if opts.get("deadline_s") else None
    until = started + PROBES_FACT_TIMEOUT_S - DEADLINE_MARGIN_S
    if ctx.deadline is not None:
        until = min(until, ctx.deadline - DEADLINE_MARGIN_S)
    run = runner.ProbeRun()
    # A remote daemon's containers run on its host: this machine's device nodes and GPUs are not theirs.
    remote = docker.is_remote
    nodes_open = False if remote else _device_nodes_open(ctx)

    def prepare(image: str) -> Mapping[str, Any] | str:
        """Inspect (or pull) the image; a str is why probing cannot go on."""
        try:
            return ctx.host.call("probe.image", [image, pull], lambda: runner.ensure_image(image, pull))
        except HostCallError as e:
            return f"could not inspect the probe image: {e.message}"

    def run_one(spec: ProbeSpec) -> tuple[str, Mapping[str, Any]]:
        args = spec.create_args()
        hardening = runner.hardening_for(args, docker.default_runtime, nodes_open)
        try:
            return spec.key, ctx.host.call(
                "probe.run", [spec.key, image, args],
                lambda: runner.run_probe(spec.key, spec.form_id, image, args, PROBE_TIMEOUT_S, run, hardening),
            )
        except HostCallError as e:
            return spec.key, {"key": spec.key, "ok": False, "phase": e.data.get("phase") or "daemon",
                              "error": e.message, "daemon_error": e.kind, "timings": {}}

    pool = _ProbePool(run_one, MAX_CONCURRENT_PROBES)
    # With an explicit image, the probes whose containers do not depend on the GPU list (GPU_LIST_FREE_FORMS) start
    # while NVML answers, where the device nodes say there are GPUs; NVML's list then gives their expectations, or
    # drops them (their outcomes are not reported, their containers removed) where it lists none. The per-GPU forms
    # wait for it.
    image = opts.get("probe_image")
    early_info: Mapping[str, Any] | str | None = None
    early: dict[str, ProbeSpec] = {}
    swept: tuple[str, ...] | None = None
    if image:
        early_info = prepare(image)
        if isinstance(early_info, Mapping) and early_info.get("present"):
            swept = _sweep(ctx, runner)
            # A remote daemon's host is not this one: no GPU is presumed, only the baseline starts early.
            for spec in _early_specs(forms, image, docker, () if remote else _presumed_gpus(ctx)):
                early[spec.key] = spec
                pool.submit(spec)
    gpus: tuple[HostGpu, ...] = ()
    cuda: int | None = None
    if not remote:
        try:
            nvml = ctx.get("nvml")
            gpus = host_gpus(nvml) if nvml.ok else ()
            cuda = nvml.cuda_driver_version
        except FactMissing:
            pass
    if image:
        image_info, source, why = early_info if early_info is not None else prepare(image), USER, "given with --image"
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
        if remote and form.id != "baseline":
            # What a container should see is judged against the host's GPUs, which are the remote host's.
            reason = f"{REMOTE_FORMS_REASON} ({docker.remote_reason})"
        if reason:
            not_applicable[form.id] = reason
        else:
            specs.extend(form.expand(form_ctx))

    common = dict(image=image, gpus=gpus, not_applicable=not_applicable, default_runtime=docker.default_runtime,
                  image_source=source, image_why=why, deadline_s=deadline_s)
    if isinstance(image_info, str):
        pool.join(until)
        run.close("no probe image")
        return ProbeFacts(False, image_info, daemon_error=image_info, **common)
    if not image_info.get("present"):
        run.close("no probe image")
        lack = image_info.get("error") or "not present locally and --pull was not given"
        what = f"probe image {image}" if image else "gpudoctor's probe image"
        return ProbeFacts(False, f"{what} is not available: {lack}", image_info=image_info, **common)
    if swept is None:
        swept = _sweep(ctx, runner)

    twins = same_requests(specs)
    for spec in specs:
        started_early = early.get(spec.key)
        if spec.key not in twins and (started_early is None or started_early.create_args() != spec.create_args()):
            pool.submit(spec)
    ctx.mark_under_way("probes")  # the containers are on their way: the run may load its checks meanwhile
    outcomes, pending, missing = pool.join(until, [spec.key for spec in specs if spec.key not in twins])
    limit = f"{deadline_s:g}s, --timeout" if deadline_s else f"{PROBES_FACT_TIMEOUT_S - DEADLINE_MARGIN_S:g}s"
    if pending:
        run.abandon(pending, "the run's deadline passed")
    late = _optional_call(
        ctx, "probe.unfinished",
        lambda: {"keys": sorted(pending), "reasons": {k: _unfinished_reason(limit, run.phase(k), runner) for k in pending}},
        {"keys": [], "reasons": {}},
    )
    for key in late["keys"]:
        outcomes[key] = _unfinished_outcome(key, str(late["reasons"].get(key) or _unfinished_reason(limit, None, runner)))
    for key, twin in twins.items():
        if twin in outcomes:
            outcomes[key] = {**outcomes[twin], "key": key, SAME_REQUEST_AS: twin}
    lacking = [e for k, e in missing.items() if k not in late["keys"]]
    if lacking:
        raise lacking[0]  # a replay of a bundle without this probe's answer: say so, do not guess
    # Remove what is left while asking the daemon whether it still answers: with a frozen daemon both
    # wait for their time-outs, at once rather than one after the other.
    closed: list[Mapping[str, Any]] = []
    closer = threading.Thread(
        target=lambda: closed.append(_optional_call(ctx, "probe.cleanup", lambda: run.close("the probes ended"), {})),
        daemon=True, name="probes:close",
    )
    closer.start()
    daemon_error, kind = _daemon_error(ctx, outcomes, runner)
    closer.join(runner.CLEANUP_BUDGET_S + 1)
    cleanup = closed[0] if closed else {"error": "cleanup did not end in time"}
    return ProbeFacts(
        True, None, image_info=image_info, specs=tuple(specs), outcomes=outcomes, swept=swept,
        daemon_error=daemon_error, daemon_error_kind=kind, wall_s=time.monotonic() - started,
        unfinished=tuple(late["keys"]), cleanup=cleanup, **common,
    )


def _import_sdk_meanwhile() -> None:
    """Where the probes' calls go through the Docker SDK (probes/api.py: not a local unix socket), import it
    (requests, urllib3: ~200 ms of CPU) in the background while the probes ask the image and leftovers without it
    (docker_http.py), so that it is loaded by the first create."""
    threading.Thread(target=lambda: __import__("docker"), name="probes:import-sdk", daemon=True).start()


def _daemon_error(ctx: FactContext, outcomes: Mapping[str, Mapping[str, Any]], runner: Any) -> tuple[str | None, str | None]:
    """Did the daemon go away (a probe's connection failed) or stop answering (a probe got no answer
    and `/_ping` gets none either)? (what happened, a docker_client.KINDS word), or (None, None).
    The text follows "the Docker daemon …"."""
    lost = next((o for o in outcomes.values() if o.get("daemon_error")), None)
    silent = any(o.get("timed_out") for o in outcomes.values())
    if lost is None and not silent:
        return None, None
    went = f"went away during the probes ({lost.get('phase')}: {lost.get('error')})" if lost is not None else ""
    try:
        ctx.host.call("probe.ping", [], runner.ping)
    except NotRecorded:  # a bundle from before the ping: what its outcomes say, and no more
        return (went, str(lost.get("daemon_error"))) if lost is not None else (None, None)
    except HostCallError as e:
        now = "/_ping gets no answer" if e.kind == "timeout" else f"/_ping fails ({e.kind})"
        if lost is not None:
            return f"{went}, and {now}", str(lost.get("daemon_error"))
        return f"stopped answering during the probes: a probe got no answer, and {now}", e.kind
    if lost is not None:
        return f"{went}; it answers again now (restarted?)", str(lost.get("daemon_error"))
    return None, None


# MIG capability nodes that are root-only by design and not needed to see MIG devices: the config cap
# (0400) and the monitor cap; their minors are 1 and 2 (/proc/driver/nvidia/capabilities/mig/{config,monitor}).
_ADMIN_CAPS = ("/dev/nvidia-caps/nvidia-cap1", "/dev/nvidia-caps/nvidia-cap2")


def _device_nodes_open(ctx: FactContext) -> bool:
    """Are the host's NVIDIA device nodes usable by every user (runner.hardening_for: a non-root probe)?
    GPU and control nodes read-write (0666, the driver's default), MIG instance caps readable (0444)."""
    try:
        devices = ctx.get("devices")
    except FactMissing:
        return False
    nodes = [n for n in devices.nodes.values() if n.exists and n.is_char]
    caps = [n for p, n in devices.caps.items() if n.exists and n.is_char and p not in _ADMIN_CAPS]
    return all(n.world_rw for n in nodes) and all(n.mode is not None and n.mode & 0o004 for n in caps)


def _sweep(ctx: FactContext, runner: Any) -> tuple[str, ...]:
    try:
        return tuple(ctx.host.call("probe.sweep", [], runner.sweep).get("removed", []))
    except HostCallError:
        return ()


# Forms whose probe containers (key and create arguments) do not depend on the host's GPU list, only their
# expectations do: they can start before NVML answers (tests/test_probes_unit.py holds them to it).
GPU_LIST_FREE_FORMS = frozenset({
    "baseline", "gpus-all", "sdk-runtime-nvidia", "runtime-nvidia-env", "cdi-all", "caps-compute-utility",
    "caps-utility",
})


def _presumed_gpus(ctx: FactContext) -> tuple[HostGpu, ...]:
    """GPUs as the device nodes suggest them (/dev/nvidia<N>), before NVML lists them: enough to tell whether the
    GPU forms are worth starting early, never what a probe is judged against."""
    try:
        devices = ctx.get("devices")
    except FactMissing:
        return ()
    minors = sorted(n.minor for p, n in devices.nodes.items()
                    if p[len("/dev/nvidia"):].isdigit() and n.exists and n.is_char and n.minor is not None)
    return tuple(HostGpu(i, None, m) for i, m in enumerate(minors))


def same_requests(specs: Sequence[ProbeSpec]) -> dict[str, str]:
    """The probes whose request is the same, to the byte, as an earlier probe's: key → that probe's key. One
    container answers both, since the daemon is sent the same thing (on a 1-GPU host `--gpus N` is `--gpus 1`:
    count 1 both times); the outcome says so (SAME_REQUEST_AS), and so does the report. Requests that the daemon
    may only *turn* into the same container (`--gpus 1` and `--gpus device=0`) each get their own: which is what
    a probe is there to find out."""
    first: dict[str, str] = {}
    twins: dict[str, str] = {}
    for spec in specs:
        request = json.dumps(spec.create_args(), sort_keys=True)
        twin = first.setdefault(request, spec.key)
        if twin != spec.key:
            twins[spec.key] = twin
    return twins


def _early_specs(forms: Any, image: str, docker: Any, presumed: tuple[HostGpu, ...]) -> list[ProbeSpec]:
    ctx = FormContext(presumed, image, bool(docker.cdi_enabled), docker.runtime("nvidia") is not None)
    return [spec for f in forms if f.id in GPU_LIST_FREE_FORMS and f.applies(ctx) is None for spec in f.expand(ctx)]
