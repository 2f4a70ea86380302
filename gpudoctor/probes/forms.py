"""The request-form catalogue: every way people really ask Docker for GPUs.

Each form knows its CLI spelling, its Docker SDK spelling, its Compose spelling where one exists,
which host GPUs it *should* expose, and which check judges it. `expand` turns a form into concrete
probes for this host. A per-GPU form (`device=I`, `device=UUID`, CDI by index or UUID, MIG) costs at
most two containers whatever the GPU count (issue 12, `per_gpu`): the first GPU alone, and one request
naming every GPU, which must see exactly those — its output names each GPU it saw, so a missing one
is still named.

How each form reaches the container (docs: moby daemon/nvidia_linux.go, failure-modes.md §0.1):
* `--gpus …` / `DeviceRequest(...)`: dockerd's nvidia device driver (registered only if
  `nvidia-container-runtime-hook` was on dockerd's PATH at start) sets NVIDIA_VISIBLE_DEVICES —
  `all` for count -1, the indices `0..N-1` for count N (a count, not an index), the ids verbatim
  for device_ids — and adds the hook; the runtime stays runc unless `runtime=` says otherwise.
* `--runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=…`: the NVIDIA Container Runtime reads the env.
* `--device nvidia.com/gpu=…`: CDI, resolved by dockerd itself (Docker ≥ 25 with CDI enabled).
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Callable, Mapping, Sequence, TypeVar

from ..frozen import frozen
from ..gpu_requests.request import DeviceRequest, GpuRequest, HostGpu
from ..gpu_requests.spelling import Intent, compose, request_flags, sdk

T = TypeVar("T")

GPU_CAPS = [["gpu"]]


@frozen
class FormContext:
    gpus: tuple[HostGpu, ...]
    image: str
    cdi_supported: bool  # the daemon can resolve CDI device requests
    nvidia_runtime: bool  # a runtime named "nvidia" is registered


@frozen
class ProbeSpec:
    """One probe container: how to create it and what it should see."""

    key: str  # unique within a run, e.g. "gpus-device-index:1"
    form_id: str
    check_id: str
    title: str  # the request as people write it, e.g. "--gpus device=1"
    cli: str
    sdk: str
    compose: str | None
    runtime: str | None = None
    device_requests: tuple[Mapping[str, Any], ...] = ()  # Docker API DeviceRequest objects
    environment: tuple[str, ...] = ()
    expect_indices: tuple[int, ...] = ()  # host GPU indices the container should see
    expect_error: bool = False  # Docker or the toolkit should refuse this request
    expect_mig: tuple[str, ...] = ()  # MIG UUIDs the container should see
    expect_smi: bool = True  # nvidia-smi should be injected (the `utility` capability)
    expect_uvm: bool = True  # /dev/nvidia-uvm should be there (the `compute` capability; `utility` alone has none)
    # What the request names, in its own spelling, in the order of expect_indices (GPU forms) or expect_mig (MIG):
    # a refusal's words are mapped back to the GPUs they name (compare.named_in).
    asks: tuple[str, ...] = ()
    scope: str = ""  # a per-GPU form's probe on a multi-GPU host: what it covers ("GPU 0 alone", "GPUs 0–7 in one request")

    def request(self) -> GpuRequest:
        """The same request in the domain model's terms, for the behaviour model (gpu_requests/behaviour.py)."""
        drs = tuple(
            DeviceRequest(
                driver=d.get("Driver") or "", count=d.get("Count") or 0,
                device_ids=tuple(d["DeviceIDs"]) if d.get("DeviceIDs") is not None else None,
                capabilities=tuple(tuple(c) for c in d["Capabilities"]) if d.get("Capabilities") is not None else None,
                origin=self.title,
            )
            for d in self.device_requests
        )
        env = tuple(tuple(e.split("=", 1)) for e in self.environment if "=" in e)
        return GpuRequest("probe", self.title, drs, self.runtime, env)  # type: ignore[arg-type]

    def create_args(self) -> dict[str, Any]:
        """The JSON-able parts of the container's HostConfig/Config that make the request."""
        return {
            "runtime": self.runtime,
            "device_requests": [dict(d) for d in self.device_requests],
            "environment": list(self.environment),
        }


@frozen
class RequestForm:
    id: str
    check_id: str
    title: str
    summary: str
    default: bool
    expand: Callable[[FormContext], Sequence[ProbeSpec]]
    applies: Callable[[FormContext], str | None] = field(default=lambda ctx: None)  # reason it does not apply


def _req(count: int | None = None, device_ids: Sequence[str] | None = None, caps: Sequence[str] = ("gpu",), driver: str = "") -> dict[str, Any]:
    return {
        "Driver": driver,
        "Count": count if count is not None else 0,
        "DeviceIDs": list(device_ids) if device_ids is not None else None,
        "Capabilities": [list(caps)],
        "Options": {},
    }


def _all(ctx: FormContext) -> tuple[int, ...]:
    return tuple(g.index for g in ctx.gpus)


def _spell(**intent: Any) -> tuple[str, str]:
    """The Docker SDK and Compose spellings of a request, written by the same code that writes
    `gpudoctor explain`'s corrections (gpu_requests/spelling.py). The CLI spelling stays each form's own:
    it is the form as people type it (`--gpus 1`, not the clearer `count=1`)."""
    want = Intent(meaning="", **intent)
    return sdk(want), compose(want)


def _baseline(ctx: FormContext) -> list[ProbeSpec]:
    return [
        ProbeSpec(
            "baseline", "baseline", "containers.baseline", "no GPU request",
            f"docker run --rm {ctx.image}", *_spell(mode="env"), expect_smi=False,
        )
    ]


def _gpus_all(ctx: FormContext) -> list[ProbeSpec]:
    return [
        ProbeSpec(
            "gpus-all", "gpus-all", "containers.gpus-all", "--gpus all",
            f"docker run --rm --gpus all {ctx.image}", *_spell(mode="all"),
            device_requests=(_req(count=-1),), expect_indices=_all(ctx),
        )
    ]


def _sdk_runtime(ctx: FormContext) -> list[ProbeSpec]:
    return [
        ProbeSpec(
            "sdk-runtime-nvidia", "sdk-runtime-nvidia", "containers.sdk-runtime-nvidia",
            'runtime="nvidia" + DeviceRequest(count=-1)',
            f"docker run --rm --runtime=nvidia --gpus all {ctx.image}", *_spell(mode="all", runtime="nvidia"),
            runtime="nvidia", device_requests=(_req(count=-1),), expect_indices=_all(ctx),
        )
    ]


def _count(n: int, key: str, ctx: FormContext, expect_error: bool = False) -> ProbeSpec:
    return ProbeSpec(
        key, key.split(":")[0], "containers.gpus-count", f"--gpus {n}",
        f"docker run --rm --gpus {n} {ctx.image}", *_spell(mode="count", count=n),
        device_requests=(_req(count=n),),
        # A count is not an index: --gpus N means GPUs 0..N-1 (moby countToDevices).
        expect_indices=tuple(range(n)) if not expect_error else (),
        expect_error=expect_error,
    )


def _count_1(ctx: FormContext) -> list[ProbeSpec]:
    return [_count(1, "gpus-count-1", ctx)]


def _count_host(ctx: FormContext) -> list[ProbeSpec]:
    return [_count(len(ctx.gpus), "gpus-count-host", ctx)]


def _count_over(ctx: FormContext) -> list[ProbeSpec]:
    return [_count(len(ctx.gpus) + 1, "gpus-count-over", ctx, expect_error=True)]


def per_gpu(items: Sequence[T], one: Callable[[Sequence[T], str], ProbeSpec], label: Callable[[T], str],
            noun: str = "GPU") -> list[ProbeSpec]:
    """A per-GPU form's probes (issue 12): the first item alone, exactly as it was probed before (same key, so
    recorded bundles of 1-GPU hosts replay), and, with two or more, one request naming every item. Two containers
    whatever the GPU count, and nothing per-GPU is lost: the combined container's output lists each GPU it saw
    (compare.seen_gpus), so a GPU it lacks is named as missing, and a refusal names the ids it could not resolve
    (`unresolvable CDI devices nvidia.com/gpu=7`, `device error: 7: unknown device`; compare.named_in). At two
    GPUs the combined request is kept rather than GPU 1 alone: the same two containers, and it also proves that
    a list of devices is taken as one request (the CSV quoting of `--gpus '"device=0,1"'`, several `--device`)."""
    if not items:
        return []
    if len(items) == 1:
        return [one(items, "")]  # a 1-GPU host: the form's only probe, said as before
    labels = [label(i) for i in items]
    return [one(items[:1], f"{noun} {labels[0]} alone"), one(items, f"{noun}s {_span(labels)} in one request")]


def _span(labels: Sequence[str]) -> str:
    """"0–7" for consecutive indices (three or more), else the labels listed: "0, 2", "3:0, 3:1"."""
    if len(labels) >= 3 and all(x.isdigit() for x in labels):
        numbers = [int(x) for x in labels]
        if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            return f"{numbers[0]}–{numbers[-1]}"
    return ", ".join(labels)


def _key(form_id: str, parts: Sequence[str]) -> str:
    """One GPU keeps its pre-issue-12 key (`gpus-device-index:3`); the combined request lists what it names."""
    return f"{form_id}:{','.join(parts)}"


def _gpu_label(g: HostGpu) -> str:
    return str(g.index)


def _devices_spec(key: str, check_id: str, idents: Sequence[str], ctx: FormContext, scope: str,
                  expect_indices: tuple[int, ...] = (), expect_mig: tuple[str, ...] = ()) -> ProbeSpec:
    """`--gpus device=<id>`, or `--gpus '"device=<a>,<b>,…"'` for several: the inner quotes keep the list one CSV
    field (docker/cli opts/gpus.go; spelling.gpus_value writes them); dockerd passes the ids on verbatim."""
    intent = Intent(meaning="", mode="devices", devices=tuple(idents))
    flags = request_flags(intent)
    return ProbeSpec(
        key, key.split(":")[0], check_id, flags, f"docker run --rm {flags} {ctx.image}", sdk(intent), compose(intent),
        device_requests=(_req(device_ids=list(idents)),), expect_indices=expect_indices, expect_mig=expect_mig,
        asks=tuple(idents), scope=scope,
    )


def _device_each(gpus: Sequence[HostGpu], ident: Callable[[HostGpu], str], form_id: str, ctx: FormContext) -> list[ProbeSpec]:
    return per_gpu(gpus, lambda gs, scope: _devices_spec(
        _key(form_id, [str(g.index) for g in gs]), "containers.gpus-device", [ident(g) for g in gs], ctx, scope,
        expect_indices=tuple(g.index for g in gs)), _gpu_label)


def _device_index(ctx: FormContext) -> list[ProbeSpec]:
    return _device_each(ctx.gpus, lambda g: str(g.index), "gpus-device-index", ctx)


def _device_uuid(ctx: FormContext) -> list[ProbeSpec]:
    return _device_each([g for g in ctx.gpus if g.uuid], lambda g: str(g.uuid), "gpus-device-uuid", ctx)


def _caps(caps: Sequence[str], key: str, ctx: FormContext) -> ProbeSpec:
    joined = ",".join(caps)
    return ProbeSpec(
        # The inner quotes keep "a,b" one CSV field (docker/cli opts/gpus.go); `all` keeps every GPU
        # (without a count the CLI defaults to count 1).
        key, key, "containers.capabilities", f"--gpus 'all,\"capabilities={joined}\"'",
        f"docker run --rm --gpus 'all,\"capabilities={joined}\"' {ctx.image}",
        *_spell(mode="all", capabilities=tuple(caps)),
        device_requests=(_req(count=-1, caps=("gpu", *caps)),), expect_indices=_all(ctx),
        expect_smi="utility" in caps, expect_uvm="compute" in caps,
    )


def _caps_compute_utility(ctx: FormContext) -> list[ProbeSpec]:
    return [_caps(("compute", "utility"), "caps-compute-utility", ctx)]


def _caps_utility(ctx: FormContext) -> list[ProbeSpec]:
    return [_caps(("utility",), "caps-utility", ctx)]


def _runtime_env(ctx: FormContext) -> list[ProbeSpec]:
    return [
        ProbeSpec(
            "runtime-nvidia-env", "runtime-nvidia-env", "containers.runtime-nvidia-env",
            "--runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=all",
            f"docker run --rm --runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=all {ctx.image}",
            *_spell(mode="env", runtime="nvidia", env=(("NVIDIA_VISIBLE_DEVICES", "all"),)),
            runtime="nvidia", environment=("NVIDIA_VISIBLE_DEVICES=all",), expect_indices=_all(ctx),
        )
    ]


def _cdi(names: Sequence[str], key: str, expect: tuple[int, ...], ctx: FormContext, scope: str = "",
         asks: tuple[str, ...] = ()) -> ProbeSpec:
    """`--device nvidia.com/gpu=<id>`, once per name: the CLI sends the names as one CDI DeviceRequest and dockerd
    resolves each, refusing the whole request when one is unknown (docker-gpu-internals.md §2.2)."""
    intent = Intent(meaning="", mode="cdi", devices=tuple(names))
    flags = request_flags(intent)
    return ProbeSpec(
        key, key.split(":")[0], "containers.cdi", flags, f"docker run --rm {flags} {ctx.image}", sdk(intent),
        compose(intent),
        device_requests=({"Driver": "cdi", "Count": 0, "DeviceIDs": list(names), "Capabilities": None, "Options": {}},),
        expect_indices=expect, asks=asks, scope=scope,
    )


def _cdi_all(ctx: FormContext) -> list[ProbeSpec]:
    return [_cdi(["nvidia.com/gpu=all"], "cdi-all", _all(ctx), ctx)]


def _cdi_each(gpus: Sequence[HostGpu], ident: Callable[[HostGpu], str], form_id: str, ctx: FormContext) -> list[ProbeSpec]:
    return per_gpu(gpus, lambda gs, scope: _cdi(
        [f"nvidia.com/gpu={ident(g)}" for g in gs], _key(form_id, [str(g.index) for g in gs]),
        tuple(g.index for g in gs), ctx, scope, tuple(ident(g) for g in gs)), _gpu_label)


def _cdi_index(ctx: FormContext) -> list[ProbeSpec]:
    return _cdi_each(ctx.gpus, lambda g: str(g.index), "cdi-index", ctx)


def _cdi_uuid(ctx: FormContext) -> list[ProbeSpec]:
    return _cdi_each([g for g in ctx.gpus if g.uuid], lambda g: str(g.uuid), "cdi-uuid", ctx)


def _mig(ctx: FormContext) -> list[ProbeSpec]:
    """`--gpus device=MIG-<uuid>`: the toolkit takes MIG UUIDs in NVIDIA_VISIBLE_DEVICES like GPU ids, in a list
    too (failure-modes.md #50, #52). Labelled `<gpu>:<mig>` (the toolkit's index form) to keep the text short."""
    migs = [(f"{g.index}:{i}", u) for g in ctx.gpus for i, u, _n in g.mig_devices if u]
    return per_gpu(migs, lambda chosen, scope: _devices_spec(
        _key("mig", [u for _l, u in chosen]), "containers.mig", [u for _l, u in chosen], ctx, scope,
        expect_mig=tuple(u for _l, u in chosen)), lambda m: m[0], noun="MIG device")


def _needs_cdi(ctx: FormContext) -> str | None:
    return None if ctx.cdi_supported else "the Docker daemon does not resolve CDI devices (Docker < 25, or CDI disabled)"


def _needs_gpus(ctx: FormContext) -> str | None:
    return None if ctx.gpus else "NVML lists no GPU on this host"


def _needs_mig(ctx: FormContext) -> str | None:
    return None if any(g.mig_uuids for g in ctx.gpus) else "no GPU has MIG devices"


FORMS: tuple[RequestForm, ...] = (
    RequestForm("baseline", "containers.baseline", "no GPU request", "a container that asks for no GPU must see none", True, _baseline),
    RequestForm("gpus-all", "containers.gpus-all", "--gpus all", "every GPU through dockerd's nvidia device driver", True, _gpus_all, _needs_gpus),
    RequestForm("sdk-runtime-nvidia", "containers.sdk-runtime-nvidia", 'runtime="nvidia" + DeviceRequest', "the Docker SDK form people copy", True, _sdk_runtime, _needs_gpus),
    RequestForm("gpus-count-1", "containers.gpus-count", "--gpus 1", "a count of one: GPU 0, not GPU 1", False, _count_1, _needs_gpus),
    RequestForm("gpus-count-host", "containers.gpus-count", "--gpus N", "a count equal to the host's GPUs", False, _count_host, _needs_gpus),
    RequestForm("gpus-count-over", "containers.gpus-count", "--gpus N+1", "more GPUs than the host has must be refused", False, _count_over, _needs_gpus),
    RequestForm("gpus-device-index", "containers.gpus-device", "--gpus device=I", "GPU 0 by index, then every GPU in one request", False, _device_index, _needs_gpus),
    RequestForm("gpus-device-uuid", "containers.gpus-device", "--gpus device=UUID", "GPU 0 by UUID, then every GPU's UUID in one request", False, _device_uuid, _needs_gpus),
    RequestForm("caps-compute-utility", "containers.capabilities", "capabilities=compute,utility", "explicit capabilities", False, _caps_compute_utility, _needs_gpus),
    RequestForm("caps-utility", "containers.capabilities", "capabilities=utility", "utility only: nvidia-smi, no CUDA", False, _caps_utility, _needs_gpus),
    RequestForm("runtime-nvidia-env", "containers.runtime-nvidia-env", "--runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=all", "the nvidia-docker2 form", True, _runtime_env, _needs_gpus),
    RequestForm("cdi-all", "containers.cdi", "--device nvidia.com/gpu=all", "CDI, all GPUs", True, _cdi_all, lambda c: _needs_gpus(c) or _needs_cdi(c)),
    RequestForm("cdi-index", "containers.cdi", "--device nvidia.com/gpu=I", "CDI: GPU 0 by index, then every GPU in one request", False, _cdi_index, lambda c: _needs_gpus(c) or _needs_cdi(c)),
    RequestForm("cdi-uuid", "containers.cdi", "--device nvidia.com/gpu=UUID", "CDI: GPU 0 by UUID, then every GPU's UUID in one request", False, _cdi_uuid, lambda c: _needs_gpus(c) or _needs_cdi(c)),
    RequestForm("mig", "containers.mig", "--gpus device=MIG-…", "one MIG device by UUID, then every MIG device in one request", False, _mig, _needs_mig),
)

FORM_IDS = tuple(f.id for f in FORMS)


def form(form_id: str) -> RequestForm:
    for f in FORMS:
        if f.id == form_id:
            return f
    raise KeyError(form_id)


def select_forms(requested: Sequence[str] | None, all_forms: bool) -> tuple[tuple[RequestForm, ...], tuple[str, ...]]:
    """The forms to run and the unknown ids the user asked for. The baseline always runs: it is the
    control that tells "the host leaks GPUs" from "the request works"."""
    if all_forms:
        return FORMS, ()
    if requested:
        unknown = tuple(r for r in requested if r not in FORM_IDS)
        chosen = {"baseline", *requested}
        return tuple(f for f in FORMS if f.id in chosen), unknown
    return tuple(f for f in FORMS if f.default), ()
