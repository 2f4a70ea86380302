"""One Docker SDK client per run, and the mapping of SDK failures to short error kinds.

Where the daemon is (docs/docker-gpu-internals.md §5.5): `DOCKER_HOST` (+ `DOCKER_TLS_VERIFY`,
`DOCKER_CERT_PATH`) wins; otherwise the docker CLI's context — `DOCKER_CONTEXT`, then
`currentContext` in `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`) — and finally
`unix:///var/run/docker.sock`. docker-py ≤ 7.1 ignores contexts in `from_env()`, so we resolve them
ourselves (the CLI's contexts/meta/<sha256(name)>/meta.json layout).

Everything here touches the machine, so facts call it only inside `ctx.host.call(..., produce)`:
a failure is raised as `HostCallError(kind, message)` and so recorded/replayed like any answer.
The `docker` package is imported inside functions (cli.py must stay light).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
from dataclasses import asdict
from typing import Any, Mapping
from urllib.parse import urlparse

from ..frozen import frozen
from .host import HostCallError

DEFAULT_SOCKET = "/var/run/docker.sock"
DEFAULT_HOST = f"unix://{DEFAULT_SOCKET}"

# Error kinds (HostCallError.kind) a Docker call can end in.
KINDS = (
    "no-socket",  # unix socket path does not exist: daemon not installed or not running
    "permission-denied",  # socket exists, this user may not connect (not in the docker group)
    "connection-refused",  # nothing listens (stale socket file, tcp port closed)
    "timeout",  # the daemon accepted but did not answer in time
    "remote-unreachable",  # tcp/ssh host cannot be reached (DNS, routing, refused on a remote host)
    "tls",  # certificates missing/invalid, or TLS spoken to a plain port
    "context",  # the selected docker context does not exist / is broken
    "bad-host",  # DOCKER_HOST / context endpoint cannot be parsed
    "ssh-unsupported",  # ssh:// endpoint but neither paramiko nor an ssh client is available
    "api-error",  # the daemon answered with an HTTP error
    "unknown",
)


@frozen
class Endpoint:
    """Where this run talks to the daemon, and why there."""

    host: str  # as docker-py takes it: unix:///…, tcp://h:p, ssh://u@h, npipe://…
    source: str  # "DOCKER_HOST" | "DOCKER_CONTEXT" | "currentContext" | "default"
    context: str | None
    tls_verify: bool
    cert_path: str | None

    @property
    def scheme(self) -> str:
        return urlparse(self.host).scheme or "unix"

    @property
    def socket_path(self) -> str | None:
        if self.scheme not in ("unix", "http+unix"):
            return None
        parsed = urlparse(self.host)
        return (parsed.netloc + parsed.path) or DEFAULT_SOCKET

    @property
    def hostname(self) -> str | None:
        return urlparse(self.host).hostname if self.scheme in ("tcp", "http", "https", "ssh") else None

    @property
    def is_local(self) -> bool:
        """The address is this machine's: a socket, or tcp/ssh to localhost or a loopback address (127.0.0.0/8,
        ::1). Whether the daemon there is this machine's is facts/locality.py's question."""
        if self.scheme in ("unix", "http+unix", "npipe"):
            return True
        name = self.hostname or ""
        if name == "localhost":
            return True
        import ipaddress

        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "scheme": self.scheme, "socket_path": self.socket_path, "is_local": self.is_local}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Endpoint:
        """The endpoint `to_dict` wrote (a recorded answer)."""
        return cls(raw["host"], raw["source"], raw.get("context"), bool(raw.get("tls_verify")), raw.get("cert_path"))


def _docker_config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def _current_context_name() -> tuple[str, str]:
    name = os.environ.get("DOCKER_CONTEXT")
    if name:
        return name, "DOCKER_CONTEXT"
    try:
        with open(os.path.join(_docker_config_dir(), "config.json"), encoding="utf-8") as f:
            data = json.load(f)
        name = data.get("currentContext") if isinstance(data, dict) else None
    except (OSError, ValueError):
        name = None
    return (name, "currentContext") if name else ("default", "default")


# What the Docker SDK's client connects to (docker/utils/utils.py parse_host; fd:// is a dockerd-only form).
CLIENT_SCHEMES = ("unix", "http+unix", "tcp", "http", "https", "ssh", "npipe")


def host_problem(host: str) -> str | None:
    """Why `host` is not a daemon address the client can use (None when it is one)."""
    try:
        parsed = urlparse(host)
        parsed.port  # raises ValueError for "tcp://h:notaport", "tcp://h:99999"  # noqa: B018
        parsed.hostname  # and for "tcp://[::1"  # noqa: B018
    except ValueError as e:
        return str(e)
    if not parsed.scheme or "://" not in host:
        return "it has no scheme (unix:///var/run/docker.sock, tcp://HOST:2376, ssh://USER@HOST)"
    if parsed.scheme not in CLIENT_SCHEMES:
        return f"unknown scheme {parsed.scheme!r} (known: {', '.join(CLIENT_SCHEMES)})"
    return None


def _checked(host: str, source: str, context: str | None) -> str:
    problem = host_problem(host)
    if problem:
        where = f"DOCKER_HOST={host!r}" if source == "DOCKER_HOST" else f"docker context {context!r} endpoint {host!r}"
        raise HostCallError("bad-host", f"{where} is not a Docker daemon address: {problem}",
                            {"endpoint": host, "source": source, "context": context})
    return host


def resolve_endpoint(use_docker_host: bool = True) -> Endpoint:
    """DOCKER_HOST, else the CLI's current context, else the default socket. Raises HostCallError
    ("context" for a missing or broken context, "bad-host" for an address that cannot be parsed).
    `use_docker_host=False`: where the client goes once DOCKER_HOST is unset (the fix of a DOCKER_HOST typo)."""
    env_host = os.environ.get("DOCKER_HOST") if use_docker_host else None
    tls_verify = os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
    cert_path = os.environ.get("DOCKER_CERT_PATH") or None
    if env_host:
        return Endpoint(_checked(env_host, "DOCKER_HOST", None), "DOCKER_HOST", None, tls_verify, cert_path)
    name, source = _current_context_name()
    if name == "default":
        return Endpoint(DEFAULT_HOST, source, "default" if source != "default" else None, tls_verify, cert_path)
    meta = _load_context_meta(name)
    if meta is None:
        raise HostCallError(
            "context",
            f"docker context {name!r} (from {source}) does not exist or has no docker endpoint",
            {"context": name},
        )
    host, skip_verify = meta
    tls_dir = _context_tls_dir(name)
    return Endpoint(_checked(host, source, name), source, name, os.path.isdir(tls_dir) and not skip_verify, None)


def fast_socket() -> str | None:
    """The local unix socket that read-only GETs may ask without the SDK (docker_http.py), or None: another
    kind of endpoint, TLS, or one that cannot be resolved (the SDK then asks, and says what is wrong)."""
    try:
        ep = resolve_endpoint()
    except HostCallError:
        return None
    if ep.scheme in ("unix", "http+unix") and ep.socket_path and not ep.tls_verify:
        return ep.socket_path
    return None


def _context_id(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()


def _context_tls_dir(name: str) -> str:
    return os.path.join(_docker_config_dir(), "contexts", "tls", _context_id(name), "docker")


def _load_context_meta(name: str) -> tuple[str, bool] | None:
    """(host, skip_tls_verify) from `$DOCKER_CONFIG/contexts/meta/<sha256(name)>/meta.json`.

    Read directly: docker-py ≤ 7.1 looks for contexts next to config.json and finds none when
    config.json does not exist (docker/context/config.py get_context_dir).
    """
    path = os.path.join(_docker_config_dir(), "contexts", "meta", _context_id(name), "meta.json")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise HostCallError("context", f"docker context {name!r}: cannot read {path}: {e}", {"context": name}) from None
    endpoint = (meta.get("Endpoints") or {}).get("docker") if isinstance(meta, dict) else None
    if not isinstance(endpoint, dict) or not endpoint.get("Host"):
        return None
    return str(endpoint["Host"]), bool(endpoint.get("SkipTLSVerify"))


_CACHE: dict[tuple[Any, ...], Any] = {}
_CACHE_LOCK = threading.Lock()
# The API version each endpoint's daemon answered with (/version "ApiVersion"), once the docker fact asked: a
# client built with it skips the /version round trip of `version="auto"` (one per client, and the probes open
# a client per timeout); "auto" resolves to the same version.
_API_VERSIONS: dict[str, str] = {}


def remember_api_version(host: str, version: Any) -> None:
    if isinstance(version, str) and version.replace(".", "").isdigit():
        with _CACHE_LOCK:
            _API_VERSIONS[host] = version


def known_api_version() -> str | None:
    """The API version this run's endpoint answered with, once the docker fact asked (None before, or unresolvable)."""
    try:
        host = resolve_endpoint().host
    except HostCallError:
        return None
    with _CACHE_LOCK:
        return _API_VERSIONS.get(host)


def reset_client_cache() -> None:
    """Forget cached clients (tests; a long-lived process that changes DOCKER_HOST)."""
    with _CACHE_LOCK:
        clients = list(_CACHE.values())
        _CACHE.clear()
        _API_VERSIONS.clear()
    for c in clients:
        try:
            c.close()
        except Exception:
            pass


def open_client(timeout_s: float = 10.0) -> Any:
    """A cached `docker.DockerClient` for this run's endpoint (see module doc).

    Raises HostCallError with a kind from KINDS; never a raw SDK exception.
    """
    endpoint = resolve_endpoint()
    key = (endpoint, timeout_s)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    try:
        client = _build_client(endpoint, timeout_s)
    except HostCallError:
        raise
    except Exception as e:
        raise to_host_call_error(e, endpoint) from None
    with _CACHE_LOCK:
        _CACHE.setdefault(key, client)
        return _CACHE[key]


def _build_client(endpoint: Endpoint, timeout_s: float) -> Any:
    import docker

    with _CACHE_LOCK:
        version = _API_VERSIONS.get(endpoint.host, "auto")
    kwargs: dict[str, Any] = {"base_url": endpoint.host, "version": version, "timeout": timeout_s}
    if endpoint.source == "DOCKER_HOST":
        # from_env's own TLS handling (DOCKER_TLS_VERIFY / DOCKER_CERT_PATH), without its version probe quirks.
        from docker.utils import kwargs_from_env

        env_kwargs = kwargs_from_env()
        if "tls" in env_kwargs:
            kwargs["tls"] = env_kwargs["tls"]
    elif endpoint.context:
        tls_dir = _context_tls_dir(endpoint.context)
        files = {n: os.path.join(tls_dir, n) for n in ("ca.pem", "cert.pem", "key.pem")}
        present = {n: p for n, p in files.items() if os.path.isfile(p)}
        if present:
            from docker.tls import TLSConfig

            cert = (present["cert.pem"], present["key.pem"]) if "cert.pem" in present and "key.pem" in present else None
            kwargs["tls"] = TLSConfig(client_cert=cert, ca_cert=present.get("ca.pem"), verify=endpoint.tls_verify)
    if endpoint.scheme == "ssh":
        # docker-py's ssh transport needs paramiko even with use_ssh_client (docker/transport/__init__.py).
        try:
            import paramiko  # noqa: F401
        except ImportError:
            raise HostCallError(
                "ssh-unsupported", f"{endpoint.host}: the Docker SDK needs paramiko for ssh:// (pip install 'docker[ssh]')"
            ) from None
    return docker.DockerClient(**kwargs)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes/contexts, and exceptions nested in args (requests/urllib3 wrap them so)."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or any(e is s for s in seen) or len(seen) > 50:
            continue
        seen.append(e)
        todo.extend([e.__cause__, e.__context__])
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    return seen


def classify(exc: BaseException, endpoint: Endpoint | None = None) -> str:
    """The error kind (see KINDS) of an SDK / requests / OS exception."""
    chain = _chain(exc)
    text = " ".join(f"{type(e).__name__}: {e}" for e in chain)
    names = {type(e).__name__ for e in chain}
    errnos = {getattr(e, "errno", None) for e in chain}
    remote = endpoint is not None and not endpoint.is_local

    if names & {"APIError", "NotFound", "ImageNotFound"} and not names & {"ConnectionError"}:
        return "api-error"
    if names & {"TLSParameterError", "SSLError", "SSLCertVerificationError"} or "CERTIFICATE_VERIFY_FAILED" in text:
        return "tls"
    if names & {"ContextNotFound", "ContextException", "MissingContextParameter"}:
        return "context"
    if "Install paramiko" in text:
        return "ssh-unsupported"
    if (
        "Invalid bind address" in text
        or "invalid protocol" in text.lower()
        or "Invalid port" in text
        or "Port could not be cast" in text
    ):
        return "bad-host"
    if errno.EACCES in errnos or "PermissionError" in names or "Permission denied" in text:
        return "permission-denied"
    if errno.ENOENT in errnos or "FileNotFoundError" in names:
        return "no-socket"
    timed_out = (
        names & {"ReadTimeout", "ConnectTimeout", "TimeoutError", "timeout", "ReadTimeoutError", "ConnectTimeoutError"}
        or "timed out" in text
    )
    unreachable = (
        names & {"gaierror", "NameResolutionError"}
        or errnos & {errno.ENETUNREACH, errno.EHOSTUNREACH}
        or "Name or service not known" in text
        or "Failed to resolve" in text
        or "No route to host" in text
    )
    if unreachable:
        return "remote-unreachable"
    if timed_out:
        return "remote-unreachable" if remote and "ConnectTimeout" in text else "timeout"
    if errno.ECONNREFUSED in errnos or "ConnectionRefusedError" in names or "Connection refused" in text:
        return "remote-unreachable" if remote else "connection-refused"
    return "unknown"


def to_host_call_error(exc: BaseException, endpoint: Endpoint | None = None) -> HostCallError:
    """Map an SDK exception to HostCallError(kind, message, data) — the form facts record."""
    if isinstance(exc, HostCallError):
        return exc
    kind = classify(exc, endpoint)
    data: dict[str, Any] = {"exception": type(exc).__name__}
    if endpoint is not None:
        data["endpoint"] = endpoint.host
    status = getattr(exc, "status_code", None)
    if status is not None:
        data["status_code"] = status
    explanation = getattr(exc, "explanation", None)
    message = str(explanation) if explanation else str(exc)
    return HostCallError(kind, message, data)


# What a /_ping over a unix socket can end in (ping_socket): one word each, recorded as data.
PING_STATES = ("answers", "no-socket", "permission-denied", "refused", "not-a-socket", "timeout", "error")


def ping_socket(path: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """`GET /_ping` on a unix socket, read-only: {"state": a PING_STATES word, "server": the Server header,
    "podman": whether it answers as Podman (its Libpod-Api-Version header)}. Never raises.

    The Engine API's /_ping answers "OK" with the headers Api-Version and Server ("Docker/29.7.2 (linux)");
    Podman's compat API adds Libpod-Api-Version (https://docs.docker.com/reference/api/engine/version/v1.47/#tag/System/operation/SystemPing).
    """
    from .docker_http import TimedOut, Unanswered, exchange

    out: dict[str, Any] = {"state": "error", "server": None, "podman": False}
    try:
        status, headers, _body = exchange(path, "GET", "/_ping", timeout_s)
    except FileNotFoundError:
        out["state"] = "no-socket"
    except PermissionError:
        out["state"] = "permission-denied"
    except ConnectionRefusedError:
        out["state"] = "refused"
    except TimedOut:
        out["state"] = "timeout"
    except Unanswered:  # something answers, but not HTTP
        out["state"] = "error"
    except OSError as e:
        out["state"] = "not-a-socket" if e.errno in (errno.ENOTSOCK, errno.ENOTDIR, errno.EPROTOTYPE) else "error"
    else:
        out.update(state="answers" if status == 200 else "error", server=headers.get("server") or None,
                   podman="libpod-api-version" in headers)
    return out


def socket_peer_pid(path: str, timeout_s: float = 2.0) -> int | None:
    """The pid of the process that created a listening unix socket (SO_PEERCRED), or None.

    With systemd socket activation (`-H fd://`) the listener is pid 1, not dockerd; callers
    check what the pid is.
    """
    import struct

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        s.connect(path)
        creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, _uid, _gid = struct.unpack("3i", creds)
        return pid or None
    except OSError:
        return None
    finally:
        s.close()
