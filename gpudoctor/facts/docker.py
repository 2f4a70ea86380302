"""The Docker daemon as this run sees it: reachable or why not, version, info, runtimes, CDI fields.

Every Docker API answer goes through `ctx.host.call("docker.*", …)` as plain JSON, so a support
bundle holds the daemon's `/version` and the part of `/info` this fact reads (INFO_FIELDS), and a
replay reproduces this fact.
What each field means and since which engine/API it exists: docs/docker-gpu-internals.md §2.3, §4.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import field, replace
from typing import Any, Mapping

from ..frozen import frozen
from .at_once import Started
from .docker_client import (
    Endpoint,
    fast_socket,
    open_client,
    ping_socket,
    remember_api_version,
    resolve_endpoint,
    to_host_call_error,
)
from .host import HostCallError, NotRecorded
from ..gpu_requests.stack import version_tuple  # noqa: F401  (one home; checks import it from here)
from .locality import elsewhere, host_label
from .registry import FactContext, FactMissing, fact

DOCKER_TIMEOUT_S = 10.0  # one API call
# The fact: the client's own /version (API negotiation), /version, /info — each at most DOCKER_TIMEOUT_S.
# Facts that wait for this one (dockerd_process, daemon_config, cdi) allow for it, so that a slow
# daemon is this fact's finding (docker.reachable), never a timed-out fact of another layer.
DOCKER_FACT_TIMEOUT_S = 3 * DOCKER_TIMEOUT_S + 5
# A daemon taking longer than this to answer /version is reported (a healthy one takes milliseconds).
SLOW_ANSWER_S = 3.0
# Seconds the daemon took, added to the recorded /version answer (so that a replay reports the same).
ELAPSED_KEY = "gpudoctor_elapsed_s"

# Where other daemons' sockets usually are: a hint when the configured one is missing.
KNOWN_SOCKETS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/snap/docker/common/run/docker.sock",  # older snap
    "/run/podman/podman.sock",
)
# What each well-known socket is, in words for the report. Rootless Docker listens on
# $XDG_RUNTIME_DIR/docker.sock (https://docs.docker.com/engine/security/rootless/#usage), rootless Podman's
# service on $XDG_RUNTIME_DIR/podman/podman.sock (podman-system-service(1)).
SOCKET_ROLES = {
    "/var/run/docker.sock": "the default socket",
    "/run/docker.sock": "the system socket",
    "/var/snap/docker/common/run/docker.sock": "snap Docker",
    "/run/podman/podman.sock": "rootful Podman",
}
ROOTLESS_DOCKER, ROOTLESS_PODMAN = "docker.sock", "podman/podman.sock"
DOCKERD_CANDIDATES = ("/usr/bin/dockerd", "/usr/sbin/dockerd", "/usr/local/bin/dockerd", "/snap/bin/docker")


@frozen
class DockerRuntime:
    name: str
    path: str | None
    args: tuple[str, ...] = ()


@frozen
class SocketAnswer:
    """A daemon socket other than the configured one, and whether a daemon answers there (`GET /_ping`)."""

    endpoint: str  # unix:///…
    via: str  # what it is, in words: "the default socket", "rootless Docker", "the docker context 'x'"
    state: str  # a docker_client.PING_STATES word
    server: str | None = None  # the Server header of /_ping ("Docker/29.7.2 (linux)")
    podman: bool = False
    # Where the client goes once DOCKER_HOST is unset (the current docker context, else the default socket).
    without_docker_host: bool = False

    @property
    def answers(self) -> bool:
        return self.state == "answers"


@frozen
class DockerFacts:
    """What the Docker daemon reports (or why it could not be asked)."""

    endpoint: str
    endpoint_source: str  # DOCKER_HOST | DOCKER_CONTEXT | currentContext | default
    context: str | None
    is_local: bool  # the daemon runs on this machine (facts/locality.py: its address and its own word)
    socket_path: str | None
    reachable: bool
    error_kind: str | None = None  # a docker_client.KINDS word when not reachable
    error: str | None = None
    socket_exists: bool | None = None
    socket_gid: int | None = None
    socket_group: str | None = None
    socket_mode: int | None = None
    user_uid: int | None = None
    user_groups: tuple[int, ...] = ()
    dockerd_installed: tuple[str, ...] = ()  # dockerd binaries found on this machine
    other_sockets: tuple[str, ...] = ()  # daemon sockets that exist besides the one we used
    # The unreachable daemon's alternatives: the well-known sockets and the current context's, pinged.
    alternatives: tuple[SocketAnswer, ...] = ()
    server_version: str | None = None
    api_version: str | None = None
    min_api_version: str | None = None
    platform_name: str | None = None
    components: tuple[str, ...] = ()
    operating_system: str | None = None
    name: str | None = None
    docker_root_dir: str | None = None
    runtimes: tuple[DockerRuntime, ...] = ()
    default_runtime: str | None = None
    cgroup_driver: str | None = None
    cgroup_version: str | None = None
    security_options: tuple[str, ...] = ()
    cdi_spec_dirs: tuple[str, ...] | None = None  # None: the daemon does not report it (< 25.0)
    discovered_devices: tuple[str, ...] | None = None  # None: not reported (< 28.2 / API < 1.50, or empty)
    warnings: tuple[str, ...] = ()
    info_error: str | None = None  # /version answered but /info did not
    answer_s: float | None = None  # how long /version took (None: not measured, old bundle)
    kernel_version: str | None = None  # the daemon host's kernel (/info KernelVersion)
    # Why the daemon's host is not this machine (facts/locality.py); None when it is this machine.
    remote_reason: str | None = None
    this_host: str | None = None  # this machine's hostname (host_identity), what the engine's Name is compared with
    extra: Mapping[str, Any] = field(default_factory=dict)

    # -- derived ------------------------------------------------------------------------------
    def runtime(self, name: str) -> DockerRuntime | None:
        return next((r for r in self.runtimes if r.name == name), None)

    @property
    def answering_alternative(self) -> SocketAnswer | None:
        """The first other socket where a daemon answers: the one DOCKER_HOST's absence leads to, else the
        well-known ones in SOCKET_ROLES order."""
        return next((a for a in self.alternatives if a.answers), None)

    @property
    def runtime_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.runtimes)

    @property
    def version_tuple(self) -> tuple[int, ...] | None:
        return version_tuple(self.server_version)

    @property
    def api_tuple(self) -> tuple[int, ...] | None:
        return version_tuple(self.api_version)

    def security(self, name: str) -> bool:
        return any(o == f"name={name}" or o.startswith(f"name={name},") for o in self.security_options)

    @property
    def rootless(self) -> bool:
        return self.security("rootless")

    @property
    def is_podman(self) -> bool:
        text = " ".join([self.platform_name or "", *self.components])
        return "podman" in text.lower()

    @property
    def is_desktop(self) -> bool:
        # Docker Desktop for Linux: docs/failure-modes.md #38.
        return (
            (self.operating_system or "").startswith("Docker Desktop")
            or self.name == "docker-desktop"
            or (self.platform_name or "").startswith("Docker Desktop")
            or "/.docker/desktop/" in (self.socket_path or "")
        )

    @property
    def is_snap(self) -> bool:
        # Snap Docker keeps its data under /var/snap/docker (docs/failure-modes.md #40).
        return (self.docker_root_dir or "").startswith("/var/snap/docker") or "/snap/docker" in (self.socket_path or "")

    @property
    def is_remote(self) -> bool:
        return not self.is_local

    @property
    def cdi_enabled(self) -> bool | None:
        """True/False where the daemon says (CDISpecDirs non-empty); None where it cannot say (< 25)."""
        if self.cdi_spec_dirs is None:
            return None
        return bool(self.cdi_spec_dirs)




def _str_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value if v is not None)
    return ()


def parse_runtimes(raw: Any) -> tuple[DockerRuntime, ...]:
    if not isinstance(raw, Mapping):
        return ()
    out = []
    for name in sorted(raw):
        spec = raw[name] if isinstance(raw[name], Mapping) else {}
        path = spec.get("path")
        args = spec.get("runtimeArgs") or spec.get("args") or []
        out.append(DockerRuntime(str(name), str(path) if path else None, _str_tuple(args)))
    return tuple(out)


# What of `/info` is kept: what parse_version_info reads, and a few fields that help a person read
# a bundle. The rest (labels, proxies, registry mirrors, swarm addresses) is not needed and may
# hold credentials: engines before 20.10 return HttpProxy/HttpsProxy with their passwords (issue 14).
INFO_FIELDS = (
    "ServerVersion", "OperatingSystem", "Name", "DockerRootDir", "Runtimes", "DefaultRuntime",
    "CgroupDriver", "CgroupVersion", "SecurityOptions", "CDISpecDirs", "DiscoveredDevices", "Warnings",
    "KernelVersion", "Architecture", "OSType", "Driver", "LoggingDriver", "ContainerdCommit", "RuncCommit",
)


def parse_version_info(
    base: Mapping[str, Any], version: Mapping[str, Any] | None, info: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Fields of DockerFacts from `/version` and `/info` JSON (as captured by `docker version/info`)."""
    out: dict[str, Any] = dict(base)
    if version:
        # `docker version --format '{{json .}}'` nests under "Server"; the API answer is flat.
        server: Mapping[str, Any] = version["Server"] if isinstance(version.get("Server"), Mapping) else version
        platform: Mapping[str, Any] = server["Platform"] if isinstance(server.get("Platform"), Mapping) else {}
        out.update(
            server_version=server.get("Version"),
            api_version=server.get("ApiVersion"),
            min_api_version=server.get("MinAPIVersion"),
            platform_name=platform.get("Name") or None,
            components=tuple(
                str(c.get("Name")) for c in server.get("Components") or [] if isinstance(c, Mapping) and c.get("Name")
            ),
        )
    if info:
        discovered = info.get("DiscoveredDevices")
        out.update(
            server_version=out.get("server_version") or info.get("ServerVersion"),
            operating_system=info.get("OperatingSystem"),
            name=info.get("Name"),
            docker_root_dir=info.get("DockerRootDir"),
            runtimes=parse_runtimes(info.get("Runtimes")),
            default_runtime=info.get("DefaultRuntime"),
            cgroup_driver=info.get("CgroupDriver"),
            cgroup_version=str(info["CgroupVersion"]) if info.get("CgroupVersion") else None,
            security_options=_str_tuple(info.get("SecurityOptions")),
            # CDISpecDirs: API 1.44 / 25.0, always an array there; absent before (internals §2.3).
            cdi_spec_dirs=_str_tuple(info["CDISpecDirs"]) if isinstance(info.get("CDISpecDirs"), list) else None,
            discovered_devices=tuple(
                str(d.get("ID")) for d in discovered if isinstance(d, Mapping) and d.get("ID")
            )
            if isinstance(discovered, list)
            else None,
            warnings=_str_tuple(info.get("Warnings")),
            kernel_version=str(info["KernelVersion"]) if info.get("KernelVersion") else None,
        )
    return out


def _endpoint(ctx: FactContext) -> Endpoint:
    raw = ctx.host.call("docker.endpoint", [], lambda: resolve_endpoint().to_dict(), expect=dict)
    return Endpoint.from_dict(raw)


def _api(op: str, timeout_s: float) -> Any:
    """Produce function body: one SDK call, JSON out, HostCallError for any failure."""
    import time

    fast = _fast_get(op, timeout_s)
    if fast is not None:
        return fast
    client = open_client(timeout_s)
    try:
        if op == "version":
            started = time.monotonic()
            answer = json.loads(json.dumps(client.version()))
            if isinstance(answer, dict):
                remember_api_version(resolve_endpoint().host, answer.get("ApiVersion"))
                answer[ELAPSED_KEY] = round(time.monotonic() - started, 3)
            return answer
        if op == "info":
            info = client.info()
            return json.loads(json.dumps({k: info[k] for k in INFO_FIELDS if k in info}))
    except HostCallError:
        raise
    except Exception as e:
        raise to_host_call_error(e) from None
    raise ValueError(op)


def _fast_get(op: str, timeout_s: float) -> dict[str, Any] | None:
    """The answer the SDK would give, asked without it over a local unix socket (docker_http.py: the SDK's
    import costs more than the daemon's answer); None when the SDK must ask (another endpoint, or a failure,
    which then keeps the SDK's words)."""
    import time

    from .docker_http import TimedOut, Unanswered, get_json

    path = fast_socket()
    if path is None:
        return None
    started = time.monotonic()
    try:
        answer = get_json(path, f"/{op}", timeout_s)
    except Unanswered:
        return None
    except TimedOut as e:
        raise HostCallError("timeout", str(e), {"exception": "ReadTimeout"}) from None  # as to_host_call_error
    if not isinstance(answer, dict):
        return None
    if op == "version":
        remember_api_version(resolve_endpoint().host, answer.get("ApiVersion"))
        answer[ELAPSED_KEY] = round(time.monotonic() - started, 3)
        return answer
    return {k: answer[k] for k in INFO_FIELDS if k in answer}


def _identity() -> dict[str, Any]:
    return {"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(set(os.getgroups()))}


def _group_name(ctx: FactContext, gid: int) -> str | None:
    try:
        text = ctx.host.read_text("/etc/group")
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2] == str(gid):
            return parts[0]
    return None


# Errors after which another socket may be the daemon the user meant (a typo, a stale path, rootless vs rootful).
ASK_ALTERNATIVES = ("no-socket", "connection-refused", "unknown")


def _unreachable_details(ctx: FactContext, ep: Endpoint, kind: str | None = None) -> dict[str, Any]:
    """What helps tell the causes apart: the socket itself, who we are, what else is installed."""
    out: dict[str, Any] = {}
    if ep.socket_path:
        try:
            st = ctx.host.stat(ep.socket_path)
            out.update(socket_exists=True, socket_gid=st.gid, socket_mode=st.mode)
            out["socket_group"] = _group_name(ctx, st.gid)
        except OSError:
            out["socket_exists"] = False
    ident = ctx.host.call("process.identity", [], _identity, expect=dict)
    out.update(user_uid=ident.get("uid"), user_groups=tuple(ident.get("groups") or ()))
    installed = []
    found = ctx.host.which("dockerd")
    if found:
        installed.append(found)
    for cand in DOCKERD_CANDIDATES:
        if cand not in installed and ctx.host.exists(cand):
            installed.append(cand)
    out["dockerd_installed"] = tuple(installed)
    others = []
    candidates = list(KNOWN_SOCKETS)
    uid = out.get("user_uid")
    if uid is not None:
        candidates.append(f"/run/user/{uid}/docker.sock")  # rootless default
    home = ctx.host.getenv("HOME")
    if home:
        candidates.append(f"{home}/.docker/desktop/docker.sock")  # Docker Desktop for Linux
    for cand in candidates:
        if cand != ep.socket_path and ctx.host.exists(cand):
            others.append(cand)
    out["other_sockets"] = tuple(others)
    if ep.socket_path and kind in ASK_ALTERNATIVES:
        out["alternatives"] = _alternatives(ctx, ep, uid)
    return out


def _fallback_endpoint(ctx: FactContext, ep: Endpoint) -> Endpoint | None:
    """Where the client goes once DOCKER_HOST is unset: the current docker context, else the default socket."""
    if ep.source != "DOCKER_HOST":
        return None
    try:
        raw = ctx.host.call("docker.endpoint.fallback", [], lambda: resolve_endpoint(False).to_dict(), expect=dict)
    except (HostCallError, NotRecorded):  # a broken context; a bundle from before this question
        return None
    return Endpoint.from_dict(raw)


def _alternatives(ctx: FactContext, ep: Endpoint, uid: int | None) -> tuple[SocketAnswer, ...]:
    """The sockets a daemon is usually found at, besides the configured one, each asked `GET /_ping` (read-only).

    Asked where the client itself would connect (this process's paths, not under --root): the fix is an
    `export DOCKER_HOST=…` / `unset DOCKER_HOST` for this client. Every answer goes through ctx.host.call.
    """
    candidates: list[tuple[str, str, bool]] = []
    fallback = _fallback_endpoint(ctx, ep)
    if fallback is not None and fallback.socket_path:
        via = f"the docker context {fallback.context!r}" if fallback.context else SOCKET_ROLES.get(
            fallback.socket_path, "the default socket")
        candidates.append((fallback.socket_path, via, True))
    candidates += [(path, role, False) for path, role in SOCKET_ROLES.items()]
    try:
        runtime_dir = ctx.host.getenv("XDG_RUNTIME_DIR")
    except NotRecorded:  # a bundle from before this question
        runtime_dir = None
    runtime_dir = runtime_dir or (f"/run/user/{uid}" if uid is not None else None)
    if runtime_dir:
        candidates += [(f"{runtime_dir.rstrip('/')}/{ROOTLESS_DOCKER}", "rootless Docker", False),
                       (f"{runtime_dir.rstrip('/')}/{ROOTLESS_PODMAN}", "rootless Podman", False)]
    seen = {ep.socket_path}
    out: list[SocketAnswer] = []
    for path, via, unset in candidates:
        if path in seen:
            continue
        seen.add(path)
        try:
            answer = ctx.host.call("docker.ping", [path], functools.partial(ping_socket, path), expect=dict)
        except NotRecorded:  # a bundle from before gpudoctor asked the well-known sockets
            return ()
        out.append(SocketAnswer(f"unix://{path}", via, str(answer.get("state") or "error"),
                                answer.get("server") or None, bool(answer.get("podman")), unset))
    return tuple(out)


@fact("docker", timeout_s=DOCKER_FACT_TIMEOUT_S)
def docker_fact(ctx: FactContext) -> DockerFacts:
    """Docker daemon: endpoint, reachability, version, runtimes, cgroups, security options, CDI fields."""
    timeout_s = float(ctx.options.get("docker_timeout_s", DOCKER_TIMEOUT_S))
    try:
        ep = _endpoint(ctx)
    except HostCallError as e:  # a broken context, or an address that cannot be parsed (bad-host)
        return DockerFacts(
            endpoint=str(e.data.get("endpoint") or "?"), endpoint_source=str(e.data.get("source") or "context"),
            context=e.data.get("context"), is_local=True, socket_path=None,
            reachable=False, error_kind=e.kind, error=e.message,
        )
    base: dict[str, Any] = {
        "endpoint": ep.host,
        "endpoint_source": ep.source,
        "context": ep.context,
        "is_local": ep.is_local,
        "socket_path": ep.socket_path,
    }
    if not ep.is_local:
        base["remote_reason"] = elsewhere(False, ep.host, None, None, None, None)

    def ask_info() -> Any:
        return ctx.host.call("docker.info", [ep.host], lambda: _api("info", timeout_s), expect=dict)

    # /info is asked while /version answers: it is not versioned, and each takes the daemon a few ms (dockerd runs
    # `runc --version` and `docker-init --version` for both), on the way to the first probe container (issue 12).
    # Only over the local socket without the SDK (docker_client.fast_socket), whose calls share nothing, and live.
    # Where /version fails its answer is not waited for, as /info was not asked before.
    if ctx.host.kind != "replay" and fast_socket() is not None:
        ask_info = Started(ask_info, "docker:info").result
    try:
        version = ctx.host.call("docker.version", [ep.host], lambda: _api("version", timeout_s), expect=dict)
    except HostCallError as e:
        return DockerFacts(reachable=False, error_kind=e.kind, error=e.message, **base,
                           **_unreachable_details(ctx, ep, e.kind))
    if isinstance(version, dict):
        version = dict(version)  # the replayed answer itself stays as recorded
    elapsed = version.pop(ELAPSED_KEY, None) if isinstance(version, dict) else None
    answer_s = float(elapsed) if isinstance(elapsed, (int, float)) else None
    info_error = None
    try:
        info = ask_info()
    except HostCallError as e:
        if e.kind == "timeout":  # answering /version but hanging on /info is a hung daemon, not a reachable one
            took = f" after {answer_s:.1f}s" if answer_s is not None else ""
            return DockerFacts(
                reachable=False, error_kind="timeout", answer_s=answer_s,
                error=f"/version answered{took}, /info did not answer within {timeout_s:g}s: {e.message}",
                **base, **_unreachable_details(ctx, ep),
            )
        info, info_error = None, f"{e.kind}: {e.message}"
    fields = parse_version_info(base, version, info)
    found = DockerFacts(reachable=True, info_error=info_error, answer_s=answer_s, **fields)
    return _located(ctx, found)


def _located(ctx: FactContext, docker: DockerFacts) -> DockerFacts:
    """The daemon's host judged against this machine's name and kernel (facts/locality.py)."""
    try:
        ident = ctx.get("host_identity")
        this_host, this_kernel = ident.hostname, ident.kernel
        if docker.name and any(host_label(docker.name) == host_label(alias) for alias in ident.aliases):
            this_host = docker.name  # the engine names this machine by its other name
    except FactMissing:
        this_host = this_kernel = None
    if docker.is_desktop:  # Docker Desktop's VM is its own finding (docker.engine), not a remote host
        return replace(docker, this_host=this_host)
    why = elsewhere(docker.is_local, docker.endpoint, docker.name, docker.kernel_version, this_host, this_kernel)
    return replace(docker, is_local=why is None, remote_reason=why, this_host=this_host)
