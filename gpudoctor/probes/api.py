"""The Docker API calls of a probe container, in one shape whichever client makes them.

A probe creates, starts, waits for, reads and removes its container; its run lists and removes what carries its
label (runner.ProbeRun.close). On a local unix socket these go over the socket with the standard library
(`SocketApi`, facts/docker_http.py): the Docker SDK's import (~200 ms of CPU: requests, urllib3) would otherwise
stand between the daemon's first answer and the first probe container. Everywhere else (tcp, TLS, ssh; an API
version not yet known; a docker config.json with proxies or HTTP headers, which the SDK applies) the SDK makes them
(`SdkApi`). Both send the same create body (`container_config`, the body docker-py's `create_container` builds:
tests/test_probe_api.py holds them to it) and fail the same way:

* `CallFailed`: the daemon answered with an error (its own words, `explanation`, and the HTTP status; no status for
  an image it does not have, as the SDK's ImageNotFound), or the request cannot be made at this API version;
* `NoAnswer`: the daemon took the request and did not answer in time (str: requests' ReadTimeout text);
* HostCallError (docker_client.to_host_call_error): the daemon could not be asked, or the connection broke.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

from ..facts.docker_client import _docker_config_dir, fast_socket, known_api_version, to_host_call_error
from ..gpu_requests.stack import version_tuple

# docker-py's messages, so that an outcome reads the same whichever client made the call.
NO_DEVICE_REQUESTS = "device_requests param is not supported in API versions < 1.40"
_IMAGE_NOT_FOUND = ("no such image", "not found: does not exist or no pull access", "repository does not exist",
                    "was found but does not match the specified platform")


class CallFailed(Exception):
    def __init__(self, explanation: str, status: int | None) -> None:
        super().__init__(explanation)
        self.explanation = explanation
        self.status = status


class NoAnswer(Exception):
    pass


def _bytes(size: str) -> int:
    """docker-py's parse_bytes for the sizes used here ("256m", "4g")."""
    units = {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
    text = size.strip().lower()
    if text[-1:] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def container_config(
    image: str, api_version: str, *, entrypoint: Sequence[str] | None, command: Sequence[str],
    environment: Sequence[str], labels: Mapping[str, str], user: str | None, memory: str, pids_limit: int,
    nano_cpus: int, log_max_size: str, read_only: bool, device_requests: Sequence[Mapping[str, Any]],
    runtime: str | None,
) -> dict[str, Any]:
    """The /containers/create body of a probe: what docker-py's `create_container(image, entrypoint=..., command=...,
    environment=..., labels=..., host_config=create_host_config(...), network_disabled=True, user=...)` sends.
    Raises CallFailed (no status) where the SDK raises InvalidVersion."""
    host_config: dict[str, Any] = {
        "Memory": _bytes(memory),
        "ReadonlyRootfs": bool(read_only),
        "NetworkMode": "none",
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "LogConfig": {"Type": "json-file", "Config": {"max-size": log_max_size, "max-file": "1"}},
        "PidsLimit": pids_limit,
        "NanoCpus": nano_cpus,
    }
    if runtime:
        host_config["Runtime"] = runtime
    if device_requests:
        negotiated = version_tuple(api_version)
        if negotiated is not None and negotiated < (1, 40):
            raise CallFailed(NO_DEVICE_REQUESTS, None)
        host_config["DeviceRequests"] = [
            {
                "Driver": r.get("Driver") or "",
                "Count": r.get("Count") or 0,
                "DeviceIDs": list(r.get("DeviceIDs") or []),
                "Capabilities": [list(c) for c in r.get("Capabilities") or []],
                "Options": dict(r.get("Options") or {}),
            }
            for r in device_requests
        ]
    return {
        "Hostname": None, "Domainname": None, "ExposedPorts": None, "User": user, "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
        "Env": list(environment) or None, "Cmd": list(command), "Image": image, "Volumes": None,
        "NetworkDisabled": True, "Entrypoint": list(entrypoint) if entrypoint is not None else None,
        "WorkingDir": None, "HostConfig": host_config, "NetworkingConfig": None, "MacAddress": None,
        "Labels": dict(labels), "StopSignal": None, "Healthcheck": None, "StopTimeout": None, "Runtime": None,
    }


def _explanation(body: bytes) -> str:
    """docker-py's APIError explanation: the JSON reply's "message", else the reply's text."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and "message" in data:
            return str(data["message"]).strip()
    except ValueError:
        pass
    return body.decode("utf-8", "replace").strip()


class SocketApi:
    """The probe calls over a local unix socket (facts/docker_http.exchange), one connection each."""

    kind = "socket"

    def __init__(self, socket_path: str, api_version: str, timeout_s: float) -> None:
        self.socket_path, self.version, self.timeout_s = socket_path, api_version, timeout_s

    def _call(self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None,
              timeout_s: float | None = None) -> bytes:
        from ..facts.docker_http import TimedOut, Unanswered, exchange

        try:
            status, _headers, data = exchange(self.socket_path, method, f"/v{self.version}{path}",
                                              timeout_s or self.timeout_s, query, body)
        except TimedOut as e:
            raise NoAnswer(str(e)) from None
        except (OSError, Unanswered) as e:
            raise to_host_call_error(e) from None
        if status >= 400:
            text = _explanation(data)
            image_missing = status == 404 and any(m in text.lower() for m in _IMAGE_NOT_FOUND)
            raise CallFailed(text, None if image_missing else status)
        return data

    @staticmethod
    def _json(data: bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError as e:
            raise to_host_call_error(e) from None  # not the daemon's JSON: kind "unknown"

    def create(self, config: Mapping[str, Any]) -> str:
        answer = self._json(self._call("POST", "/containers/create", body=config))
        if not isinstance(answer, dict) or not answer.get("Id"):
            raise to_host_call_error(ValueError(f"a create answer without an Id: {answer!r:.200}"))
        return str(answer["Id"])

    def start(self, cid: str) -> None:
        self._call("POST", f"/containers/{cid}/start")

    def wait(self, cid: str, timeout_s: float) -> dict[str, Any]:
        answer = self._json(self._call("POST", f"/containers/{cid}/wait", timeout_s=timeout_s))
        return answer if isinstance(answer, dict) else {}

    def logs(self, cid: str, tail: int | str) -> bytes:
        from ..facts.docker_http import demux

        query = {"stderr": "1", "stdout": "1", "timestamps": "0", "follow": "0", "tail": str(tail)}
        return demux(self._call("GET", f"/containers/{cid}/logs", query))

    def remove(self, cid: str) -> None:
        self._call("DELETE", f"/containers/{cid}", {"v": "0", "link": "0", "force": "1"})

    def containers(self, label: str) -> list[dict[str, Any]]:
        query = {"all": "1", "filters": json.dumps({"label": [label]})}
        answer = self._json(self._call("GET", "/containers/json", query))
        return list(answer) if isinstance(answer, list) else []


class SdkApi:
    """The same calls through the Docker SDK's low-level client."""

    kind = "sdk"

    def __init__(self, api: Any) -> None:
        self.api = api
        self.version = str(api.api_version)

    def _do(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import docker

        try:
            return fn(*args, **kwargs)
        except docker.errors.ImageNotFound as e:
            raise CallFailed(sdk_explanation(e), None) from None
        except docker.errors.APIError as e:
            raise CallFailed(sdk_explanation(e), getattr(getattr(e, "response", None), "status_code", None)) from None
        except docker.errors.InvalidVersion as e:
            raise CallFailed(str(e), None) from None
        except Exception as e:  # requests' and the OS's: no answer in time, or none possible
            if "timed out" in str(e).lower() or "timeout" in type(e).__name__.lower():
                raise NoAnswer(str(e)) from None
            raise to_host_call_error(e) from None

    def create(self, config: Mapping[str, Any]) -> str:
        return str(self._do(self.api.create_container_from_config, dict(config))["Id"])

    def start(self, cid: str) -> None:
        self._do(self.api.start, cid)

    def wait(self, cid: str, timeout_s: float) -> dict[str, Any]:
        return dict(self._do(self.api.wait, cid, timeout=timeout_s))

    def logs(self, cid: str, tail: int | str) -> bytes:
        return bytes(self._do(self.api.logs, cid, stdout=True, stderr=True, tail=tail))

    def remove(self, cid: str) -> None:
        self._do(self.api.remove_container, cid, force=True)

    def containers(self, label: str) -> list[dict[str, Any]]:
        return list(self._do(self.api.containers, all=True, filters={"label": label}))


def sdk_explanation(exc: BaseException) -> str:
    """The daemon's own words for an SDK APIError (`explanation`), else the exception text."""
    text = getattr(exc, "explanation", None)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text or exc).strip()


def _config_needs_sdk() -> bool:
    """Does the docker CLI's config.json set what the SDK applies to every request (proxies injected into a new
    container's environment, extra HTTP headers)? docker-py reads the first of these files that exists."""
    for path in (os.path.join(_docker_config_dir(), "config.json"), os.path.expanduser("~/.dockercfg")):
        try:
            with open(path, encoding="utf-8") as f:
                general = json.load(f)
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return True  # the SDK decides what an unreadable config means
        return not isinstance(general, dict) or bool(general.get("proxies")) or bool(general.get("HttpHeaders"))
    return False


def _socket_and_version() -> tuple[str, str] | None:
    sock = fast_socket()
    version = known_api_version() if sock else None
    if sock and version and not _config_needs_sdk():
        return sock, version
    return None


def uses_sdk() -> bool:
    """Will the probes' calls go through the SDK (see module doc)?"""
    return _socket_and_version() is None


def probe_api(timeout_s: float) -> SocketApi | SdkApi:
    """The client for a probe's calls (see module doc). Raises HostCallError when the SDK's cannot be built."""
    found = _socket_and_version()
    if found is not None:
        return SocketApi(*found, timeout_s)
    from ..facts.docker_client import open_client

    return SdkApi(open_client(timeout_s).api)
