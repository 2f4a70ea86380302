"""The request-form catalogue: every way people really ask Docker for GPUs.

Each form knows its CLI spelling, its Docker SDK spelling, its Compose spelling where one exists,
which host GPUs it *should* expose, and which check judges it. `expand` turns a form into concrete
probes for this host (one per GPU index for `device=I`, and so on).

How each form reaches the container (docs: moby daemon/nvidia_linux.go, failure-modes.md §0.1):
* `--gpus …` / `DeviceRequest(...)`: dockerd's nvidia device driver (registered only if
  `nvidia-container-runtime-hook` was on dockerd's PATH at start) sets NVIDIA_VISIBLE_DEVICES —
  `all` for count -1, the indices `0..N-1` for count N (a count, not an index), the ids verbatim
  for device_ids — and adds the hook; the runtime stays runc unless `runtime=` says otherwise.
* `--runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=…`: the NVIDIA Container Runtime reads the env.
* `--device nvidia.com/gpu=…`: CDI, resolved by dockerd itself (Docker ≥ 25 with CDI enabled).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..gpu_requests.request import DeviceRequest, GpuRequest, HostGpu
from ..gpu_requests.spelling import Intent, compose, sdk

GPU_CAPS = [["gpu"]]


@dataclass(frozen=True)
class FormContext:
    gpus: tuple[HostGpu, ...]
    image: str
    cdi_supported: bool  # the daemon can resolve CDI device requests
    nvidia_runtime: bool  # a runtime named "nvidia" is registered


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


def _device(g: HostGpu, ident: str, form_id: str, ctx: FormContext) -> ProbeSpec:
    """`--gpus device=<ident>` for one GPU, by index or by UUID."""
    return ProbeSpec(
        f"{form_id}:{g.index}", form_id, "containers.gpus-device", f"--gpus device={ident}",
        f"docker run --rm --gpus device={ident} {ctx.image}", *_spell(mode="devices", devices=(ident,)),
        device_requests=(_req(device_ids=[ident]),), expect_indices=(g.index,),
    )


def _device_index(ctx: FormContext) -> list[ProbeSpec]:
    return [_device(g, str(g.index), "gpus-device-index", ctx) for g in ctx.gpus]


def _device_uuid(ctx: FormContext) -> list[ProbeSpec]:
    return [_device(g, g.uuid, "gpus-device-uuid", ctx) for g in ctx.gpus if g.uuid]


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


def _cdi(name: str, key: str, title_id: str, expect: tuple[int, ...], ctx: FormContext) -> ProbeSpec:
    return ProbeSpec(
        key, key.split(":")[0], "containers.cdi", f"--device nvidia.com/gpu={title_id}",
        f"docker run --rm --device nvidia.com/gpu={title_id} {ctx.image}", *_spell(mode="cdi", devices=(name,)),
        device_requests=({"Driver": "cdi", "Count": 0, "DeviceIDs": [name], "Capabilities": None, "Options": {}},),
        expect_indices=expect,
    )


def _cdi_all(ctx: FormContext) -> list[ProbeSpec]:
    return [_cdi("nvidia.com/gpu=all", "cdi-all", "all", _all(ctx), ctx)]


def _cdi_index(ctx: FormContext) -> list[ProbeSpec]:
    return [_cdi(f"nvidia.com/gpu={g.index}", f"cdi-index:{g.index}", str(g.index), (g.index,), ctx) for g in ctx.gpus]


def _cdi_uuid(ctx: FormContext) -> list[ProbeSpec]:
    return [
        _cdi(f"nvidia.com/gpu={g.uuid}", f"cdi-uuid:{g.index}", str(g.uuid), (g.index,), ctx) for g in ctx.gpus if g.uuid
    ]


def _mig(ctx: FormContext) -> list[ProbeSpec]:
    specs = []
    for g in ctx.gpus:
        for mig in g.mig_uuids:
            specs.append(
                ProbeSpec(
                    f"mig:{mig}", "mig", "containers.mig", f"--gpus device={mig}",
                    f"docker run --rm --gpus device={mig} {ctx.image}",
                    *_spell(mode="devices", devices=(mig,)),
                    device_requests=(_req(device_ids=[mig]),), expect_mig=(mig,),
                )
            )
    return specs


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
    RequestForm("gpus-device-index", "containers.gpus-device", "--gpus device=I", "each GPU by index", False, _device_index, _needs_gpus),
    RequestForm("gpus-device-uuid", "containers.gpus-device", "--gpus device=UUID", "each GPU by UUID", False, _device_uuid, _needs_gpus),
    RequestForm("caps-compute-utility", "containers.capabilities", "capabilities=compute,utility", "explicit capabilities", False, _caps_compute_utility, _needs_gpus),
    RequestForm("caps-utility", "containers.capabilities", "capabilities=utility", "utility only: nvidia-smi, no CUDA", False, _caps_utility, _needs_gpus),
    RequestForm("runtime-nvidia-env", "containers.runtime-nvidia-env", "--runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=all", "the nvidia-docker2 form", True, _runtime_env, _needs_gpus),
    RequestForm("cdi-all", "containers.cdi", "--device nvidia.com/gpu=all", "CDI, all GPUs", True, _cdi_all, lambda c: _needs_gpus(c) or _needs_cdi(c)),
    RequestForm("cdi-index", "containers.cdi", "--device nvidia.com/gpu=I", "CDI, each GPU by index", False, _cdi_index, lambda c: _needs_gpus(c) or _needs_cdi(c)),
    RequestForm("cdi-uuid", "containers.cdi", "--device nvidia.com/gpu=UUID", "CDI, each GPU by UUID", False, _cdi_uuid, lambda c: _needs_gpus(c) or _needs_cdi(c)),
    RequestForm("mig", "containers.mig", "--gpus device=MIG-…", "each MIG device by UUID", False, _mig, _needs_mig),
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
