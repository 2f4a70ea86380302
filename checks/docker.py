"""Checks of the Docker daemon layer: reachable, which engine, API version, runtimes, daemon.json,
the `--gpus` device driver, cgroups, rootless/security options, CDI.

Rules come from docs/docker-gpu-internals.md (moby source, cited per section) and
docs/failure-modes.md (failure-mode names in each result's evidence).
"""

from __future__ import annotations

from typing import Any

from ..checking import Check, check
from ..facts.cdi import CdiFacts
from ..facts.daemon_config import DaemonConfig
from ..facts.docker import SLOW_ANSWER_S, DockerFacts, version_tuple
from ..facts.devices import DeviceFacts
from ..facts.dockerd_process import DockerdProcess
from ..facts.probes import ProbeFacts
from ..facts.toolkit import ToolkitFacts
from ..facts.platform import PlatformFacts
from ..install import Distro, toolkit_install, toolkit_reinstall
from ..links import TOOLKIT_CDI, TOOLKIT_INSTALL, TOOLKIT_TROUBLESHOOTING
from ..model import Fix, Layer, Result, failed, passed, skipped, warned
from ..gpu_requests.behaviour import GPUS_ALL, LEGACY_HOOK, Prediction, predict
from ..gpu_requests.stack import HOOK_REFUSING_MODES, RUNC_NAMES, START_SLACK_S, in_spec_dirs, stack_from_facts
from ..gpu_requests.texts import DEFAULT_RUNTIME_MISSING, HOOK_REFUSAL  # noqa: F401 (HOOK_REFUSAL: checks/toolkit.py's)

TOOLKIT_DOCKER_DOC = f"{TOOLKIT_INSTALL}#configuring-docker"
TOOLKIT_ROOTLESS_DOC = f"{TOOLKIT_INSTALL}#rootless-mode"
DOCKER_POSTINSTALL_DOC = "https://docs.docker.com/engine/install/linux-postinstall/"
DOCKER_INSTALL_DOC = "https://docs.docker.com/engine/install/"
DOCKER_DAEMON_DOC = "https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file"
DOCKER_CDI_DOC = "https://docs.docker.com/reference/cli/dockerd/#enable-cdi-devices"
DOCKER_CONTEXT_DOC = "https://docs.docker.com/engine/manage-resources/contexts/"
DOCKER_ROOTLESS_DOC = "https://docs.docker.com/engine/security/rootless/"
DESKTOP_ISSUE = "https://github.com/NVIDIA/nvidia-container-toolkit/issues/175"
SNAP_DOC = "https://github.com/canonical/docker-snap"
PODMAN_CDI_DOC = f"{TOOLKIT_CDI}#running-a-workload-with-cdi"
SELINUX_DOC = f"{TOOLKIT_TROUBLESHOOTING}#nvml-insufficient-permissions-and-selinux"
CGROUP_DOC = f"{TOOLKIT_TROUBLESHOOTING}#containers-losing-access-to-gpus-with-error-failed-to-initialize-nvml-unknown-error"



# -- helpers shared with checks/toolkit.py and checks/cdi.py ----------------------------------------
def restart_commands(docker: DockerFacts | None, proc: DockerdProcess | None = None) -> tuple[str, ...]:
    """How to restart *this* daemon: rootless (user unit), snap, or the system unit."""
    if docker is not None and (docker.rootless or (proc is not None and proc.is_rootless)):
        return ("systemctl --user restart docker",)
    if (docker is not None and docker.is_snap) or (proc is not None and proc.is_snap):
        return ("sudo snap restart docker",)
    return ("sudo systemctl restart docker",)


def configure_commands(docker: DockerFacts | None, proc: DockerdProcess | None = None, *extra: str) -> tuple[str, ...]:
    """`nvidia-ctk runtime configure` aimed at the daemon.json this daemon reads, then a restart."""
    suffix = "".join(f" {e}" for e in extra)
    if docker is not None and (docker.rootless or (proc is not None and proc.is_rootless)):
        cmd = f"nvidia-ctk runtime configure --runtime=docker --config=$HOME/.config/docker/daemon.json{suffix}"
    elif proc is not None and proc.config_file and proc.config_file != "/etc/docker/daemon.json":
        cmd = f"sudo nvidia-ctk runtime configure --runtime=docker --config={proc.config_file}{suffix}"
    else:
        cmd = f"sudo nvidia-ctk runtime configure --runtime=docker{suffix}"
    return (cmd, *restart_commands(docker, proc))


def gpus_all_here(docker: DockerFacts, toolkit: ToolkitFacts | None, dockerd_process: DockerdProcess | None = None,
                  cdi: CdiFacts | None = None) -> Prediction:
    """What this stack does with plain `--gpus all` (gpu_requests/behaviour.py): the path that serves it, or the
    refusal. The checks judge a setting by it instead of restating the engine's rules."""
    return predict(GPUS_ALL, stack_from_facts(docker, dockerd_process, toolkit, cdi), ())


def gpus_take_the_hook(prediction: Prediction) -> bool:
    """`--gpus` reaches containers through nvidia-container-runtime-hook (runc + prestart hook)."""
    return LEGACY_HOOK in prediction.via or prediction.path == LEGACY_HOOK


def remote_skip(docker: DockerFacts, what: str, **evidence: Any) -> Result | None:
    """The skip row of a check that compares this machine's files with the daemon, when the daemon is another
    machine's (gpudoctor/scope.py): the files here are not the ones that daemon uses."""
    if not docker.is_remote:
        return None
    return skipped(f"the daemon is remote ({docker.remote_reason}): {what}", evidence={"not_judged": "remote-daemon",
                                                                                      **evidence})


def host_distro(docker: DockerFacts, platform: PlatformFacts | None) -> Distro | None:
    """The distro whose package commands a fix uses: this machine's, unless the daemon is another machine's."""
    return platform.distro if platform is not None and not docker.is_remote else None


def runtime_binary(name: str, proc: DockerdProcess) -> str | None | bool:
    """Where runtime `name`'s binary is: a path, None when it is missing, True when it could not be told."""
    if name not in proc.runtime_paths:
        return True
    return proc.runtime_paths[name] or None


def _evidence(mode: str, **kw: Any) -> dict[str, Any]:
    return {"failure_mode": mode, **kw}


# -- docker.daemon-json -------------------------------------------------------------------------------
@check(
    "docker.daemon-json",
    "daemon.json parses and its GPU settings have the right types",
    layer=Layer.DOCKER,
    needs=("daemon_config", "dockerd_process", "docker"),
)
def daemon_json(daemon_config: DaemonConfig, dockerd_process: DockerdProcess, docker: DockerFacts) -> Result:
    """The daemon.json this dockerd reads is valid JSON, with well-typed runtimes/default-runtime/features,
    and none of its directives is also given as a dockerd flag.

    Why: dockerd refuses to start on a config it cannot parse, on wrong types, and on a directive given
    both in the file and as a flag ("the following directives are specified both as a flag and in the
    configuration file"). A running daemon was started from an older copy, so the next restart (e.g. the
    one after `nvidia-ctk runtime configure`) fails (failure mode `daemon-json-conflict-or-invalid`).

    Fix: correct the file (or let `sudo nvidia-ctk runtime configure --runtime=docker` rewrite it), keep one
    source of truth for runtimes, then `sudo systemctl daemon-reload && sudo systemctl restart docker`.
    """
    if daemon_config.path is None:
        return skipped(daemon_config.note or "the daemon's configuration file is not known")
    restart = ("sudo systemctl daemon-reload", *restart_commands(docker, dockerd_process))
    check_cmd = f"sudo dockerd --validate --config-file={daemon_config.path}"
    ev = _evidence("daemon-json-conflict-or-invalid", path=daemon_config.path, source=daemon_config.path_source)
    if not daemon_config.exists:
        return passed(f"no {daemon_config.path}: dockerd runs on its defaults", evidence=ev)
    if daemon_config.read_error:
        return warned(f"cannot read {daemon_config.path}: {daemon_config.read_error}", evidence=ev)
    if daemon_config.unusable:  # a directory, FIFO or symlink loop: dockerd cannot read it either
        return failed(
            f"{daemon_config.unusable}: dockerd cannot read its configuration file, so it will not (re)start",
            Fix(f"Move it aside and put a regular JSON file at {daemon_config.path} (or none: dockerd then runs on "
                "its defaults), then restart Docker.",
                (f"ls -ld {daemon_config.path}", f"sudo mv {daemon_config.path} {daemon_config.path}.broken", check_cmd, *restart),
                DOCKER_DAEMON_DOC),
            evidence=ev,
        )
    if daemon_config.parse_error:
        return failed(
            f"{daemon_config.path} is not valid: {daemon_config.parse_error}",
            Fix(
                f"Fix the JSON in {daemon_config.path} (dockerd will not start with it), check it, then restart Docker.",
                (f"sudo python3 -m json.tool {daemon_config.path}", check_cmd, *restart),
                DOCKER_DAEMON_DOC,
            ),
            evidence=ev,
        )
    if daemon_config.problems:
        return failed(
            f"{daemon_config.path}: " + "; ".join(daemon_config.problems),
            Fix(
                f"Correct these keys in {daemon_config.path}, then restart Docker.",
                (check_cmd, *configure_commands(docker, dockerd_process)),
                DOCKER_DAEMON_DOC,
            ),
            evidence={**ev, "problems": list(daemon_config.problems)},
        )
    data = daemon_config.data or {}
    conflicts = []
    flags = dockerd_process.flags if dockerd_process.found else {}
    for flag, key in (("--add-runtime", "runtimes"), ("--default-runtime", "default-runtime"),
                      ("--cdi-spec-dir", "cdi-spec-dirs"), ("--exec-opt", "exec-opts")):
        if flag in flags and key in data:
            conflicts.append(f"{key} (flag {flag} {' '.join(flags[flag])})")
    if conflicts:
        return failed(
            "directives set both as a dockerd flag and in " + daemon_config.path + ": " + ", ".join(conflicts),
            Fix(
                "Keep one source of truth: remove the flag from the service (systemctl edit docker) or the key "
                "from daemon.json, then reload and restart.",
                ("systemctl cat docker", "sudo systemctl edit docker", *restart),
                DOCKER_DAEMON_DOC,
            ),
            evidence={**ev, "conflicts": conflicts},
        )
    default = data.get("default-runtime")
    runtimes = data["runtimes"] if isinstance(data.get("runtimes"), dict) else {}
    if isinstance(default, str) and default not in RUNC_NAMES and default not in runtimes:
        # Valid JSON, valid types, and still fatal: dockerd exits at start (real stack, 20.10 and 29.7).
        started = "" if docker.reachable else " — the daemon is down"
        return failed(
            f"{daemon_config.path} makes {default!r} the default runtime but defines no runtimes.{default}: dockerd "
            f"refuses to start ({DEFAULT_RUNTIME_MISSING.format(name=default)}){started}",
            Fix(
                f"Register the runtime in {daemon_config.path} (or remove \"default-runtime\"), check the file, then "
                "start Docker.",
                (f"sudo nvidia-ctk runtime configure --runtime=docker --config={daemon_config.path} --set-as-default",
                 check_cmd, *restart, "sudo journalctl -u docker -n 20 --no-pager"),
                DOCKER_DAEMON_DOC,
            ),
            evidence={**ev, "default_runtime": default},
        )
    keys = ", ".join(sorted(data)) or "no keys"
    return passed(f"{daemon_config.path} parses ({keys})", evidence=ev)


# -- docker.reachable ---------------------------------------------------------------------------------
def _configured_by(docker: DockerFacts) -> str:
    """Who named the endpoint, in words: "DOCKER_HOST", "the docker context 'x'", "the default socket"."""
    if docker.endpoint_source == "DOCKER_HOST":
        return "DOCKER_HOST"
    if docker.context and docker.context != "default":
        return f"the docker context {docker.context!r}"
    return "the default socket"


def _elsewhere_fix(docker: DockerFacts) -> tuple[str, Fix, str] | None:
    """The configured socket is missing (or dead) while a daemon answers at another well-known one: a typo in
    DOCKER_HOST, a context left on an old path, rootless vs rootful. Point the client there, do not start Docker."""
    alt = docker.answering_alternative
    if alt is None:
        return None
    state = "which does not exist" if docker.error_kind == "no-socket" else "where nothing answers"
    what = "Podman" if alt.podman else (f"a daemon ({alt.server.split()[0]})" if alt.server else "a daemon")
    summary = (f"{_configured_by(docker)} names {docker.endpoint}, {state}; {what} answers at {alt.endpoint} "
               f"({alt.via})")
    if docker.endpoint_source == "DOCKER_HOST" and alt.without_docker_host:
        commands: tuple[str, ...] = ("unset DOCKER_HOST",)
        how = f"Unset DOCKER_HOST: without it the client uses {alt.via}, where the daemon answers."
    elif docker.context and docker.context != "default" and alt.endpoint == "unix:///var/run/docker.sock":
        commands = ("docker context use default",)
        how = "Switch back to the default context, whose socket the daemon answers on."
    else:
        commands = (f"export DOCKER_HOST={alt.endpoint}",)
        how = f"Point the client at the socket where the daemon answers ({alt.via})."
    return summary, Fix(how, (*commands, "docker version"), DOCKER_CONTEXT_DOC), "docker-host-elsewhere"


def _unreachable_fix(docker: DockerFacts) -> tuple[str, Fix, str]:
    kind = docker.error_kind or "unknown"
    where = docker.socket_path or docker.endpoint
    elsewhere = _elsewhere_fix(docker)
    if elsewhere is not None:
        return elsewhere
    if kind == "no-socket":
        if not docker.dockerd_installed:
            alt = f" (another daemon's socket exists: {', '.join(docker.other_sockets)})" if docker.other_sockets else ""
            return (
                f"no Docker daemon: {where} does not exist and no dockerd is installed{alt}",
                Fix(
                    "Install Docker Engine (docker-ce; the NVIDIA toolkit supports it, not Docker Desktop or the snap) "
                    "and start it.",
                    ("curl -fsSL https://get.docker.com | sudo sh", "sudo systemctl enable --now docker"),
                    DOCKER_INSTALL_DOC,
                ),
                "docker-not-installed",
            )
        alt = f"; other sockets exist: {', '.join(docker.other_sockets)}" if docker.other_sockets else ""
        return (
            f"the Docker daemon is not running: {where} does not exist (dockerd is installed at "
            f"{docker.dockerd_installed[0]}){alt}",
            Fix(
                "Start the daemon and look at why it stopped (an invalid daemon.json is a common cause).",
                ("sudo systemctl enable --now docker", "sudo systemctl status docker", "sudo journalctl -u docker -n 50"),
                DOCKER_INSTALL_DOC,
            ),
            "docker-not-running",
        )
    if kind == "permission-denied":
        group = docker.socket_group or "docker"
        return (
            f"permission denied on {where}: this user (uid {docker.user_uid}) is not in the {group!r} group",
            Fix(
                f"Add your user to the {group} group and start a new login session (or run gpudoctor with sudo).",
                (f"sudo usermod -aG {group} $USER", f"newgrp {group}"),
                DOCKER_POSTINSTALL_DOC,
            ),
            "docker-socket-permission",
        )
    if kind == "connection-refused":
        return (
            f"nothing listens on {where}: a stale socket, the daemon crashed or is still starting",
            Fix(
                "Restart the daemon and read its log.",
                ("sudo systemctl restart docker", "sudo journalctl -u docker -n 50"),
                DOCKER_INSTALL_DOC,
            ),
            "docker-not-running",
        )
    if kind == "timeout":
        return (
            f"the Docker daemon at {where} did not answer in time (hung or overloaded)",
            Fix(
                "Look at the daemon's state and log; restart it if it is hung.",
                ("sudo systemctl status docker", "sudo journalctl -u docker -n 100", "sudo systemctl restart docker"),
                DOCKER_INSTALL_DOC,
            ),
            "docker-hung",
        )
    if kind in ("remote-unreachable", "tls", "ssh-unsupported", "bad-host", "context"):
        source = f"{docker.endpoint_source}" + (f" {docker.context!r}" if docker.context else "")
        commands = (
            ("pip install 'docker[ssh]'",)
            if kind == "ssh-unsupported"
            else ("docker context ls", "echo $DOCKER_HOST", "unset DOCKER_HOST DOCKER_CONTEXT", "docker context use default")
        )
        return (
            f"cannot reach the Docker daemon {docker.endpoint} (from {source}): {kind}: {docker.error}",
            Fix(
                "Point the client at the daemon on the GPU host: fix DOCKER_HOST / the docker context (TLS "
                "certificates in DOCKER_CERT_PATH), or run gpudoctor on the GPU host itself.",
                commands,
                DOCKER_CONTEXT_DOC,
            ),
            "docker-remote-unreachable",
        )
    return (
        f"cannot talk to the Docker daemon at {docker.endpoint}: {docker.error_kind}: {docker.error}",
        Fix("Check that the daemon runs and answers.", ("sudo systemctl status docker", "docker version"), DOCKER_INSTALL_DOC),
        "docker-unreachable",
    )


@check("docker.reachable", "The Docker daemon answers", layer=Layer.DOCKER, needs=("docker",))
def reachable(docker: DockerFacts) -> Result:
    """The Docker daemon this user's client talks to (DOCKER_HOST / docker context / default socket) answers.

    Why: every GPU container goes through it. The causes differ and so do the fixes: no daemon installed,
    installed but not running, socket permission denied (user not in the `docker` group), a stale socket,
    a hung daemon, or an unreachable remote DOCKER_HOST / context.

    Fix: `sudo systemctl enable --now docker`; `sudo usermod -aG docker $USER && newgrp docker`;
    `docker context use default` / `unset DOCKER_HOST`.
    """
    ev: dict[str, Any] = {"endpoint": docker.endpoint, "source": docker.endpoint_source, "context": docker.context}
    if docker.reachable and docker.answer_s is not None and docker.answer_s > SLOW_ANSWER_S:
        # A slow daemon (issue 14): every probe and `docker run` waits on it; say so here, at its layer.
        return warned(
            f"the daemon at {docker.endpoint} answers, but slowly: /version took {docker.answer_s:.1f}s "
            f"(a healthy daemon answers in milliseconds; overloaded, or stuck on a hung container?)",
            fix=Fix(
                "Look at what the daemon is busy with and at its log; restart it if it is stuck.",
                ("sudo systemctl status docker", "sudo journalctl -u docker -n 100", "docker ps -a"),
                DOCKER_INSTALL_DOC,
            ),
            evidence={**ev, "answer_s": docker.answer_s, "failure_mode": "docker-hung"},
        )
    if docker.reachable:
        where = "remote " if docker.is_remote else ""
        return passed(
            f"{where}daemon at {docker.endpoint} answers: engine {docker.server_version}, API {docker.api_version}",
            evidence=ev,
        )
    summary, fix, mode = _unreachable_fix(docker)
    details = [f"error: {docker.error}"] if docker.error else []
    details += [f"{a.endpoint} ({a.via}): {a.state}" + (f", {a.server}" if a.server else "") for a in docker.alternatives
                if a.state != "no-socket"]
    if docker.other_sockets and not docker.alternatives:
        details.append("other daemon sockets on this machine: " + ", ".join(docker.other_sockets))
    if docker.alternatives:
        ev["alternatives"] = {a.endpoint: a.state for a in docker.alternatives}
    return failed(summary, fix, details=details, evidence={**ev, "kind": docker.error_kind, "failure_mode": mode})


# -- docker.engine --------------------------------------------------------------------------------------
@check(
    "docker.engine",
    "The engine is a local Docker Engine that can reach the host's GPUs",
    layer=Layer.DOCKER,
    needs=("docker",),
    after=("docker.reachable",),
)
def engine(docker: DockerFacts) -> Result:
    """The daemon is Docker Engine on this host — not Docker Desktop's VM, the snap, Podman, or a remote host.

    Why: Docker Desktop for Linux runs its engine in a VM without the host's GPUs (failure mode
    `docker-desktop-linux`); the snap cannot use the host's toolkit or /etc/docker/daemon.json
    (`snap-docker`); Podman takes GPUs through CDI only (`podman-specifics`); a remote daemon's GPUs are
    not the ones gpudoctor inspected on this machine.

    Fix: install docker-ce and `docker context use default`; `sudo snap remove docker` then install
    docker-ce; with Podman use `--device nvidia.com/gpu=all` after `sudo nvidia-ctk cdi generate`.
    """
    ev = {"server_version": docker.server_version, "platform": docker.platform_name, "os": docker.operating_system}
    if docker.is_desktop:
        return failed(
            f"Docker Desktop ({docker.operating_system or docker.platform_name}): its engine runs in a VM that "
            "cannot use this host's NVIDIA GPUs",
            Fix(
                "Install Docker Engine (docker-ce) on the host, switch to its context, and configure the NVIDIA "
                "toolkit there.",
                ("curl -fsSL https://get.docker.com | sudo sh", "docker context use default",
                 "sudo nvidia-ctk runtime configure --runtime=docker", "sudo systemctl restart docker"),
                DESKTOP_ISSUE,
            ),
            evidence=_evidence("docker-desktop-linux", **ev),
        )
    if docker.is_podman:
        return warned(
            f"Podman answers as Docker ({docker.platform_name or ', '.join(docker.components)}): GPUs work "
            "through CDI only; `--gpus` and `--runtime=nvidia` behave differently",
            fix=Fix(
                "Generate the CDI spec and request GPUs by CDI name.",
                ("sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml",
                 "podman run --rm --device nvidia.com/gpu=all --security-opt=label=disable ubuntu nvidia-smi -L"),
                PODMAN_CDI_DOC,
            ),
            evidence=_evidence("podman-specifics", **ev),
        )
    if docker.is_snap:
        return failed(
            f"Docker from the snap store (data root {docker.docker_root_dir}): it cannot use the host's NVIDIA "
            "Container Toolkit or /etc/docker/daemon.json",
            Fix(
                "Replace the snap with Docker Engine from Docker's apt repository, then configure the toolkit.",
                ("sudo snap remove --purge docker", "curl -fsSL https://get.docker.com | sudo sh",
                 "sudo nvidia-ctk runtime configure --runtime=docker", "sudo systemctl restart docker"),
                SNAP_DOC,
            ),
            evidence=_evidence("snap-docker", **ev),
        )
    if docker.is_remote:
        # Judged with its containers; this machine's host layers are shown but not judged (gpudoctor/scope.py).
        return passed(
            f"remote Docker Engine {docker.server_version} on host {docker.name or '?'} ({docker.remote_reason}): "
            "the verdict is about it and its containers, not this machine's host layers",
            evidence={**ev, "remote": docker.remote_reason, "engine_host": docker.name},
        )
    return passed(f"local Docker Engine {docker.server_version} ({docker.operating_system})", evidence=ev)


# -- docker.api-version ---------------------------------------------------------------------------------
@check(
    "docker.api-version",
    "The engine's API accepts GPU device requests (API ≥ 1.40)",
    layer=Layer.DOCKER,
    needs=("docker",),
    after=("docker.reachable",),
)
def api_version(docker: DockerFacts) -> Result:
    """The daemon speaks API 1.40 or newer (Docker 19.03+), which added HostConfig.DeviceRequests (`--gpus`).

    Why: an older daemon silently drops DeviceRequests (containers start without GPUs); clients refuse:
    `"--gpus" requires API version 1.40, but the Docker daemon API version is 1.39` /
    `device_requests param is not supported in API versions < 1.40` (docker-gpu-internals §1.1, §5.2).
    CDI needs Engine 25+ (on by default from 28.2); `--gpus` through CDI needs 29.2+.

    Fix: upgrade Docker Engine (`curl -fsSL https://get.docker.com | sudo sh`).
    """
    api = docker.api_tuple
    ev = {"server_version": docker.server_version, "api_version": docker.api_version}
    if api is None:
        return warned(f"the daemon reported no API version (engine {docker.server_version})", evidence=ev)
    if api < (1, 40):
        return failed(
            f"API {docker.api_version} (engine {docker.server_version}) predates DeviceRequests (1.40): "
            "`--gpus` is unsupported",
            Fix("Upgrade Docker Engine to a current release.", ("curl -fsSL https://get.docker.com | sudo sh",),
                DOCKER_INSTALL_DOC),
            evidence=ev,
        )
    v = docker.version_tuple or ()
    notes = []
    if v and v < (25,):
        notes.append("no CDI (needs 25+)")
    elif v and v < (28, 2):
        notes.append("CDI only with features.cdi")
    else:
        notes.append("CDI on by default")
    notes.append("--gpus via CDI" if v and v >= (29, 2) else "--gpus via the runtime hook")
    return passed(f"engine {docker.server_version}, API {docker.api_version}: {', '.join(notes)}", evidence=ev)


# -- docker.runtime.nvidia ------------------------------------------------------------------------------
@check(
    "docker.runtime.nvidia",
    "The `nvidia` runtime is registered and its binary exists",
    layer=Layer.DOCKER,
    needs=("docker", "toolkit", "dockerd_process", "platform"),
    after=("docker.reachable", "toolkit.installed"),
)
def runtime_nvidia(docker: DockerFacts, toolkit: ToolkitFacts, dockerd_process: DockerdProcess,
                   platform: PlatformFacts | None = None) -> Result:
    """The daemon lists a runtime named `nvidia` (`docker info` Runtimes) whose executable exists.

    Why: `--runtime=nvidia` (and compose `runtime: nvidia`) fails at create with
    `Unknown runtime specified nvidia` (≤ 20.10) / `unknown or invalid runtime name: nvidia` (23+) without it
    (failure mode `runtime-not-registered`); a registered runtime whose binary is gone fails every container
    using it (`runtime-or-hook-binary-missing`). With the toolkit in `cdi`/`jit-cdi`/`csv` mode it is the
    only way GPUs reach containers.

    Fix: `sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`.
    """
    rt = docker.runtime("nvidia")
    # Needed when plain `--gpus` is refused by the hook for the toolkit's mode: then only the runtime serves GPUs.
    # This machine's toolkit mode says nothing of a remote daemon's host.
    needed = not docker.is_remote and gpus_all_here(docker, toolkit, dockerd_process).blame == "toolkit.mode"
    ev = {"runtimes": list(docker.runtime_names), "toolkit_mode": toolkit.mode}
    if rt is None:
        summary = f"no `nvidia` runtime registered (runtimes: {', '.join(docker.runtime_names) or 'none'})"
        fix = Fix(
            "Register the NVIDIA runtime in the daemon.json this daemon reads and restart it.",
            configure_commands(docker, dockerd_process),
            TOOLKIT_DOCKER_DOC,
        )
        if needed:
            return failed(
                summary + f"; with the toolkit in {toolkit.mode!r} mode GPU containers need `--runtime=nvidia`",
                fix,
                evidence=_evidence("runtime-not-registered", **ev),
            )
        return warned(
            summary + ": `--runtime=nvidia` fails with \"Unknown runtime specified nvidia\" (`--gpus` does not need it)",
            fix=fix,
            evidence=_evidence("runtime-not-registered", **ev),
        )
    where = runtime_binary(rt.name, dockerd_process)
    if where is None:
        return failed(
            f"runtime `nvidia` points at {rt.path!r}, which does not exist"
            + (" on dockerd's PATH" if dockerd_process.path_env is not None else ""),
            Fix(
                "Reinstall the toolkit (or remove the stale runtime entry), then restart Docker.",
                (*toolkit_reinstall(host_distro(docker, platform)), *configure_commands(docker, dockerd_process)),
                TOOLKIT_DOCKER_DOC,
            ),
            evidence=_evidence("runtime-or-hook-binary-missing", path=rt.path, **ev),
        )
    return passed(f"runtime `nvidia` → {rt.path}" + (f" ({where})" if isinstance(where, str) and where != rt.path else ""), evidence=ev)


# -- docker.default-runtime -----------------------------------------------------------------------------
@check(
    "docker.default-runtime",
    "The default runtime exists and suits the toolkit's mode",
    layer=Layer.DOCKER,
    needs=("docker", "toolkit", "dockerd_process", "platform"),
    after=("docker.reachable",),
)
def default_runtime(docker: DockerFacts, toolkit: ToolkitFacts, dockerd_process: DockerdProcess,
                    platform: PlatformFacts | None = None) -> Result:
    """The default runtime is one the daemon has, and its binary exists.

    Why: with `"default-runtime": "nvidia"` and the toolkit removed, *every* container fails, GPU or not
    (failure mode `runtime-or-hook-binary-missing`). With the toolkit in `cdi`/`jit-cdi` mode, `--gpus`
    works only when the default runtime is `nvidia` (see toolkit.mode).

    Fix: `sudo nvidia-ctk runtime configure --runtime=docker --set-as-default && sudo systemctl restart docker`,
    or remove "default-runtime" from daemon.json.
    """
    name = docker.default_runtime
    ev = {"default_runtime": name, "runtimes": list(docker.runtime_names)}
    if not name:
        return warned("the daemon reported no default runtime", evidence=ev)
    rt = docker.runtime(name)
    if rt is None and name not in ("runc", "io.containerd.runc.v2"):
        return failed(
            f"default runtime {name!r} is not among the daemon's runtimes",
            Fix("Register it or reset the default runtime, then restart Docker.",
                configure_commands(docker, dockerd_process, "--set-as-default"), TOOLKIT_DOCKER_DOC),
            evidence=ev,
        )
    if name == "nvidia" and rt is not None and runtime_binary(rt.name, dockerd_process) is None:
        return failed(
            f"default runtime `nvidia` points at {rt.path!r}, which does not exist: every container fails to start",
            Fix(
                "Reinstall the NVIDIA Container Toolkit, or remove \"default-runtime\" from daemon.json, then restart.",
                (*toolkit_reinstall(host_distro(docker, platform)), *restart_commands(docker, dockerd_process)),
                TOOLKIT_TROUBLESHOOTING,
            ),
            evidence=_evidence("runtime-or-hook-binary-missing", **ev),
        )
    return passed(f"default runtime: {name}", evidence=ev)


# -- docker.daemon-json.drift ---------------------------------------------------------------------------
@check(
    "docker.daemon-json.drift",
    "The running daemon uses what daemon.json says",
    layer=Layer.DOCKER,
    needs=("docker", "daemon_config", "dockerd_process"),
    after=("docker.reachable", "docker.daemon-json"),
)
def daemon_json_drift(docker: DockerFacts, daemon_config: DaemonConfig, dockerd_process: DockerdProcess) -> Result:
    """Every runtime and the default runtime in daemon.json are what the live daemon reports.

    Why: dockerd reads daemon.json at start (a few keys on SIGHUP). After `nvidia-ctk runtime configure`
    without a restart, the file names `nvidia` but the daemon does not know it: `--runtime=nvidia` fails with
    `Unknown runtime specified nvidia` although the file looks right (failure mode `runtime-not-registered`).

    Fix: `sudo systemctl restart docker` (rootless: `systemctl --user restart docker`).
    """
    if daemon_config.data is None:
        return skipped(daemon_config.note or "no daemon.json to compare with")
    drift = []
    for name, spec in daemon_config.runtimes.items():
        live = docker.runtime(name)
        if live is None:
            drift.append(f"runtime {name!r} is in the file but not in the daemon")
        elif isinstance(spec, dict) and spec.get("path") and live.path and spec["path"] != live.path:
            drift.append(f"runtime {name!r}: file path {spec['path']!r}, daemon path {live.path!r}")
    file_default = daemon_config.default_runtime or "runc"
    if docker.default_runtime and file_default != docker.default_runtime and (
        "--default-runtime" not in dockerd_process.flags
    ):
        drift.append(f"default runtime: file {file_default!r}, daemon {docker.default_runtime!r}")
    v = docker.version_tuple
    if daemon_config.cdi_feature is True and docker.cdi_spec_dirs is not None and not docker.cdi_spec_dirs and v and v >= (25,):
        drift.append("features.cdi is true in the file but the daemon reports no CDI spec dirs")
    ev = {"path": daemon_config.path, "drift": drift, "failure_mode": "runtime-not-registered"}
    if drift:
        return failed(
            f"{daemon_config.path} changed after the daemon started: " + "; ".join(drift),
            Fix("Restart the daemon so it reads the file.", restart_commands(docker, dockerd_process), TOOLKIT_DOCKER_DOC),
            evidence=ev,
        )
    return passed(f"the daemon matches {daemon_config.path}", evidence=ev)


# -- docker.gpu-driver ----------------------------------------------------------------------------------
@check(
    "docker.gpu-driver",
    "dockerd could register its `--gpus` driver (the NVIDIA hook was on its PATH when it started)",
    layer=Layer.DOCKER,
    needs=("docker", "dockerd_process", "toolkit", "platform"),
    after=("docker.reachable", "toolkit.installed"),
)
def gpu_driver(docker: DockerFacts, dockerd_process: DockerdProcess, toolkit: ToolkitFacts,
               platform: PlatformFacts | None = None) -> Result:
    """`nvidia-container-runtime-hook` (29.2+: or `nvidia-cdi-hook`) is on dockerd's own PATH and was there
    before dockerd started.

    Why: dockerd looks the hook up once, at start, on its own PATH (moby daemon/nvidia_linux.go init,
    docker-gpu-internals §1.3). Otherwise `--gpus` fails with
    `could not select device driver "" with capabilities: [[gpu]]` (failure mode
    `no-gpu-device-driver-in-dockerd`): toolkit installed after dockerd started, or a dockerd PATH without
    /usr/bin.

    Fix: `sudo systemctl restart docker`; if the hook is outside dockerd's PATH, add it with
    `sudo systemctl edit docker` (Environment=PATH=...).
    """
    hooks = ("nvidia-container-runtime-hook", "nvidia-cdi-hook") if (docker.version_tuple or ()) >= (29, 2) else (
        "nvidia-container-runtime-hook",
    )
    ev = _evidence("no-gpu-device-driver-in-dockerd", pid=dockerd_process.pid, hooks=list(hooks))
    if not dockerd_process.found:
        return skipped(f"cannot tell: {dockerd_process.reason}", evidence=ev)
    if not dockerd_process.environ_readable:
        return skipped(
            f"cannot tell whether dockerd (pid {dockerd_process.pid}) sees the hook: {dockerd_process.environ_error}",
            evidence=ev,
        )
    seen = [h for h in dockerd_process.hooks if h.name in hooks and h.path]
    if not seen:
        on_host = [b.path for b in toolkit.binaries if b.name in hooks and b.path]
        where = f" (it is at {on_host[0]})" if on_host else " (nor anywhere on this host)"
        return failed(
            f"{' / '.join(hooks)} is not on dockerd's PATH{where}: `--gpus` fails with "
            "'could not select device driver \"\" with capabilities: [[gpu]]'",
            Fix(
                "Install the toolkit where dockerd looks (/usr/bin), or give the service a PATH that holds the hook, "
                "then restart Docker.",
                (*toolkit_install(host_distro(docker, platform)), "sudo systemctl edit docker",
                 *restart_commands(docker, dockerd_process)),
                TOOLKIT_TROUBLESHOOTING,
            ),
            details=[f"dockerd PATH: {dockerd_process.path_env}"],
            evidence={**ev, "dockerd_path": dockerd_process.path_env},
        )
    start = dockerd_process.start_time
    # /proc/stat's btime is whole seconds, so the computed start can be up to 1 s early: allow that much.
    late = [h for h in seen if start is not None and h.changed_at is not None and h.changed_at > start + START_SLACK_S]
    if late and len(late) == len(seen):
        h = late[0]
        return failed(
            f"{h.name} ({h.path}) was installed after dockerd (pid {dockerd_process.pid}) started: the daemon "
            "registered no GPU driver; `--gpus` fails until it restarts",
            Fix("Restart the daemon so it registers the NVIDIA driver.", restart_commands(docker, dockerd_process),
                TOOLKIT_DOCKER_DOC),
            evidence={**ev, "start_time": start, "hook_changed_at": h.changed_at},
        )
    when = "" if start is None else " (the binary predates the daemon's start)"
    return passed(f"dockerd (pid {dockerd_process.pid}) sees {seen[0].name} at {seen[0].path}{when}", evidence=ev)


# -- docker.cgroups -------------------------------------------------------------------------------------
@check(
    "docker.cgroups",
    "The cgroup setup keeps GPU device access",
    layer=Layer.DOCKER,
    needs=("docker", "toolkit", "devices", "platform"),
    after=("docker.reachable",),
)
def cgroups(docker: DockerFacts, toolkit: ToolkitFacts, devices: DeviceFacts, platform: PlatformFacts | None = None) -> Result:
    """cgroup v2 has a libnvidia-container that knows it (≥ 1.8), and the systemd cgroup driver has the
    /dev/char links that keep hook-injected devices allowed.

    Why: libnvidia-container < 1.8 fails on cgroup v2 with `cgroup subsystem devices not found`
    (failure mode `cgroup-v2-unsupported-old-stack`). With the systemd cgroup driver and the hook path
    (legacy mode / `--gpus`), `systemctl daemon-reload` drops the NVIDIA device rules and running containers
    get "Failed to initialize NVML: Unknown Error" (`cgroup-device-access-lost`), unless /dev/char links exist.

    Fix: upgrade the toolkit; `sudo nvidia-ctk system create-dev-char-symlinks --create-all`; or use CDI.
    """
    ev = {"cgroup_driver": docker.cgroup_driver, "cgroup_version": docker.cgroup_version}
    remote = remote_skip(docker, f"cgroup driver {docker.cgroup_driver}, cgroup v{docker.cgroup_version}; its host's "
                                 "toolkit and /dev/char links cannot be read from this machine", **ev)
    if remote:
        return remote
    cli = toolkit.binary("nvidia-container-cli") if toolkit.has("nvidia-container-cli") else None
    cli_v = version_tuple(cli.version) if cli else None
    if docker.cgroup_version == "2" and cli and cli_v and cli_v < (1, 8):
        return failed(
            f"cgroup v2 with nvidia-container-cli {cli.version} (< 1.8): hook-based GPU containers fail with "
            "'cgroup subsystem devices not found'",
            Fix("Upgrade the NVIDIA Container Toolkit (all its packages).",
                toolkit_install(host_distro(docker, platform)), TOOLKIT_TROUBLESHOOTING),
            evidence=_evidence("cgroup-v2-unsupported-old-stack", **ev),
        )
    hook_path = gpus_take_the_hook(gpus_all_here(docker, toolkit))
    missing = [n.path for n in devices.lacking_char_link()]
    if docker.cgroup_driver == "systemd" and hook_path and missing:
        return warned(
            f"systemd cgroup driver with hook-injected GPUs and no /dev/char links for {', '.join(missing[:4])}: "
            "`systemctl daemon-reload` can cut running containers off their GPUs",
            fix=Fix(
                "Create the /dev/char links (and keep them with the udev rule from the troubleshooting guide), or "
                "use CDI.",
                ("sudo nvidia-ctk system create-dev-char-symlinks --create-all",),
                CGROUP_DOC,
            ),
            evidence=_evidence("cgroup-device-access-lost", missing=missing, **ev),
        )
    return passed(f"cgroup driver {docker.cgroup_driver}, cgroup v{docker.cgroup_version}", evidence=ev)


# -- docker.rootless ------------------------------------------------------------------------------------
@check(
    "docker.rootless",
    "Rootless mode, user namespaces and SELinux are set up for GPUs",
    layer=Layer.DOCKER,
    needs=("docker", "toolkit"),
    after=("docker.reachable",),
)
def rootless(docker: DockerFacts, toolkit: ToolkitFacts) -> list[Result]:
    """A rootless daemon has `no-cgroups = true` in the toolkit config; userns-remap and SELinux are noted.

    Why: a rootless daemon's hook cannot write device cgroups: `bpf_prog_query(BPF_CGROUP_DEVICE) failed:
    operation not permitted` unless `[nvidia-container-cli] no-cgroups = true` (failure mode
    `rootless-needs-no-cgroups`); the same setting on a rootful daemon leaves hook-injected devices outside
    the cgroup. SELinux denies /dev/nvidia* to `container_t` without `container_use_devices`
    (`selinux-blocks-devices`).

    Fix: `sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place`;
    `sudo setsebool -P container_use_devices 1`.
    """
    results: list[Result] = []
    hook_path = toolkit.installed and toolkit.mode not in HOOK_REFUSING_MODES
    remote = remote_skip(docker, ("rootless daemon" if docker.rootless else "rootful daemon") + "; its host's toolkit "
                         "config (no-cgroups) cannot be read from this machine")
    if remote:
        results.append(remote)
    elif docker.rootless:
        if hook_path and not toolkit.no_cgroups:
            results.append(failed(
                "rootless daemon but the toolkit config lacks `no-cgroups = true`: hook-based GPU containers fail "
                "with 'bpf_prog_query(BPF_CGROUP_DEVICE) failed: operation not permitted'",
                Fix(
                    "Let the hook skip cgroups and register the runtime with the user's daemon.",
                    ("sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place",
                     *configure_commands(docker)),
                    TOOLKIT_ROOTLESS_DOC,
                ),
                evidence=_evidence("rootless-needs-no-cgroups"),
            ))
        else:
            results.append(passed("rootless daemon" + (" with no-cgroups = true" if toolkit.no_cgroups else "")))
    elif hook_path and toolkit.no_cgroups:
        results.append(warned(
            "rootful daemon with `no-cgroups = true`: GPUs injected by the hook are not allowed in the container's "
            "device cgroup unless passed with --device",
            fix=Fix("Turn no-cgroups off unless a rootless daemon needs it.",
                    ("sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups=false --in-place",),
                    TOOLKIT_ROOTLESS_DOC),
            evidence=_evidence("rootless-needs-no-cgroups"),
        ))
    if docker.security("userns"):
        results.append(warned(
            "user-namespace remapping is on: GPU device nodes and driver files owned by host root may be unusable; "
            "run GPU containers with --userns=host",
            fix=Fix("Run GPU containers outside the remapped namespace.",
                    ("docker run --rm --userns=host --gpus all ubuntu nvidia-smi -L",),
                    "https://docs.docker.com/engine/security/userns-remap/"),
        ))
    if docker.security("selinux"):
        results.append(warned(
            "SELinux is enabled in the daemon: containers need `container_use_devices` to open /dev/nvidia*",
            fix=Fix("Allow containers to use devices (or run with --security-opt=label=disable).",
                    ("getsebool container_use_devices", "sudo setsebool -P container_use_devices 1"), SELINUX_DOC),
            evidence=_evidence("selinux-blocks-devices"),
        ))
    if not results:
        results.append(passed("rootful daemon; no user-namespace remapping or SELinux"))
    return results


# -- docker.cdi -----------------------------------------------------------------------------------------
@check(
    "docker.cdi",
    "CDI is enabled in the daemon and its spec dirs hold the NVIDIA spec",
    layer=Layer.DOCKER,
    needs=("docker", "cdi", "daemon_config"),
    after=("docker.reachable",),
)
def docker_cdi(docker: DockerFacts, cdi: CdiFacts, daemon_config: DaemonConfig) -> list[Result]:
    """The daemon has CDI on (25.0+ with `features.cdi`, default from 28.2) and scans the directory that
    holds the NVIDIA spec; it reports no CDI warnings.

    Why: without CDI, `--device nvidia.com/gpu=all` fails with
    `could not select device driver "cdi" with capabilities: []` (failure mode `cdi-not-enabled-in-docker`);
    a spec outside `CDISpecDirs` gives `unresolvable CDI devices nvidia.com/gpu=all`
    (`cdi-spec-missing-or-unreadable`).

    Fix: `sudo nvidia-ctk runtime configure --runtime=docker --cdi.enabled && sudo systemctl restart docker`,
    or upgrade to Docker ≥ 28.2.
    """
    if docker.is_podman:
        return [_podman_cdi(docker, cdi)]
    v = docker.version_tuple
    ev = {"server_version": docker.server_version, "cdi_spec_dirs": list(docker.cdi_spec_dirs or ())}
    if v is not None and v < (25,):
        return [skipped(
            f"Docker {docker.server_version} has no CDI support (25.0+): `--device nvidia.com/gpu=…` is not "
            "available; use `--gpus` or `--runtime=nvidia`",
            evidence=_evidence("cdi-not-enabled-in-docker", **ev),
        )]
    if not docker.cdi_enabled:
        how = "features.cdi is not true" if (v and v < (28, 2)) else "CDI is disabled (features.cdi=false or empty cdi-spec-dirs)"
        return [warned(
            f"Docker {docker.server_version}: {how}: CDI requests fail with "
            "'could not select device driver \"cdi\" with capabilities: []'",
            fix=Fix("Enable CDI in the daemon and restart it.",
                    configure_commands(docker, None, "--cdi.enabled"), DOCKER_CDI_DOC),
            evidence=_evidence("cdi-not-enabled-in-docker", **ev),
        )]
    results: list[Result] = []
    dirs = [d.rstrip("/") for d in docker.cdi_spec_dirs or ()]
    # This machine's spec files are not a remote daemon's: only the daemon's own word is judged then.
    outside = [] if docker.is_remote else [s.path for s in cdi.nvidia_specs if not in_spec_dirs(s.path, dirs)]
    if outside:
        results.append(failed(
            f"NVIDIA CDI spec outside the daemon's spec dirs ({', '.join(dirs)}): {', '.join(outside)}",
            Fix("Generate the spec into a directory the daemon scans.",
                ("sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml",), TOOLKIT_CDI),
            evidence=_evidence("cdi-spec-missing-or-unreadable", outside=outside, **ev),
        ))
    cdi_warnings = [w for w in docker.warnings if "CDI" in w]
    if cdi_warnings:
        results.append(failed(
            "the daemon reports CDI problems: " + " | ".join(cdi_warnings[:3]),
            Fix("Regenerate the spec and restart the daemon.",
                ("sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml", *restart_commands(docker)), TOOLKIT_CDI),
            evidence=_evidence("cdi-spec-missing-or-unreadable", warnings=cdi_warnings, **ev),
        ))
    if docker.discovered_devices is not None:
        ev["discovered_devices"] = list(docker.discovered_devices)
    if not results:
        found = [d for d in (docker.discovered_devices or ()) if d.startswith("nvidia.com/gpu=")]
        extra = f"; discovered {', '.join(found[:6])}" if found else ""
        results.append(passed(f"CDI enabled (spec dirs {', '.join(dirs)}){extra}", evidence=ev))
    return results


# Podman resolves CDI names itself, from these directories (containers.conf `cdi_spec_dirs`, default), since 4.1.0;
# it has no `features.cdi` and reports no CDISpecDirs (../docs failure mode `cdi-not-enabled-in-docker`:
# "Podman has native CDI since 4.1.0"; podman < 4.1 reads `nvidia.com/gpu=0` as a path: "stat …: no such file").
PODMAN_CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
PODMAN_CDI_SINCE = (4, 1)


def _podman_cdi(docker: DockerFacts, cdi: CdiFacts) -> Result:
    """docker.cdi by Podman's rules: a version with CDI, and an NVIDIA spec where Podman looks."""
    v = docker.version_tuple
    ev: dict[str, Any] = {"server_version": docker.server_version, "engine": "podman",
                          "cdi_spec_dirs": list(PODMAN_CDI_DIRS)}
    if v is not None and v < PODMAN_CDI_SINCE:
        return failed(
            f"Podman {docker.server_version} has no CDI (4.1.0+), and CDI is Podman's only GPU path: "
            "`--device nvidia.com/gpu=…` is read as a host path",
            Fix("Upgrade Podman to 4.1 or later (your distribution's podman package).", (), PODMAN_CDI_DOC),
            evidence=_evidence("cdi-not-enabled-in-docker", **ev),
        )
    specs = [s.path for s in cdi.nvidia_specs]
    inside = [p for p in specs if in_spec_dirs(p, PODMAN_CDI_DIRS)]
    if specs and not inside:
        return failed(
            f"Podman reads CDI specs from {' and '.join(PODMAN_CDI_DIRS)}, but the NVIDIA spec is elsewhere: "
            f"{', '.join(specs)}",
            Fix("Generate the spec into a directory Podman scans.",
                ("sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml", "nvidia-ctk cdi list"), PODMAN_CDI_DOC),
            evidence=_evidence("cdi-spec-missing-or-unreadable", outside=specs, **ev),
        )
    where = f"; NVIDIA spec {', '.join(inside)}" if inside else " (no NVIDIA spec there: cdi.specs says more)"
    return passed(f"Podman {docker.server_version} resolves CDI names itself from "
                  f"{' and '.join(PODMAN_CDI_DIRS)}{where}", evidence=ev)


# -- docker.stayed-up (issue 14) ------------------------------------------------------------------------
@check(
    "docker.stayed-up",
    "The Docker daemon kept answering during the probes",
    layer=Layer.DOCKER,
    needs=("probes", "docker"),
    after=("docker.reachable",),
)
def stayed_up(probes: ProbeFacts, docker: DockerFacts) -> Result:
    """The daemon that answered at the start still answered while the probe containers ran.

    Why: a daemon that crashes, is killed (OOM), restarted or frozen mid-run fails every probe for that
    reason alone; the probes' errors ("Connection aborted", no answer) then say nothing about GPUs, and
    judging them as container errors blames the wrong layer. Which probe saw it, and whether `/_ping`
    answered afterwards, is in gpudoctor/facts/probes.py.

    Fix: read the daemon's log (`journalctl -u docker`), look for the OOM killer (`dmesg`), make the
    daemon stay up, then run gpudoctor again.
    """
    if probes.daemon_error:
        hung = probes.daemon_error_kind == "timeout"
        return failed(
            f"the Docker daemon {probes.daemon_error}",
            Fix(
                "Find out why the daemon stopped answering (its log, the OOM killer, a restart), make it stay "
                "up, then run gpudoctor again.",
                ("sudo systemctl status docker", "sudo journalctl -u docker -n 100",
                 "sudo dmesg | grep -i -E 'out of memory|killed process'", *restart_commands(docker)),
                DOCKER_INSTALL_DOC,
            ),
            evidence={"kind": probes.daemon_error_kind, "failure_mode": "docker-hung" if hung else "docker-not-running"},
        )
    if not probes.enabled:
        return skipped(f"no probe ran: {probes.reason}")
    return passed(f"the daemon answered throughout the {len(probes.outcomes)} probe(s)")


# Order settles ties in one layer: dockerd's missing GPU driver (hooks installed after it started) and a runtime
# in the file but not in the daemon both need a restart first, so they come before the registration itself.
CHECKS: tuple[Check, ...] = (
    daemon_json,
    reachable,
    engine,
    api_version,
    gpu_driver,
    daemon_json_drift,
    runtime_nvidia,
    default_runtime,
    cgroups,
    rootless,
    docker_cdi,
    stayed_up,
)
