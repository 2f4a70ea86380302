"""Checks of the NVIDIA Container Toolkit layer: installed, versions, config.toml, mode.

Rules: docs/failure-modes.md §5 (#17–#24), #28, #42; toolkit sources cited per check.
"""

from __future__ import annotations

from typing import Any

from ..checking import Check, check
from ..facts.docker import DockerFacts, version_tuple
from ..facts.platform import PlatformFacts
from ..facts.toolkit import ToolkitFacts
from ..install import toolkit_install, toolkit_package_query, toolkit_upgrade, where
from ..links import TOOLKIT_DOCS, TOOLKIT_INSTALL, TOOLKIT_TROUBLESHOOTING
from ..model import Fix, Layer, Result, failed, passed, warned
from ..gpu_requests.stack import HOOK_REFUSING_MODES
from .docker import HOOK_REFUSAL, configure_commands, gpus_all_here

RELEASE_NOTES = f"{TOOLKIT_DOCS}/release-notes.html"
CONFIG_DOC = f"{TOOLKIT_INSTALL}#configuration"

# The install guide's path for the host's distro family (gpudoctor/install.py), then Docker's registration.
REGISTER = ("sudo nvidia-ctk runtime configure --runtime=docker", "sudo systemctl restart docker")


# Releases with known regressions (failure-modes #24; toolkit CHANGELOG / release notes).
KNOWN_BAD = {
    "1.8.0": "cgroup v2 regression: 'unable to create cgroupv0 interface' (fixed in 1.8.1)",
    "1.17.7": "missing libnvidia-ml.so.1 symlink in containers (toolkit #1099)",
    "1.18.0": "rootless regression (bpf_prog_query, toolkit #1487) and jit-cdi default breaking some images (#1456)",
    "1.18.1": "NVIDIA_VISIBLE_DEVICES=none exposed every GPU; legacy mode failed with the graphics capability (fixed 1.18.2)",
    "1.19.1": "cuInit CUDA_ERROR_UNKNOWN on Maxwell GPUs (toolkit #1967)",
}
KNOWN_MODES = ("auto", "legacy", "cdi", "jit-cdi", "csv")


def _distro(platform: PlatformFacts | None) -> Any:
    """The host's distro for install commands; None (apt steps, said so) where the platform fact is not given."""
    return platform.distro if platform is not None else None


@check("toolkit.installed", "The NVIDIA Container Toolkit is installed", layer=Layer.TOOLKIT,
       needs=("toolkit", "platform"))
def installed(toolkit: ToolkitFacts, platform: PlatformFacts | None = None) -> Result:
    """The toolkit's runtime hook or runtime (`nvidia-container-runtime-hook`, `nvidia-container-runtime`) is
    installed.

    Why: without it Docker has no way to put a GPU into a container: `--gpus` fails with
    `could not select device driver "" with capabilities: [[gpu]]` and `--runtime=nvidia` with
    `Unknown runtime specified nvidia` (failure modes `no-gpu-device-driver-in-dockerd`, `runtime-not-registered`).

    Fix: add NVIDIA's repository and install `nvidia-container-toolkit` with the distro's package manager
    (apt, dnf, zypper: the install guide), `sudo nvidia-ctk runtime configure --runtime=docker`,
    `sudo systemctl restart docker`.
    """
    present = [b.name for b in toolkit.binaries if b.present]
    ev = {"present": present, "failure_mode": "no-gpu-device-driver-in-dockerd"}
    if not toolkit.has("nvidia-container-runtime-hook") and not toolkit.has("nvidia-container-runtime"):
        what = (
            "NVIDIA Container Toolkit is not installed (no nvidia-container-runtime-hook, nvidia-container-runtime "
            "or nvidia-ctk on this host)"
            if not present
            else f"NVIDIA Container Toolkit is incomplete: only {', '.join(present)}; no runtime hook or runtime"
        )
        return failed(
            what,
            Fix(f"Install the NVIDIA Container Toolkit from NVIDIA's repository and register it with Docker "
                f"{where(_distro(platform))}.", (*toolkit_install(_distro(platform)), *REGISTER), TOOLKIT_INSTALL),
            evidence=ev,
        )
    versions = toolkit.versions
    v = versions.get("nvidia-ctk") or next(iter(versions.values()), None)
    return passed(f"NVIDIA Container Toolkit {v or '(version unknown)'}: {', '.join(present)}", evidence=ev)


@check(
    "toolkit.versions",
    "The toolkit's components are at one version, not a known-bad one",
    layer=Layer.TOOLKIT,
    needs=("toolkit", "platform"),
    after=("toolkit.installed",),
)
def versions(toolkit: ToolkitFacts, platform: PlatformFacts | None = None) -> list[Result]:
    """Every installed toolkit binary reports the same version, and it is not a release with a known regression.

    Why: the packages (`nvidia-container-toolkit`, `-base`, `libnvidia-container-tools`, `libnvidia-container1`)
    must match exactly since 1.18.0; mixes fail oddly (`No help topic for 'config'`, detection errors)
    (failure modes `toolkit-package-version-skew`, `known-bad-toolkit-release`).

    Fix: install all packages at one version from NVIDIA's repository (apt, dnf or zypper, per the install guide).
    """
    results: list[Result] = []
    found = toolkit.versions
    unreadable = [b for b in toolkit.binaries if b.present and b.error]
    for b in unreadable:
        results.append(warned(f"{b.name} ({b.path}) did not report a version: {b.error}",
                              evidence={"output": b.output}, subject=b.name))
    bases = {name: ".".join(str(x) for x in (version_tuple(v) or ())[:3]) for name, v in found.items()}
    if len(set(bases.values())) > 1:
        listing = ", ".join(f"{n} {v}" for n, v in sorted(found.items()))
        results.append(warned(
            f"toolkit components at different versions: {listing}",
            fix=Fix(f"Upgrade all toolkit packages together {where(_distro(platform))}.",
                    (*toolkit_upgrade(_distro(platform)), toolkit_package_query(_distro(platform))), TOOLKIT_INSTALL),
            evidence={"versions": found, "failure_mode": "toolkit-package-version-skew"},
        ))
    for name, base in bases.items():
        if base in KNOWN_BAD:
            results.append(warned(
                f"{name} {found[name]} is a release with a known regression: {KNOWN_BAD[base]}",
                fix=Fix(f"Upgrade to a fixed release {where(_distro(platform))}.", toolkit_upgrade(_distro(platform)),
                        RELEASE_NOTES),
                evidence={"version": found[name], "failure_mode": "known-bad-toolkit-release"},
                subject=name,
            ))
            break
    if not results:
        results.append(passed("versions: " + ", ".join(f"{n} {v}" for n, v in sorted(found.items())),
                              evidence={"versions": found}))
    return results


@check(
    "toolkit.config",
    "config.toml parses and its ldconfig path exists",
    layer=Layer.TOOLKIT,
    needs=("toolkit",),
    after=("toolkit.installed",),
)
def config(toolkit: ToolkitFacts) -> list[Result]:
    """`/etc/nvidia-container-runtime/config.toml` parses; `ldconfig` is `@<host path>` and that path exists;
    `supported-driver-capabilities` keeps compute and utility.

    Why: a broken config makes every runtime/hook call fail; a wrong ldconfig gives
    `nvidia-container-cli: ldcache error: open failed: /sbin/ldconfig.real: no such file or directory` or, since
    1.17.3, `... ldconfig value "/usr/sbin/ldconfig" is not host-relative (does not start with a '@')`
    (failure mode `ldconfig-path-wrong`).

    Fix: `sudo nvidia-ctk config --in-place --set nvidia-container-cli.ldconfig=@/sbin/ldconfig.real`
    (Debian/Ubuntu; `@/sbin/ldconfig` elsewhere).
    """
    path = toolkit.config_path
    if toolkit.config_error:
        return [failed(
            f"{path}: {toolkit.config_error}",
            Fix("Rewrite the config from the toolkit's defaults (keep a copy of the old one).",
                (f"sudo cp {path} {path}.bak", f"nvidia-ctk config default | sudo tee {path}"), CONFIG_DOC),
        )]
    if not toolkit.config_exists:
        return [passed(f"no {path}: the toolkit uses its built-in defaults")]
    if toolkit.config_problems:  # wrong value types: the toolkit's config loader fails (facts/toolkit.py CONFIG_TYPES)
        return [failed(
            f"{path}: " + "; ".join(toolkit.config_problems) + " (the toolkit cannot load this file, so every "
            "container start through it fails)",
            Fix("Give each key the type the toolkit expects, then check that the toolkit loads the file.",
                (f"sudoedit {path}", "nvidia-ctk config"), CONFIG_DOC),
            evidence={"problems": list(toolkit.config_problems)},
        )]
    results: list[Result] = []
    ld = toolkit.ldconfig
    ev = {"ldconfig": ld, "failure_mode": "ldconfig-path-wrong"}
    ctk_v = version_tuple(toolkit.versions.get("nvidia-ctk") or toolkit.versions.get("nvidia-container-runtime"))
    if ld and not ld.startswith("@") and (ctk_v is None or ctk_v >= (1, 17, 3)):
        results.append(failed(
            f'ldconfig = "{ld}" is not host-relative (toolkit ≥ 1.17.3 requires a leading @)',
            Fix("Point ldconfig at the host's binary with an @.",
                (f"sudo nvidia-ctk config --in-place --set nvidia-container-cli.ldconfig=@{ld}",), TOOLKIT_TROUBLESHOOTING),
            evidence=ev,
        ))
    elif ld and toolkit.ldconfig_exists is False:
        alt = "@/sbin/ldconfig" if ld.endswith(".real") else "@/sbin/ldconfig.real"
        results.append(failed(
            f'ldconfig = "{ld}" but {ld.lstrip("@")} does not exist on this host',
            Fix("Set the host's real ldconfig.",
                ("ls -l /sbin/ldconfig*", f"sudo nvidia-ctk config --in-place --set nvidia-container-cli.ldconfig={alt}"),
                TOOLKIT_TROUBLESHOOTING),
            evidence=ev,
        ))
    caps = toolkit.supported_driver_capabilities
    if caps is not None and not {"compute", "utility"} <= set(caps):
        lacking = sorted({"compute", "utility"} - set(caps))
        results.append(warned(
            f"supported-driver-capabilities lacks {', '.join(lacking)}: CUDA / nvidia-smi will not be injected",
            fix=Fix("Restore the default capability list.",
                    ('sudo nvidia-ctk config --in-place --set supported-driver-capabilities='
                     '"compat32,compute,display,graphics,ngx,utility,video"',), CONFIG_DOC),
            evidence={"supported_driver_capabilities": list(caps), "failure_mode": "driver-capabilities-wrong"},
        ))
    if not results:
        results.append(passed(f"{path} parses (mode {toolkit.mode}, ldconfig {ld or 'default'})"))
    return results


@check(
    "toolkit.mode",
    "The toolkit's mode works with how Docker will call it",
    layer=Layer.TOOLKIT,
    needs=("toolkit", "docker", "dockerd_process", "cdi", "platform"),
    after=("toolkit.installed",),
)
def mode(toolkit: ToolkitFacts, docker: DockerFacts, dockerd_process: Any = None, cdi: Any = None,
         platform: PlatformFacts | None = None) -> Result:
    """`nvidia-container-runtime.mode` is known, has the binaries it needs, and fits the daemon's default
    runtime.

    Why: the runtime hook (what `--gpus` runs on Docker < 29.2) works only in legacy mode; with mode `cdi`,
    `jit-cdi` or `csv` and a default runtime other than `nvidia`, every `--gpus` request without
    `--runtime=nvidia` fails with "invoking the NVIDIA Container Runtime Hook directly (e.g. specifying the
    docker --gpus flag) is not supported" (seen on the real H100 host; failure mode `tegra-csv-mode`).
    Legacy mode needs `nvidia-container-cli`.

    Fix: `sudo nvidia-ctk config --in-place --set nvidia-container-runtime.mode=auto`, or make `nvidia` the
    default runtime: `sudo nvidia-ctk runtime configure --runtime=docker --set-as-default && sudo systemctl restart docker`.
    """
    m = toolkit.mode
    ev = {"mode": m, "default_runtime": docker.default_runtime if docker.reachable else None}
    if m not in KNOWN_MODES:
        return failed(
            f'unknown nvidia-container-runtime.mode "{m}" (known: {", ".join(KNOWN_MODES)})',
            Fix("Reset the mode to auto.", ("sudo nvidia-ctk config --in-place --set nvidia-container-runtime.mode=auto",),
                CONFIG_DOC),
            evidence=ev,
        )
    if m == "legacy" and not toolkit.has("nvidia-container-cli"):
        return failed(
            "mode legacy but nvidia-container-cli (libnvidia-container-tools) is not installed: the hook cannot "
            "configure containers",
            Fix(f"Install the toolkit's packages together {where(_distro(platform))}.",
                toolkit_install(_distro(platform),
                                ("nvidia-container-toolkit", "libnvidia-container-tools")), TOOLKIT_INSTALL),
            evidence=ev,
        )
    if m in HOOK_REFUSING_MODES:
        # Judged by what this stack does with plain --gpus (the behaviour model), not by restated engine rules.
        here = gpus_all_here(docker, toolkit, dockerd_process, cdi) if docker.reachable else None
        if here is not None and here.blame != "toolkit.mode":
            if here.refused:
                how = f"`--gpus` would be served through CDI, but {here.why} (see {here.blame})"
            elif here.path == "dockerd-cdi":
                how = f"Docker {docker.server_version} serves `--gpus` through CDI"
            else:
                how = "`--gpus` goes through the NVIDIA runtime"
            return passed(f"mode {m}: {how}", evidence={**ev, "gpus_path": list(here.via or (here.path,))})
        default = docker.default_runtime if docker.reachable else "unknown (daemon not reachable)"
        return failed(
            f"mode {m} with default runtime {default}: `--gpus` without `--runtime=nvidia` fails ({HOOK_REFUSAL})",
            Fix(
                "Either let the hook run in auto mode, or make nvidia the default runtime (then plain `--gpus` works).",
                ("sudo nvidia-ctk config --in-place --set nvidia-container-runtime.mode=auto",
                 *configure_commands(docker if docker.reachable else None, None, "--set-as-default")),
                TOOLKIT_TROUBLESHOOTING,
            ),
            evidence={**ev, "failure_mode": "tegra-csv-mode"},
        )
    return passed(f"mode {m}", evidence=ev)


CHECKS: tuple[Check, ...] = (installed, versions, config, mode)
