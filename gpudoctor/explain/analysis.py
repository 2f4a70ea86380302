"""Judge a normalised GPU request: what it means, which GPUs it selects, its pitfalls, what the
host must provide, and the corrected spelling. Pure: facts about the host come in as a HostView.

Sources for every rule are cited inline; "internals" = docs/docker-gpu-internals.md,
"#NN" = the entry in docs/failure-modes.md.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Sequence

from ..gpu_requests import spelling as dialects
from ..gpu_requests import texts
from ..gpu_requests.behaviour import Prediction, predict
from ..gpu_requests.request import host_gpus
from ..gpu_requests.stack import stack_from_facts
from ..gpu_requests.spelling import Intent
from .gpus_flag import GpusParse, guess_intent
from .model import (
    Correction,
    DeviceRequest,
    ErrorText,
    Explanation,
    GpuRequest,
    HostGpu,
    HostView,
    Pitfall,
    Requirement,
    Selection,
)
from ..facts.nvml import normalize_bus_id
from ..gpu_requests.texts import HOOK_REFUSAL_FULL
from .pitfalls import pitfall
from .visible_devices import ENV_NAME, classify, parse_visible_devices

# The NVIDIA device driver's capability set (moby daemon/nvidia_linux.go / devices_nvidia_linux.go).
NVIDIA_CAPSET = {"gpu", "nvidia", "compute", "compat32", "graphics", "utility", "video", "display"}
NVIDIA_DRIVER_CAPS = ("compute", "compat32", "graphics", "utility", "video", "display")

E_BOTH = texts.BOTH_COUNT_AND_IDS
DAEMON_START = "dockerd (container start, HTTP 500)"
DAEMON_CREATE = "dockerd (container create, HTTP 400)"
# JSON decoding errors of the create body come back as 500 on Docker 20.10 (seen with tests/test_explain_docker.py).
DAEMON_DECODE = "dockerd (container create, HTTP 500)"
HOOK = "nvidia-container-cli via the prestart hook (container start)"
E_HOOK_CDI_MODE = HOOK_REFUSAL_FULL


def could_not_select(driver: str, caps: Any) -> str:
    return texts.could_not_select(driver, _plain(caps))


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ----------------------------------------------------------------------------------------------
# Host GPU resolution


def host_view_from_nvml(nvml: Any, docker: Any = None, dockerd_process: Any = None, toolkit: Any = None,
                        cdi: Any = None) -> HostView | None:
    """NvmlFacts (+ the Docker, dockerd, toolkit and CDI facts for what this stack does) → HostView; None when NVML
    did not answer (explain then speaks in general terms)."""
    if nvml is None or getattr(nvml, "init_error", None) is not None:
        return None
    reachable = docker is not None and getattr(docker, "reachable", False)
    runtimes = tuple(docker.runtime_names) if reachable else None
    stack = stack_from_facts(docker, dockerd_process, toolkit, cdi) if reachable else None
    return HostView(host_gpus(nvml), runtimes=runtimes, stack=stack)


def resolve_token(token: str, host: HostView) -> tuple[list[str], HostGpu | None]:
    """Labels of what `token` names on this host ([] = nothing), and the whole GPU if it is one."""
    form = classify(token)
    if token == "all":
        return [g.label for g in host.gpus], None
    if form == "index":
        for g in host.gpus:
            if g.index == int(token):
                return [g.label], g
    elif form == "gpu-uuid" or form == "uuid-prefix":
        for g in host.gpus:
            if g.uuid and g.uuid.lower() == token.lower():
                return [g.label], g
    elif form == "mig-uuid":
        for g in host.gpus:
            for idx, uuid, name in g.mig_devices:
                if uuid and uuid.lower() == token.lower():
                    return [f"MIG {g.index}:{idx} ({', '.join(x for x in (name, uuid) if x)}) on GPU {g.index}"], None
    elif form == "mig-index":
        gi, mi = (int(x) for x in token.split(":"))
        for g in host.gpus:
            if g.index == gi:
                for idx, uuid, name in g.mig_devices:
                    if idx == mi:
                        return [f"MIG {gi}:{mi} ({', '.join(x for x in (name, uuid) if x)}) on GPU {gi}"], None
    elif form == "pci":
        for g in host.gpus:
            if g.pci_bus_id and normalize_bus_id(g.pci_bus_id) == normalize_bus_id(token):
                return [g.label], g
    return [], None


# ----------------------------------------------------------------------------------------------
# The analysis proper


class _Ctx:
    def __init__(self, req: GpuRequest, host: HostView | None) -> None:
        self.req = req
        self.host = host
        self.pitfalls: list[Pitfall] = []
        self.meaning: list[str] = []
        self.intents: list[Intent] = []
        self.rejected: ErrorText | None = None

    def add(self, p: Pitfall) -> None:
        if not any(x.id == p.id and x.subject == p.subject for x in self.pitfalls):
            self.pitfalls.append(p)

    def has(self, pid: str) -> bool:
        return any(p.id == pid for p in self.pitfalls)


def analyze(req: GpuRequest, host: HostView | None, input_text: str) -> Explanation:
    ctx = _Ctx(req, host)
    parses: Sequence[GpusParse] = req.hints.get("gpus_parses", ())
    for p in parses:
        _gpus_syntax(ctx, p)
    _sdk_findings(ctx)
    _compose_findings(ctx)
    for dr in req.device_requests:
        _device_request(ctx, dr)
    _request_level(ctx)
    on_host = _on_this_stack(ctx)
    selection = _selection(ctx)
    _describe(ctx)
    intents = ctx.intents or _default_intents(ctx)
    corrections = tuple(_dedupe(dialects.correction(i) for i in intents))
    return Explanation(
        input=input_text,
        kind=req.kind,
        request=req,
        meaning=tuple(ctx.meaning),
        selection=selection,
        pitfalls=tuple(ctx.pitfalls),
        requirements=tuple(_requirements(req)),
        corrections=corrections,
        host=host,
        rejected=ctx.rejected,
        on_host=on_host,
    )


def _on_this_stack(ctx: _Ctx) -> Prediction | None:
    """What this host's daemon and toolkit will do with the request — the same model the probes are judged by
    (gpu_requests/behaviour.py) — and, when it refuses, the refusal as a pitfall with the owning layer's fix."""
    host = ctx.host
    if host is None or host.stack is None or ctx.rejected is not None or ctx.req.kind == "env":
        return None
    p = predict(ctx.req, host.stack, host.gpus)
    if p.refused and not any(e.text in (x.text for q in ctx.pitfalls for x in q.errors) for e in p.errors):
        from ..probes.errors import cause_for_blame, classify

        cause = classify(p.text) if p.text else None
        fix = (cause.fix if cause and cause.layer_check else cause_for_blame(p.blame or "", p.why).fix) if p.blame else None
        how = f" Fix: {fix.summary} " + " && ".join(fix.commands) if fix and fix.commands else ""
        where = f" (the {p.blame} check owns it)" if p.blame else ""
        ctx.add(pitfall("host.refused", "fail", f"this host refuses the request: {p.why}",
                        f"What this daemon and toolkit do with it ({' → '.join(p.via or (p.path,))}): refused{where}.{how}",
                        p.errors, ctx.req.label, mode=cause.id if cause else None))
    return p


def _dedupe(items: Iterable[Correction]) -> list[Correction]:
    seen: set[str] = set()
    out = []
    for c in items:
        if c.cli not in seen:
            seen.add(c.cli)
            out.append(c)
    return out


def _base_intent(ctx: _Ctx, meaning: str, mode: str, **kw: Any) -> Intent:
    req = ctx.req
    keep_env = tuple((k, v) for k, v in req.env if k != ENV_NAME or mode == "env")
    kw.setdefault("runtime", req.runtime)
    return Intent(meaning, mode, env=kw.pop("env", keep_env), image=req.image, service=str(req.hints.get("service") or "app"), **kw)


def _cli_errors(p: GpusParse) -> tuple[ErrorText, ...]:
    rej = p.rejection
    assert rej is not None
    modern = ErrorText(rej.full(), "docker CLI (exit status 125)", "docker CLI >= 28.0.2" if rej.legacy != rej.message else "")
    if rej.legacy != rej.message:
        return (modern, ErrorText(rej.full(legacy=True), "docker CLI (exit status 125)", "docker CLI < 28.0.2"))
    return (modern,)


def _gpus_syntax(ctx: _Ctx, p: GpusParse) -> None:
    """Pitfalls in how a --gpus value is written (docker/cli opts/gpus.go; #46, #47)."""
    subject = f"--gpus {p.value}"
    if p.rejection is not None:
        rej = p.rejection
        errors = _cli_errors(p)
        ctx.rejected = ctx.rejected or errors[0]
        msg = rej.message
        field = rej.field or ""
        keyed_before = any(f.partition("=")[1] and f.partition("=")[0] in ("capabilities", "device", "options") for f in p.fields[: p.fields.index(field)] if field in p.fields) if field in p.fields else False
        if msg.startswith("unexpected key ' ") or (msg.startswith("unexpected key '") and field[:1] == " "):
            ctx.add(pitfall("gpus.space-after-comma", "fail", "a space after a comma becomes part of the next key",
                "The CLI reads --gpus as one CSV record and keeps spaces: ' capabilities' is not a key it knows. "
                "Write fields without spaces and quote any field whose value has commas.", errors, subject))
        elif msg.startswith("unexpected key") and keyed_before:
            ctx.add(pitfall("gpus.unquoted-list", "fail", "a comma list after `key=` is not quoted, so its tail becomes a new field",
                "In --gpus, commas separate fields; the list after options=/device=/capabilities= must be a quoted CSV field: "
                "--gpus '\"options=a=b,c=d\"'.", errors, subject))
        elif msg.startswith("unexpected key"):
            ctx.add(pitfall("gpus.unknown-key", "fail", f"--gpus has no key {field.partition('=')[0]!r}",
                "The keys --gpus knows are count, device, capabilities, driver and options; a bare number or `all` is a count.",
                errors, subject))
        elif "can be specified only once" in msg:
            ctx.add(pitfall("gpus.key-repeated", "fail", "the same --gpus key is given twice",
                "A bare number counts as `count`, so `1,count=2` repeats count; to list several devices use one quoted field: "
                "--gpus '\"device=0,1\"'.", errors, subject))
        elif "count must be an integer" in msg or msg.startswith("invalid count"):
            if keyed_before:
                ctx.add(pitfall("gpus.unquoted-list", "fail", "a comma list after `key=` is not quoted, so its tail is read as a count",
                    "docker/cli splits --gpus on every comma; in `capabilities=compute,utility` the `utility` becomes a bare "
                    "field, which the CLI reads as a count. Quote the field for the CSV parser and the quotes for the shell: "
                    "--gpus '\"capabilities=compute,utility\"'.", errors, subject))
            else:
                hint = ""
                if classify(field) in ("gpu-uuid", "mig-uuid", "mig-index", "pci", "uuid-prefix"):
                    hint = f" `{field}` looks like a device: write --gpus device={field}."
                ctx.add(pitfall("gpus.bad-count", "fail", f"`{field}` is read as a GPU count and is not a number",
                    "A field without `=` is a count: `all` or an integer." + hint, errors, subject))
        elif msg == "EOF":
            ctx.add(pitfall("gpus.empty", "fail", "--gpus is empty",
                "An empty --gpus value has no CSV record; write --gpus all, --gpus count=N or --gpus device=ID.", errors, subject))
        elif msg.startswith("failed to read gpu options"):
            ctx.add(pitfall("gpus.bad-options", "fail", "the options= value is not valid CSV", "Quote the whole options field.", errors, subject))
        else:
            ctx.add(pitfall("gpus.csv-quoting", "fail", "the --gpus value is not valid CSV (quotes in the wrong place)",
                "A double quote may only wrap a whole field (from its first character to the comma after it). "
                "Put the shell's single quotes around the whole value and CSV double quotes around the field: "
                "--gpus '\"device=0,1\"'.", errors, subject))
        gi = guess_intent(p.value)
        if gi is not None:
            ctx.intents.append(_intent_from_guess(ctx, gi))
        return

    dr = p.request
    assert dr is not None
    bare = p.bare_count_fields
    keyed_count = any(f.partition("=")[0] == "count" and f.partition("=")[1] for f in p.fields)
    if bare and dr.device_ids is not None:
        ctx.add(pitfall("gpus.unquoted-device-list", "fail", "the device list is not quoted: its tail became a count",
            f"docker/cli read `{p.value}` as the fields {list(p.fields)}: device={','.join(dr.device_ids)} plus "
            f"the bare field(s) {', '.join(bare)}, which set Count. A request with both Count and DeviceIDs is refused "
            "by the NVIDIA device driver at container start.",
            (ErrorText(E_BOTH, DAEMON_START, "19.03+, when the NVIDIA device driver is registered"),), subject))
        gi = guess_intent(p.value)
        if gi is not None:
            ctx.intents.append(_intent_from_guess(ctx, gi, meaning=f"GPUs {', '.join(gi.devices)}"))
        return
    if len(bare) > 1 or (bare and keyed_count):
        ctx.add(pitfall("gpus.count-overridden", "warn", "the count is given more than once; the last one wins",
            f"docker/cli remembers bare counts under their own text, so `{p.value}` is accepted and Count ends up {dr.count}.",
            (), subject))
    if bare:
        n = dr.count
        if n == 0:
            return  # reported by request.count-zero
        if n > 0:
            first = "GPU 0" if n == 1 else f"GPUs 0..{n - 1}"
            ctx.add(pitfall("gpus.count-not-index", "warn", f"`--gpus {bare[-1]}` is a count: it gives {first}, not GPU {n}",
                f"A bare number is a count; dockerd turns count {n} into NVIDIA_VISIBLE_DEVICES={','.join(map(str, range(n)))} "
                "(the first N GPUs in NVML order, moby countToDevices). Write count= to say you mean a count, or "
                f"device= to pick GPU {n}.", (), subject))
            ctx.intents.append(_base_intent(ctx, f"{n} GPU{'s' if n != 1 else ''} (the first {n} in NVML order)", "count", count=n, capabilities=_user_caps(dr), driver=dr.driver))
            ctx.intents.append(_base_intent(ctx, f"GPU {n} (by index)", "devices", devices=(str(n),), capabilities=_user_caps(dr), driver=dr.driver))


def _user_caps(dr: DeviceRequest) -> tuple[str, ...]:
    caps = dr.capabilities
    if not caps or not isinstance(caps, tuple) or not isinstance(caps[0], tuple):
        return ()
    return tuple(c for c in caps[0] if c != "gpu" and c in NVIDIA_CAPSET)


def _intent_from_guess(ctx: _Ctx, gi: Any, meaning: str | None = None) -> Intent:
    caps = tuple(c for c in gi.capabilities if c in NVIDIA_CAPSET)
    if gi.devices:
        return _base_intent(ctx, meaning or f"GPU{'s' if len(gi.devices) > 1 else ''} {', '.join(gi.devices)}", "devices", devices=gi.devices, capabilities=caps, driver=gi.driver)
    if gi.count is not None and gi.count > 0:
        return _base_intent(ctx, meaning or f"{gi.count} GPU(s)", "count", count=gi.count, capabilities=caps, driver=gi.driver)
    return _base_intent(ctx, meaning or "all GPUs", "all", capabilities=caps, driver=gi.driver)


def _sdk_findings(ctx: _Ctx) -> None:
    req = ctx.req
    if req.kind != "sdk":
        return
    errors: Sequence[ErrorText] = req.hints.get("client_errors", ())
    if errors:
        ctx.rejected = errors[0]
        ctx.add(pitfall("sdk.client-error", "fail", "docker-py refuses this call before sending anything",
            "The Docker SDK checks argument types and names client-side (docker/types/containers.py, docker/models/containers.py).",
            tuple(errors), req.label))
    for origin, name in req.hints.get("ignored_kwargs", ()):
        ctx.add(pitfall("sdk.ignored-keyword", "fail", f"DeviceRequest ignores the keyword `{name}`",
            "docker.types.DeviceRequest only reads driver, count, device_ids, capabilities and options (or their CamelCase "
            "API names); any other keyword is dropped without an error, so the request is sent without it.",
            (), origin))
    if req.hints.get("toplevel_runtime"):
        ctx.add(pitfall("sdk.runtime-top-level", "fail", "APIClient.create_container(runtime=...) does not put the runtime in HostConfig",
            "The low-level create_container sends `Runtime` at the top level of the create body. Docker <= 26.x honours it only "
            "when no HostConfig is sent; 27.0+ ignores it silently (moby commit 2954b05b03). Use "
            "create_host_config(runtime=...) or client.containers.run(runtime=...).",
            (ErrorText("Unknown runtime specified nvidia", DAEMON_CREATE, "Docker 20.10 (observed)"),), req.label))


_COMPOSE_IDS = {
    "missing-capabilities": ("compose.missing-capabilities", "fail"),
    "split-device-item": ("compose.split-device-item", "fail"),
    "count-and-device-ids": ("compose.count-and-device-ids", "fail"),
    "count-value": ("compose.bad-count", "fail"),
    "count-type": ("compose.bad-count", "fail"),
    "unknown-key": ("compose.unknown-key", "fail"),
    "device-ids-not-strings": ("compose.device-ids-not-strings", "warn"),
    "devices-not-list": ("compose.bad-gpus", "fail"),
    "gpus-value": ("compose.bad-gpus", "fail"),
}
_COMPOSE_DETAIL = {
    "missing-capabilities": "Each device entry must have `capabilities` (docs.docker.com: \"You must set this field in the Compose file. "
    "Otherwise, it returns an error on service deployment.\"); an empty capability list matches no device driver.",
    "split-device-item": "`driver:` and `capabilities:` must be keys of the same list item. With an extra `-` they become two "
    "entries: one without capabilities (refused) and one without a driver.",
    "count-and-device-ids": "Compose's `count` and `device_ids` are mutually exclusive; the daemon refuses a request with both.",
    "count-value": "compose-go accepts only `all` or a number for count (compose-go types/device.go).",
    "count-type": "compose-go accepts only `all` or a number for count (compose-go types/device.go).",
    "unknown-key": "A reservation device entry has only capabilities, driver, count, device_ids and options.",
    "device-ids-not-strings": "device_ids is a list of strings in the Compose spec and the API (DeviceIDs []string); quote them.",
    "devices-not-list": "`deploy.resources.reservations.devices` is a list of device entries.",
    "gpus-value": "The service-level `gpus` key takes `all` or a list of device entries.",
}


def _compose_findings(ctx: _Ctx) -> None:
    req = ctx.req
    if req.kind != "compose":
        return
    for code, message, subject in req.hints.get("compose_issues", ()):
        pid, severity = _COMPOSE_IDS.get(code, ("compose.unknown-key", "fail"))
        errors: tuple[ErrorText, ...] = ()
        if code == "count-value":
            errors = (ErrorText(message, "docker compose (compose-go)"),)
        elif code == "count-and-device-ids":
            errors = (ErrorText(E_BOTH, DAEMON_START, "when the NVIDIA device driver is registered"),)
        elif code == "missing-capabilities":
            errors = (ErrorText(could_not_select("nvidia", []), DAEMON_START, "<= 28.x, if Compose lets it through"),)
        ctx.add(pitfall(pid, severity, message, _COMPOSE_DETAIL.get(code, message), errors, subject))
    version = req.hints.get("compose_version")
    if req.runtime and version and str(version).startswith("3"):
        ctx.meaning.append(
            f"`runtime:` with `version: '{version}'`: docker-compose v1 before 1.27 refuses it "
            f"(\"Unsupported config option for services.{req.hints.get('service')}: 'runtime'\"); Compose v2 accepts it."
        )


def _device_request(ctx: _Ctx, dr: DeviceRequest) -> None:
    req = ctx.req
    subject = dr.origin or req.label
    if dr.is_cdi:
        _cdi_request(ctx, dr, subject)
        return
    caps = dr.capabilities
    ids = dr.device_ids or ()
    # Shapes the daemon cannot even decode (HTTP 400 at create): flat capabilities, non-string ids.
    if isinstance(caps, tuple) and any(not isinstance(c, tuple) for c in caps):
        ctx.add(pitfall("request.capabilities-flat", "fail", "capabilities is a flat list; the API wants a list of lists",
            "Capabilities is an OR-list of AND-lists ([[\"gpu\"]]). A flat [\"gpu\"] does not decode into [][]string, so the "
            "daemon rejects the create call.",
            (ErrorText(texts.DECODE_CAPS_FLAT[0], DAEMON_DECODE, "Docker 20.10"),
             ErrorText(texts.DECODE_CAPS_FLAT[1], DAEMON_CREATE, "Docker 29.x")),
            subject))
    if any(not isinstance(i, str) for i in ids) and req.kind != "compose":
        ctx.add(pitfall("request.device-ids-not-strings", "fail", "device_ids holds numbers; the API wants strings",
            "DeviceIDs is []string; numbers do not decode, so the daemon rejects the create call. Write device_ids=[\"0\", \"1\"].",
            (ErrorText(texts.DECODE_IDS_NOT_STRINGS[0], DAEMON_DECODE, "Docker 20.10"),
             ErrorText(texts.DECODE_IDS_NOT_STRINGS[1], DAEMON_CREATE, "Docker 29.x")),
            subject))
    count = dr.count
    if "count" in dr.unknown:
        count = None
    # Capability matching (moby daemon/internal/capabilities/caps.go: first AND-list fully in the capset).
    nested = [c for c in (caps or ()) if isinstance(c, tuple)]
    if not caps and "capabilities" not in dr.unknown and not (req.kind == "compose" and ctx.has("compose.missing-capabilities")):
        versions = "all versions" if not dr.driver else "<= 28.x (29.0+ uses a named driver whatever the capabilities)"
        ctx.add(pitfall("request.no-capabilities", "fail", "no capabilities: the request matches no device driver",
            "An empty Capabilities list never matches a driver's capability set. docker-py's DeviceRequest defaults it to [] — "
            "always pass capabilities=[[\"gpu\"]], as the CLI does.",
            (ErrorText(could_not_select(dr.driver, []), DAEMON_START, versions),), subject))
    elif nested and dr.driver in ("", "nvidia"):
        matched = next((c for c in nested if set(c) <= NVIDIA_CAPSET), None)
        if matched is None:
            bad = sorted({c for lst in nested for c in lst} - NVIDIA_CAPSET)
            ctx.add(pitfall("request.capability-unknown", "fail", f"capability {', '.join(repr(b) for b in bad)} is not one the NVIDIA driver offers",
                "dockerd picks the first AND-list whose every capability the NVIDIA driver has (gpu, nvidia, compute, compat32, "
                "graphics, utility, video, display). `all` is the toolkit's NVIDIA_DRIVER_CAPABILITIES word, not a Docker "
                "capability: request [[\"gpu\"]] and set -e NVIDIA_DRIVER_CAPABILITIES=all instead.",
                (ErrorText(could_not_select(dr.driver, caps), DAEMON_START, "<= 28.x (any driver); 19.03+ with no driver named"),), subject))
            ctx.intents.append(_intent_like(ctx, dr, capabilities=(), extra_env=(("NVIDIA_DRIVER_CAPABILITIES", "all"),) if "all" in bad else ()))
        else:
            driver_caps = [c for c in matched if c in NVIDIA_DRIVER_CAPS]
            if driver_caps:
                missing = [c for c in ("compute", "utility") if c not in driver_caps]
                if missing:
                    what = {"utility": "nvidia-smi and libnvidia-ml (NVML)", "compute": "libcuda (CUDA)"}
                    ctx.add(pitfall("request.capabilities-narrow", "warn",
                        f"NVIDIA_DRIVER_CAPABILITIES={','.join(driver_caps)} leaves out {' and '.join(missing)}",
                        "dockerd sets NVIDIA_DRIVER_CAPABILITIES to the NVIDIA capabilities you request (internals §1.4); the "
                        f"toolkit then injects only those driver parts, so {' and '.join(what[m] for m in missing)} will be missing "
                        "inside the container.", (), subject))
    # Count vs DeviceIDs (moby errConflictCountDeviceIDs).
    if _is_int(count) and count != 0 and ids and not ctx.has("gpus.unquoted-device-list"):
        if not ctx.has("compose.count-and-device-ids"):
            ctx.add(pitfall("request.count-and-device-ids", "fail", "both Count and DeviceIDs are set",
                "A request names either a number of GPUs or the GPUs themselves. Leave count at 0 (the default) when you pass device_ids.",
                (ErrorText(E_BOTH, DAEMON_START, "19.03+, when the NVIDIA device driver is registered"),), subject))
        ctx.intents.append(_intent_like(ctx, dr, force_devices=True))
    if _is_int(count) and count == 0 and not ids and "device_ids" not in dr.unknown:
        ctx.add(pitfall("request.count-zero", "fail", "count 0 with no device IDs asks for no GPU — or, on old Docker, for the image's choice",
            "Count 0: Docker < 27.3 sets no NVIDIA_VISIBLE_DEVICES but still adds the hook, so a CUDA image's own "
            "NVIDIA_VISIBLE_DEVICES=all exposes every GPU; 27.3–29.1 set NVIDIA_VISIBLE_DEVICES=void (no GPU); 29.2+ inject "
            "nothing (moby PR #48482, internals §1.4).", (), subject))
        bare = [p for p in req.hints.get("gpus_parses", ()) if p.request is dr and p.bare_count_fields]
        if bare:
            ctx.intents.append(_base_intent(ctx, "GPU 0 (by index)", "devices", devices=("0",), capabilities=_user_caps(dr), driver=dr.driver))
        ctx.intents.append(_base_intent(ctx, "all GPUs", "all", capabilities=_user_caps(dr), driver=dr.driver))
    for i in ids:
        if not isinstance(i, str):
            continue
        form = classify(i)
        if i == "":
            ctx.add(pitfall("request.empty-device-id", "fail", "an empty device ID",
                "`device=` with nothing after it sends DeviceIDs [\"\"]; NVIDIA_VISIBLE_DEVICES is then empty, which the toolkit "
                "treats like no GPU request at all.", (), subject))
        elif form == "mig-legacy":
            ctx.add(pitfall("request.mig-legacy-name", "fail", f"`{i}` is the old MIG naming",
                "Since R470 drivers MIG devices have their own MIG-<uuid>; the MIG-GPU-<gpu-uuid>/<gi>/<ci> form is rejected. "
                "Use the MIG-… UUID from `nvidia-smi -L` or the <gpu>:<mig> index.",
                (ErrorText(f"nvidia-container-cli: device error: {i}: unknown device", HOOK),), subject))
        elif form == "cdi-name":
            ctx.add(pitfall("request.cdi-name-in-gpus", "warn", f"`{i}` is a CDI name passed through --gpus/DeviceIDs",
                "Only Docker 29.2+ with nvidia-cdi-hook on dockerd's PATH maps --gpus IDs to CDI (and passes names with `=` "
                "through). Elsewhere the name lands verbatim in NVIDIA_VISIBLE_DEVICES and the hook does not know it. "
                "Request CDI devices with --device (CLI) or driver \"cdi\" (API).",
                (ErrorText(f"nvidia-container-cli: device error: {i}: unknown device", HOOK, "Docker < 29.2"),), subject))
            ctx.intents.append(_base_intent(ctx, f"the CDI device {i}", "cdi", devices=tuple(x for x in ids if isinstance(x, str) and classify(x) == "cdi-name"), runtime=req.runtime))


def _intent_like(ctx: _Ctx, dr: DeviceRequest, capabilities: tuple[str, ...] | None = None, extra_env: tuple[tuple[str, str], ...] = (), force_devices: bool = False) -> Intent:
    caps = _user_caps(dr) if capabilities is None else capabilities
    ids = tuple(str(i) for i in (dr.device_ids or ()))
    env = tuple((k, v) for k, v in ctx.req.env if k != ENV_NAME and k not in dict(extra_env)) + extra_env
    if ids and (force_devices or not (_is_int(dr.count) and dr.count != 0)):
        return _base_intent(ctx, f"GPU{'s' if len(ids) > 1 else ''} {', '.join(ids)}", "devices", devices=ids, capabilities=caps, driver=dr.driver, env=env)
    if _is_int(dr.count) and dr.count > 0:
        return _base_intent(ctx, f"{dr.count} GPU(s)", "count", count=dr.count, capabilities=caps, driver=dr.driver, env=env)
    return _base_intent(ctx, "all GPUs", "all", capabilities=caps, driver=dr.driver, env=env)


def _cdi_request(ctx: _Ctx, dr: DeviceRequest, subject: str) -> None:
    """moby daemon/cdi.go injectCDIDevices: Count must be 0, no Options; names resolved from spec files."""
    errors = []
    if _is_int(dr.count) and dr.count != 0:
        errors.append(ErrorText("unexpected count in CDI device request", DAEMON_START, "25.0+"))
    if dr.options:
        errors.append(ErrorText("unexpected options in CDI device request", DAEMON_START, "25.0+"))
    names = tuple(i for i in (dr.device_ids or ()) if isinstance(i, str))
    if errors:
        ctx.add(pitfall("cdi.count-or-options", "fail", "a CDI request carries a count or options",
            "A Driver \"cdi\" request names devices only: leave count at 0 and options empty.", tuple(errors), subject))
    bad = [n for n in names if classify(n) != "cdi-name"]
    if bad:
        ctx.add(pitfall("cdi.bad-name", "fail", f"{', '.join(bad)} is not a fully-qualified CDI name",
            "CDI names are vendor/class=name, e.g. nvidia.com/gpu=0 or nvidia.com/gpu=all.",
            (ErrorText(f"CDI device injection failed: unresolvable CDI devices {', '.join(bad)}", DAEMON_START, "25.0+"),), subject))
    uuid_names = [n for n in names if re.search(r"=(GPU|MIG)-", n)]
    if uuid_names:
        ctx.add(pitfall("cdi.uuid-name", "warn", "CDI names by UUID exist only if the spec was generated with them",
            "A default `nvidia-ctk cdi generate` spec names GPUs by index; UUID names need --device-name-strategy=uuid as well "
            "(seen on the H100 host). Check `nvidia-ctk cdi list`.",
            (ErrorText(f"CDI device injection failed: unresolvable CDI devices {', '.join(uuid_names)}", DAEMON_START, "25.0+"),), subject))
    if errors or bad:
        good = tuple(n for n in names if classify(n) == "cdi-name") or ("nvidia.com/gpu=all",)
        ctx.intents.append(_base_intent(ctx, f"the CDI device{'s' if len(good) > 1 else ''} {', '.join(good)}", "cdi", devices=good))


def _hook_requests(req: GpuRequest) -> list[DeviceRequest]:
    return [d for d in req.device_requests if not d.is_cdi]


def _request_level(ctx: _Ctx) -> None:
    req = ctx.req
    hook = _hook_requests(req)
    cdi = [d for d in req.device_requests if d.is_cdi]
    env_vd = req.env_value(ENV_NAME)
    runtime_nvidia = (req.runtime or "") == "nvidia"
    rejected_gpus = any(p.rejection for p in req.hints.get("gpus_parses", ()))
    raw_nodes = req.hints.get("raw_nvidia_devices", ())
    standalone = req.hints.get("standalone") or req.kind in ("gpus", "env")
    if not standalone and not req.device_requests and not rejected_gpus and not runtime_nvidia and not ctx.rejected:
        if env_vd is not None:
            ctx.add(pitfall("env.visible-devices-without-runtime", "fail", f"{ENV_NAME}={env_vd} alone does nothing under the default runtime",
                "The variable is a request read by the NVIDIA runtime/hook only. Without --gpus (a DeviceRequest) or "
                "--runtime=nvidia (or default-runtime nvidia in daemon.json), plain runc ignores it and the container gets no GPU.",
                (), req.label))
            vd = parse_visible_devices(env_vd)
            ctx.intents.append(_intent_from_visible(ctx, vd))
            ctx.intents.append(_base_intent(ctx, f"keep {ENV_NAME}, add the NVIDIA runtime", "env", runtime="nvidia", env=req.env))
        elif raw_nodes:
            ctx.add(pitfall("request.raw-device-nodes", "fail", f"{', '.join(raw_nodes)} passed as plain devices: no driver libraries",
                "--device /dev/nvidia0 only adds the device node. Nothing injects libcuda/libnvidia-ml or /dev/nvidiactl and "
                "/dev/nvidia-uvm; ask for the GPU with --gpus or CDI so the toolkit sets the container up.", (), req.label))
            idx = tuple(n[len("/dev/nvidia"):] for n in raw_nodes if n[len("/dev/nvidia"):].isdigit())
            ctx.intents.append(_base_intent(ctx, f"GPU{'s' if len(idx) > 1 else ''} {', '.join(idx)} (by minor number; check the NVML index)", "devices", devices=idx) if idx else _base_intent(ctx, "all GPUs", "all"))
        else:
            ctx.add(pitfall("request.no-gpu", "fail", "no GPU is requested",
                "No --gpus / device_requests / reservation, no CDI device and no NVIDIA runtime: the container starts without "
                "GPUs (\"WARNING: The NVIDIA Driver was not detected\", \"Found no NVIDIA driver on your system\").",
                (), req.label))
            ctx.intents.append(_base_intent(ctx, "all GPUs", "all"))
    if env_vd is not None and hook and req.kind != "env":
        ctx.add(pitfall("env.overridden-by-gpus", "warn", f"{ENV_NAME}={env_vd} is overridden by the GPU request",
            "Docker appends its own NVIDIA_VISIBLE_DEVICES after yours when it handles --gpus/DeviceRequests, and the hook "
            "uses the last one: your value is ignored.", (), req.label))
    if env_vd is not None and req.kind != "env" and parse_visible_devices(env_vd).all_mixed:
        ctx.add(pitfall("env.all-wins", "warn", f"`all` in {ENV_NAME}={env_vd} wins over the other entries",
            "The toolkit gives every GPU when `all` appears anywhere in the list.", (), req.label))
    if len(hook) > 1 and not ctx.has("compose.split-device-item"):
        ctx.add(pitfall("gpus.repeated-flag", "warn", "several GPU requests: only the last one counts on the hook path",
            "Each request appends another NVIDIA_VISIBLE_DEVICES=… and the toolkit keeps the last. List all devices in one "
            "request: --gpus '\"device=0,1\"'.", (), req.label))
        ids: list[str] = []
        for d in hook:
            ids += [str(i) for i in (d.device_ids or ())]
        if ids:
            ctx.intents.append(_base_intent(ctx, f"GPUs {', '.join(ids)}", "devices", devices=tuple(dict.fromkeys(ids))))
    subset = any((d.device_ids and not (_is_int(d.count) and d.count < 0)) or (_is_int(d.count) and d.count > 0) for d in hook) or (
        env_vd is not None and parse_visible_devices(env_vd).mode == "list") or any("all" not in "".join(map(str, d.device_ids or ())) for d in cdi)
    if req.privileged and subset:
        ctx.add(pitfall("request.privileged-all-gpus", "warn", "--privileged exposes every GPU, whatever you select",
            "A privileged container gets all host device nodes and an open device cgroup; the toolkit mounts only the selected "
            "GPUs, but NVML/CUDA can still open the rest.", (), req.label))
    cuda = req.env_value("CUDA_VISIBLE_DEVICES")
    if cuda is not None:
        nums = [int(x) for x in cuda.split(",") if x.strip().isdigit()]
        selected = _selected_count(req)
        high = [n for n in nums if selected is not None and n >= selected]
        if high:
            ctx.add(pitfall("env.cuda-visible-devices", "warn", f"CUDA_VISIBLE_DEVICES={cuda} uses host numbering",
                f"Inside the container CUDA numbers the {selected} visible GPU(s) from 0, so ordinal(s) {', '.join(map(str, high))} "
                "select nothing (\"invalid device ordinal\"). Leave CUDA_VISIBLE_DEVICES unset or renumber from 0.", (), req.label))
    runtimes = getattr(ctx.host, "runtimes", None) if ctx.host else None
    if req.runtime and runtimes is not None and req.runtime not in runtimes:
        ctx.add(pitfall(
            "runtime.not-registered", "fail", f"the runtime {req.runtime!r} is not registered with this dockerd",
            f"This daemon reports the runtimes {', '.join(runtimes) or 'none'}; Docker refuses the container at create. "
            "Register it: `sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`.",
            _unknown_runtime_errors(req.runtime), req.label))


def _unknown_runtime_errors(runtime: str) -> tuple[ErrorText, ...]:
    """docker-gpu-internals.md §3: an unregistered runtime is refused at create (both engines' wordings)."""
    return texts.unknown_runtime(runtime, None)


def _selected_count(req: GpuRequest) -> int | None:
    hook = _hook_requests(req)
    if hook:
        d = hook[-1]
        if d.device_ids:
            return len(d.device_ids)
        if _is_int(d.count) and d.count > 0:
            return d.count
        return None
    vd = req.env_value(ENV_NAME)
    if vd is not None:
        p = parse_visible_devices(vd)
        return len(p.tokens) if p.mode == "list" else None
    return None


def _intent_from_visible(ctx: _Ctx, vd: Any) -> Intent:
    if vd.mode == "all":
        return _base_intent(ctx, "all GPUs", "all")
    ids = tuple(t.text for t in vd.tokens if t.form not in ("none", "void", "mig-legacy"))
    if ids:
        return _base_intent(ctx, f"GPU{'s' if len(ids) > 1 else ''} {', '.join(ids)}", "devices", devices=ids)
    return _base_intent(ctx, "all GPUs", "all")


# ----------------------------------------------------------------------------------------------
# Selection


def _tokens_for(dr: DeviceRequest) -> tuple[list[str] | None, str, str | None]:
    """(tokens, general words, NVIDIA_VISIBLE_DEVICES) for a hook-path request (internals §1.4)."""
    if "device_ids" in dr.unknown or ("count" in dr.unknown and not dr.device_ids):
        return None, f"decided at run time (the snippet computes {' and '.join(dr.unknown)})", None
    ids = [str(i) for i in (dr.device_ids or ())]
    if ids and _is_int(dr.count) and dr.count != 0:
        return None, "nothing: the request is refused (Count and DeviceIDs both set)", None
    if ids:
        return ids, f"exactly {', '.join(ids)} (NVIDIA_VISIBLE_DEVICES={','.join(ids)}, passed through unvalidated)", ",".join(ids)
    if not _is_int(dr.count):
        return None, "unknown (the count is not a literal)", None
    if dr.count < 0:
        return ["all"], "all GPUs (NVIDIA_VISIBLE_DEVICES=all)", "all"
    if dr.count > 0:
        idx = [str(i) for i in range(dr.count)]
        what = "the first GPU in NVML order (index 0)" if dr.count == 1 else f"the first {dr.count} GPUs in NVML order (indices 0..{dr.count - 1})"
        return idx, f"{what} (NVIDIA_VISIBLE_DEVICES={','.join(idx)})", ",".join(idx)
    return [], "no GPU on Docker 27.3+ (NVIDIA_VISIBLE_DEVICES=void, or nothing injected on 29.2+); the image's own NVIDIA_VISIBLE_DEVICES before 27.3", None


def _selection(ctx: _Ctx) -> Selection | None:
    req = ctx.req
    if ctx.rejected is not None and not req.device_requests:
        return Selection("nothing: the client refuses the request before it reaches dockerd", () if ctx.host else None)
    hook = _hook_requests(req)
    cdi = [d for d in req.device_requests if d.is_cdi]
    tokens: list[str] | None = []
    parts: list[str] = []
    visible: str | None = None
    if hook:
        tokens, general, visible = _tokens_for(hook[-1])
        parts.append(general + (" — from the last of several requests" if len(hook) > 1 else ""))
    elif (req.runtime == "nvidia" or req.kind == "env") and req.env_value(ENV_NAME) is not None:
        vd = parse_visible_devices(req.env_value(ENV_NAME) or "")
        visible = vd.raw
        if vd.mode == "all":
            tokens, words = ["all"], "all GPUs"
        elif vd.mode == "none":
            tokens, words = [], "no GPU, but the driver libraries are injected (toolkit <= 1.18.1 gave all GPUs)"
        elif vd.mode == "void":
            tokens, words = [], "nothing: the NVIDIA runtime behaves like plain runc"
        else:
            tokens = [t.text for t in vd.tokens]
            words = "exactly " + ", ".join(tokens)
        scope = "" if req.kind == "env" else " through the NVIDIA runtime"
        parts.append(f"{words} ({ENV_NAME}={vd.raw}{scope})")
    elif req.runtime == "nvidia":
        tokens = None
        parts.append("whatever the image's NVIDIA_VISIBLE_DEVICES says (nvidia/cuda images set `all`); nothing if the image sets none")
    for d in cdi:
        names = [str(i) for i in (d.device_ids or ())]
        parts.append(f"the CDI device(s) {', '.join(names)} as the CDI spec defines them")
        if tokens is not None:
            for n in names:
                key = n.partition("=")[2] if classify(n) == "cdi-name" else n
                tokens.append(key)
    if not parts:
        parts.append("no GPU")
    on_host: tuple[str, ...] | None = None
    if ctx.host is not None and tokens is not None:
        labels: list[str] = []
        for t in tokens:
            if t in ("none", "void"):
                continue
            found, gpu = resolve_token(t, ctx.host)
            if not found and t != "all":
                _unknown_device(ctx, t, hook)
            if gpu is not None and gpu.mig_enabled:
                ctx.add(pitfall("host.mig-whole-gpu", "warn", f"GPU {gpu.index} is in MIG mode: asking for the whole GPU gives no MIG instance",
                    "With MIG enabled, CUDA work runs on MIG devices; request them by MIG-<uuid> or <gpu>:<mig> (see `nvidia-smi -L`).",
                    (), gpu.label))
            labels += [x for x in found if x not in labels]
        on_host = tuple(labels)
        if not ctx.host.gpus and tokens:
            ctx.add(pitfall("host.count-exceeds-gpus", "fail", "NVML sees no GPU on this host", "There is nothing to select.", (), None))
    return Selection("; ".join(parts), on_host, visible)


def _unknown_device(ctx: _Ctx, token: str, hook: list[DeviceRequest]) -> None:
    host = ctx.host
    assert host is not None
    have = ", ".join(f"{g.index}" + (f" ({g.uuid})" if g.uuid else "") for g in host.gpus) or "none"
    from_count = bool(hook) and not hook[-1].device_ids and _is_int(hook[-1].count) and hook[-1].count > 0
    if from_count:
        ctx.add(pitfall("host.count-exceeds-gpus", "fail", f"count {hook[-1].count} is more than the {len(host.gpus)} GPU(s) on this host",
            f"Count N becomes indices 0..N-1; index {token} does not exist here (GPUs: {have}).",
            (ErrorText(f"nvidia-container-cli: device error: {token}: unknown device", HOOK),
             ErrorText(f"CDI device injection failed: unresolvable CDI devices nvidia.com/gpu={token}", DAEMON_START, "29.2+ via nvidia-cdi-hook")),
            f"--gpus count {hook[-1].count}"))
        return
    form = classify(token)
    pid = "request.mig-legacy-name" if form == "mig-legacy" else "host.unknown-device"
    if pid == "request.mig-legacy-name" and ctx.has(pid):
        return
    ctx.add(pitfall(pid, "fail", f"`{token}` is not a GPU on this host",
        f"NVML on this host lists GPUs: {have}. Indices are NVML (nvidia-smi) indices, not /dev/nvidiaN minors or CUDA ordinals.",
        (ErrorText(f"nvidia-container-cli: device error: {token}: unknown device", HOOK),
         ErrorText(f"CDI device injection failed: unresolvable CDI devices nvidia.com/gpu={token}", DAEMON_START, "CDI path")),
        token))


# ----------------------------------------------------------------------------------------------
# Meaning and requirements


def _describe(ctx: _Ctx) -> None:
    req = ctx.req
    lines = ctx.meaning
    intro: list[str] = []
    for d in req.device_requests:
        api = d.to_api()
        if d.is_cdi:
            intro.append(f"A CDI request (Driver \"cdi\") for {', '.join(map(str, d.device_ids or ()))}: dockerd edits the container from the CDI spec files itself.")
            continue
        how = f"the device driver named {d.driver!r}" if d.driver else "whichever registered device driver matches the capabilities (the NVIDIA one, registered when dockerd found nvidia-container-runtime-hook)"
        intro.append(f"A DeviceRequest (Count {json.dumps(api['Count'], default=repr)}, DeviceIDs {json.dumps(api['DeviceIDs'], default=repr)}, "
                     f"Capabilities {json.dumps(api['Capabilities'], default=repr)}) handled by {how}.")
        matched = next((c for c in (d.capabilities or ()) if isinstance(c, tuple) and set(c) <= NVIDIA_CAPSET), None)
        if matched:
            nv = [c for c in matched if c in NVIDIA_DRIVER_CAPS]
            if nv:
                intro.append(f"It sets NVIDIA_DRIVER_CAPABILITIES={','.join(nv)}.")
            else:
                intro.append("It sets no NVIDIA_DRIVER_CAPABILITIES: the image's value or the toolkit's default applies.")
        if d.unknown:
            intro.append(f"Decided at run time, so not judged here: {', '.join(d.unknown)}.")
    if req.runtime:
        intro.append(f"Runs the container with the {req.runtime!r} runtime (HostConfig.Runtime; it must be registered in daemon.json).")
        if req.hints.get("wrapper") == "nvidia-docker":
            intro.append("nvidia-docker (v2) is a wrapper that adds --runtime=nvidia.")
    if req.hints.get("env_files"):
        intro.append(f"Also reads --env-file {', '.join(req.hints['env_files'])} (not read here; NVIDIA_* variables there count too).")
    if req.kind == "env":
        vd = parse_visible_devices(req.env_value(ENV_NAME) or "")
        intro.append(f"{ENV_NAME} is read only by the NVIDIA runtime / prestart hook; with --gpus, Docker's own value wins; under plain runc it does nothing.")
        for t in vd.tokens:
            intro.append(f"`{t.text}`: {_FORM_WORDS.get(t.form, 'not a form the toolkit knows')}.")
    lines[:0] = intro


_FORM_WORDS = {
    "all": "every GPU (wins over anything else in the list)",
    "none": "no GPU, driver libraries still injected (toolkit <= 1.18.1: all GPUs)",
    "void": "nothing at all, as under plain runc",
    "index": "a GPU by NVML (nvidia-smi) index",
    "gpu-uuid": "a GPU by UUID",
    "mig-uuid": "a MIG device by its UUID",
    "mig-index": "a MIG device as <gpu index>:<mig index>",
    "pci": "a GPU by PCI bus id",
    "mig-legacy": "the pre-R470 MIG name, no longer accepted",
    "cdi-name": "a CDI name: not a value NVIDIA_VISIBLE_DEVICES accepts outside CDI mode",
    "uuid-prefix": "a truncated or malformed UUID",
}


def _requirements(req: GpuRequest) -> list[Requirement]:
    out: list[Requirement] = []
    hook = _hook_requests(req)
    cdi = [d for d in req.device_requests if d.is_cdi]
    if hook:
        d = hook[-1]
        caps = d.capabilities if d.capabilities is not None else ()
        out.append(Requirement(
            "dockerd must have the NVIDIA device driver: nvidia-container-runtime-hook (29.2+: or nvidia-cdi-hook) on "
            "dockerd's own PATH when dockerd started (restart dockerd after installing the toolkit)",
            (ErrorText(could_not_select(d.driver, caps), DAEMON_START),
             ErrorText("failed to discover GPU vendor from CDI: no known GPU vendor found", DAEMON_START, "29.3+ with CDI on"))))
        if req.runtime != "nvidia":
            out.append(Requirement(
                "with the toolkit in `cdi`/`jit-cdi` mode, a GPU DeviceRequest (--gpus) also needs the nvidia runtime (--runtime=nvidia)",
                (ErrorText(E_HOOK_CDI_MODE, "the NVIDIA hook (container start)", "toolkit mode cdi (seen on Docker 20.10)"),)))
    if req.kind in ("gpus", "cmdline") and req.hints.get("gpus_values"):
        out.append(Requirement(
            "docker CLI 19.03+ talking to API 1.40+",
            (ErrorText("unknown flag: --gpus", "docker CLI", "< 19.03"),
             ErrorText('"--gpus" requires API version 1.40, but the Docker daemon API version is 1.39', "docker CLI"))))
    if req.kind == "sdk" and req.device_requests:
        out.append(Requirement(
            "docker-py 4.3+ and API 1.40+",
            (ErrorText("device_requests param is not supported in API versions < 1.40", "docker-py (InvalidVersion)"),)))
    if req.runtime:
        out.append(Requirement(
            f"the {req.runtime!r} runtime registered in this daemon's daemon.json (sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker)",
            _unknown_runtime_errors(req.runtime)))
    if cdi:
        names = ", ".join(str(i) for d in cdi for i in (d.device_ids or ()))
        out.append(Requirement(
            "Docker 25.0+ with CDI enabled (default since 28.2; before: \"features\": {\"cdi\": true}) and an NVIDIA CDI spec "
            "(sudo nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml)",
            (ErrorText('could not select device driver "cdi" with capabilities: []', DAEMON_START, "CDI disabled / < 25.0"),
             ErrorText(f"CDI device injection failed: unresolvable CDI devices {names}", DAEMON_START, "no matching spec"))))
    if req.kind == "compose" and req.device_requests:
        out.append(Requirement("Compose v2 (or docker-compose 1.28+): older docker-compose ignores deploy.resources.reservations"))
    return out


def _default_intents(ctx: _Ctx) -> list[Intent]:
    """No pitfall asked for a different request: spell the request itself in every dialect."""
    req = ctx.req
    hook = _hook_requests(req)
    cdi = [d for d in req.device_requests if d.is_cdi]
    if hook:
        return [_intent_like(ctx, hook[-1])]
    if cdi:
        names = tuple(str(i) for d in cdi for i in (d.device_ids or ()))
        return [_base_intent(ctx, f"the CDI device(s) {', '.join(names)}", "cdi", devices=names)]
    vd = req.env_value(ENV_NAME)
    if vd is not None:
        p = parse_visible_devices(vd)
        intents = [_intent_from_visible(ctx, p)]
        if req.runtime == "nvidia":  # a working env-style request: spell it as it is first
            intents.insert(0, _base_intent(ctx, f"the same request ({ENV_NAME}={vd} through the nvidia runtime)", "env", env=req.env))
        elif req.kind == "env":
            intents.append(_base_intent(ctx, f"the same through the NVIDIA runtime ({ENV_NAME}={vd})", "env", runtime="nvidia", env=((ENV_NAME, vd),)))
        return intents
    return [_base_intent(ctx, "all GPUs", "all")]
