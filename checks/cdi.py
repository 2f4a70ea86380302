"""Checks of the CDI layer: specs parse, name every GPU, and match the running driver and devices.

Rules: docs/failure-modes.md #25–#27; docs/docker-gpu-internals.md §2.
"""

from __future__ import annotations

from typing import Any

from ..checking import Check, check
from ..facts.cdi import CdiFacts
from ..facts.docker import DockerFacts
from ..facts.nvml import NvmlFacts
from ..facts.toolkit import ToolkitFacts
from ..gpu_requests.stack import stack_from_facts
from ..links import TOOLKIT_CDI
from ..model import Fix, Layer, Result, failed, passed, skipped, warned

GENERATE = "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"
GENERATE_BOTH_NAMES = (
    "sudo nvidia-ctk cdi generate --device-name-strategy=index --device-name-strategy=uuid "
    "--output=/etc/cdi/nvidia.yaml"
)
LIST = "nvidia-ctk cdi list"


def _generate_at(path: str | None) -> str:
    return f"sudo nvidia-ctk cdi generate --output={path}" if path else GENERATE


@check("cdi.specs", "CDI specs parse and an NVIDIA spec exists where it is needed", layer=Layer.CDI,
       needs=("cdi", "toolkit", "docker"))
def specs(cdi: CdiFacts, toolkit: ToolkitFacts, docker: DockerFacts) -> list[Result]:
    """Every spec in /etc/cdi, /var/run/cdi (and the daemon's spec dirs) parses, and an `nvidia.com/gpu`
    spec exists when the toolkit mode or the daemon relies on CDI.

    Why: a spec that does not parse is skipped by the CDI registry (Docker 28.2+ warns
    `CDI: Error associated with spec file …`); with no NVIDIA spec, CDI requests and the toolkit's `cdi` mode
    fail with `unresolvable CDI devices nvidia.com/gpu=all` (failure mode `cdi-spec-missing-or-unreadable`).

    Fix: `sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml` (toolkit ≥ 1.18:
    `sudo systemctl enable --now nvidia-cdi-refresh.path`).
    """
    results: list[Result] = []
    for spec in cdi.bad_specs:
        results.append(failed(
            f"{spec.path}: {spec.error}",
            Fix("Regenerate the spec (or remove the broken file).",
                (f"sudo mv {spec.path} {spec.path}.broken", _generate_at(spec.path if spec.path.endswith(".yaml") else None)),
                TOOLKIT_CDI),
            subject=spec.path,
            evidence={"path": spec.path, "format": spec.format, "failure_mode": "cdi-spec-missing-or-unreadable"},
        ))
    for d, err in cdi.dir_errors.items():
        results.append(warned(f"cannot read CDI dir {d}: {err}", subject=d,
                              fix=Fix("Make the spec dir readable.", (f"sudo chmod 755 {d}",), TOOLKIT_CDI)))
    seen: dict[str, str] = {}
    for spec in cdi.nvidia_specs:
        for name in spec.qualified_names:
            if name in seen and seen[name] != spec.path:
                results.append(warned(
                    f"{name} is defined in both {seen[name]} and {spec.path}: one of them is probably stale",
                    fix=Fix("Keep one NVIDIA spec.", (f"sudo rm {seen[name]}", LIST), TOOLKIT_CDI),
                    evidence={"device": name},
                ))
                break
            seen.setdefault(name, spec.path)
    if cdi.nvidia_specs:
        if not results:
            listing = "; ".join(f"{s.path} ({len(s.devices)} devices)" for s in cdi.nvidia_specs)
            results.append(passed(f"NVIDIA CDI spec: {listing}",
                                  evidence={"specs": [s.path for s in cdi.nvidia_specs]}))
        return results
    ev = {"dirs": list(cdi.dirs), "failure_mode": "cdi-spec-missing-or-unreadable"}
    needed_by = None
    if toolkit.installed and toolkit.mode == "cdi":
        needed_by = "the toolkit runs in mode cdi"
    elif docker.reachable and docker.cdi_enabled and toolkit.installed:
        needed_by = f"Docker {docker.server_version} has CDI on"
    if needed_by:
        # The runtime in cdi mode serves every request from the spec: nothing works without one. A daemon with
        # CDI on only needs it for CDI names; `--gpus` falls back to the legacy hook (real stack, Docker 29.7), so
        # that is a warning, made a failure when a CDI probe fails for it (engine.promote_explained).
        judge = failed if needed_by.startswith("the toolkit") else (
            lambda summary, fix, **kw: warned(summary, fix=fix, **kw))
        results.append(judge(
            f"no nvidia.com/gpu CDI spec in {', '.join(cdi.dirs)}, but {needed_by}: "
            "CDI requests fail with 'unresolvable CDI devices nvidia.com/gpu=all'",
            Fix("Generate the NVIDIA CDI spec.", (GENERATE, LIST), TOOLKIT_CDI),
            evidence=ev,
        ))
    elif not results:
        results.append(skipped(f"no NVIDIA CDI spec in {', '.join(cdi.dirs)}; nothing here relies on CDI", evidence=ev))
    return results


def _spec_names(cdi: CdiFacts) -> set[str]:
    return set(cdi.nvidia_device_names)


@check("cdi.devices", "The NVIDIA CDI spec names every GPU by index and UUID", layer=Layer.CDI,
       needs=("cdi", "nvml", "toolkit"), after=("cdi.specs", "cdi.stale"))
def devices(cdi: CdiFacts, nvml: NvmlFacts, toolkit: ToolkitFacts) -> list[Result]:
    """Every GPU NVML sees is in the spec as `nvidia.com/gpu=<index>` and `=<UUID>`, `all` exists, and each MIG
    device (when MIG is on) has a name.

    Why: requests name GPUs by index or UUID; a name the spec lacks fails with
    `unresolvable CDI devices nvidia.com/gpu=GPU-…` (specs generated with the index strategy only, a spec from
    before a GPU was added, `--no-all-device`) (failure modes `cdi-spec-missing-or-unreadable`,
    `mig-device-naming`).

    Fix: `sudo nvidia-ctk cdi generate --device-name-strategy=index --device-name-strategy=uuid
    --output=/etc/cdi/nvidia.yaml`.
    """
    if not cdi.nvidia_specs:
        return [skipped("no NVIDIA CDI spec to compare")]
    if not nvml.ok or not nvml.gpus:
        why = nvml.init_error.message if nvml.init_error else "NVML lists no GPUs"
        return [skipped(f"cannot compare the spec with the GPUs: {why}")]
    names = _spec_names(cdi)
    results: list[Result] = []
    fix_regen = Fix("Regenerate the spec with index and UUID names.", (GENERATE_BOTH_NAMES, LIST), TOOLKIT_CDI)
    if "all" not in names:
        results.append(failed("the NVIDIA CDI spec has no `all` device: nvidia.com/gpu=all is unresolvable", fix_regen,
                              evidence={"names": sorted(names)}))
    for gpu in nvml.gpus:
        missing = []
        if str(gpu.index) not in names:
            missing.append(f"nvidia.com/gpu={gpu.index}")
        uuid_missing = bool(gpu.uuid and gpu.uuid not in names)
        if missing:
            results.append(failed(f"{gpu.label} is not in the CDI spec by index ({', '.join(missing)})", fix_regen,
                                  subject=gpu.label, evidence={"names": sorted(names)}))
        elif uuid_missing and toolkit.installed and toolkit.mode == "cdi":
            # In cdi mode every request resolves through this spec, `--gpus device=GPU-…` and
            # NVIDIA_VISIBLE_DEVICES=GPU-… included: a missing UUID name breaks them, not just CDI users.
            results.append(failed(
                f"{gpu.label} has no UUID name in the CDI spec and the toolkit is in cdi mode: every request by "
                f"UUID (--gpus device={gpu.uuid}, NVIDIA_VISIBLE_DEVICES={gpu.uuid}) fails as unresolvable",
                fix_regen, subject=gpu.label, evidence={"names": sorted(names), "mode": toolkit.mode},
            ))
        elif uuid_missing:
            results.append(warned(
                f"{gpu.label} has no UUID name in the CDI spec: nvidia.com/gpu={gpu.uuid} is unresolvable",
                fix=fix_regen, subject=gpu.label, evidence={"names": sorted(names)},
            ))
        if gpu.mig_current == 1:
            for mig in gpu.mig_devices:
                if f"{gpu.index}:{mig.index}" not in names and (not mig.uuid or mig.uuid not in names):
                    results.append(failed(
                        f"MIG device {gpu.index}:{mig.index} ({mig.uuid}) of {gpu.label} is not in the CDI spec",
                        Fix("Regenerate the spec after every MIG change.", (GENERATE_BOTH_NAMES, LIST), TOOLKIT_CDI),
                        subject=gpu.label, evidence={"failure_mode": "mig-device-naming"},
                    ))
    if not results:
        results.append(passed(f"every GPU ({len(nvml.gpus)}) is in the spec by index and UUID, plus `all`",
                              evidence={"names": sorted(names)}))
    return results


@check("cdi.stale", "The NVIDIA CDI spec matches the running driver and devices", layer=Layer.CDI,
       needs=("cdi", "nvml", "docker", "toolkit"), after=("cdi.specs",))
def stale(cdi: CdiFacts, nvml: NvmlFacts, docker: Any = None, toolkit: ToolkitFacts | None = None) -> list[Result]:
    """The spec's library versions equal the running driver's, every path it names exists, and every GPU UUID
    it names is on this host.

    Why: a spec is a snapshot; after a driver upgrade, GPU swap or MIG change it mounts files that no longer
    exist or devices that are gone, and containers fail at start (`failed to stat CDI host device`, runc mount
    errors naming the old library) (failure mode `cdi-spec-stale`).

    Fix: `sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml` after every driver or MIG change
    (toolkit ≥ 1.18: `sudo systemctl enable --now nvidia-cdi-refresh.path`).
    """
    if not cdi.nvidia_specs:
        return [skipped("no NVIDIA CDI spec")]
    results: list[Result] = []
    # Nothing reads the spec on this stack (an engine without CDI, the toolkit not in cdi mode): a latent problem,
    # not a broken path (real stack, Docker 20.10 in legacy mode: every form works beside a stale spec).
    in_use = docker is None or stack_from_facts(docker, None, toolkit, cdi).spec_in_use
    judge = failed if in_use else (lambda summary, fix, **kw: warned(summary + " (nothing on this stack reads it yet)", fix=fix, **kw))
    host_uuids = {g.uuid for g in nvml.gpus if g.uuid} | {m.uuid for g in nvml.gpus for m in g.mig_devices if m.uuid}
    driver = nvml.driver_version if nvml.ok else None
    for spec in cdi.nvidia_specs:
        problems = []
        if driver and spec.driver_versions and driver not in spec.driver_versions:
            problems.append(f"generated for driver {', '.join(spec.driver_versions)}, running driver is {driver}")
        if spec.missing:
            shown = ", ".join(spec.missing[:5]) + (f" (+{len(spec.missing) - 5} more)" if len(spec.missing) > 5 else "")
            problems.append(f"{len(spec.missing)} referenced paths do not exist: {shown}")
        if nvml.ok and nvml.gpus:
            foreign = [n for n in spec.device_names if (n.startswith("GPU-") or n.startswith("MIG-")) and n not in host_uuids]
            if foreign:
                problems.append(f"names GPUs this host does not have: {', '.join(foreign[:4])}")
        if problems:
            results.append(judge(
                f"{spec.path} is stale: " + "; ".join(problems),
                Fix("Regenerate the spec for the running driver and GPUs.",
                    (_generate_at(spec.path if spec.path.endswith(".yaml") else None), LIST), TOOLKIT_CDI),
                subject=spec.path,
                details=list(spec.missing[:50]),
                evidence={"path": spec.path, "driver_versions": list(spec.driver_versions), "driver": driver,
                          "missing": list(spec.missing[:200]), "failure_mode": "cdi-spec-stale"},
            ))
    if not results:
        what = f"driver {driver}" if driver else "paths"
        results.append(passed(f"the NVIDIA CDI spec matches this host ({what})"))
    return results


# stale before devices: a spec for another driver or GPU layout must be regenerated anyway, and
# that also fixes its names — one red line for one cause.
CHECKS: tuple[Check, ...] = (specs, stale, devices)
