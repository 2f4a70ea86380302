"""Docker API calls over the daemon's unix socket, with the standard library only.

Why: every run asks the daemon `/version` and `/info` (the docker fact), and the Docker SDK (docker-py,
requests, urllib3) costs ~200 ms of CPU to import — more than the daemon takes to answer — so `check
--no-probes` would spend most of its time importing a client, and the first probe container would wait for it.
When the endpoint is a local unix socket, the docker fact's GETs (`get_json`) and the probe containers' calls
(`exchange`, through gpudoctor/probes/api.py) are made here; everything else (tcp, TLS, ssh, contexts over tcp)
goes through the SDK (docker_client.py).

Same answers, same errors: a 200 answer is the JSON body the SDK would have returned (the unversioned path
is the daemon's newest API version, which is what the SDK's `version="auto"` picks). For `get_json`, anything
else — the socket cannot be reached, an HTTP error, a reply that is not plain JSON — raises `Unanswered`, and the
caller asks again through the SDK, so that failures keep the SDK's kinds and words (docker_client.classify). Only
a daemon that took the request and did not answer in time is reported from here (asking again would double the
wait), in the SDK's own words. `exchange` leaves the status to its caller and raises the OS's own errors, which
docker_client.classify reads as it reads them inside the SDK's.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import quote, urlencode

# A reply bigger than this is not a /version or /info answer (a few KiB).
MAX_REPLY_BYTES = 8 << 20


class Unanswered(Exception):
    """The fast path could not get a plain 200 JSON answer: ask through the SDK."""


class TimedOut(Exception):
    """The daemon took the request and did not answer within the timeout. `str()` is the SDK's message."""


def get_json(socket_path: str, path: str, timeout_s: float, query: dict[str, str] | None = None) -> Any:
    """GET `path` (e.g. "/version") from the daemon at `socket_path`; the decoded JSON body."""
    try:
        status, headers, body = exchange(socket_path, "GET", path, timeout_s, query)
    except OSError as e:  # no socket, permission denied, refused, reset: the SDK says which, in its words
        raise Unanswered(str(e)) from None
    if status != 200:
        raise Unanswered(f"HTTP {status}")
    try:
        return json.loads(body)
    except ValueError:
        raise Unanswered("not JSON") from None


def exchange(
    socket_path: str, method: str, path: str, timeout_s: float, query: dict[str, str] | None = None,
    body: Any = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request to the daemon at `socket_path` (a JSON `body` when given): (status, headers, body).

    Raises TimedOut when the daemon took the request and did not answer within `timeout_s` (each read),
    OSError when it could not be asked or the connection broke (ConnectionRefusedError, FileNotFoundError,
    ConnectionResetError, ...: what docker_client.classify reads), Unanswered for a reply that is not HTTP."""
    target = quote(path) + (f"?{urlencode(query)}" if query else "")
    payload = b"" if body is None else json.dumps(body).encode("utf-8")
    head = f"{method} {target} HTTP/1.1\r\nHost: docker\r\nUser-Agent: gpudoctor\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    elif method != "GET":
        head += "Content-Length: 0\r\n"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        try:
            sock.connect(socket_path)
            sock.sendall(head.encode("ascii") + b"\r\n" + payload)
        except socket.timeout:
            raise _timed_out(timeout_s) from None
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise Unanswered("reply too large")
        except socket.timeout:
            raise _timed_out(timeout_s) from None
    finally:
        sock.close()
    if not chunks:
        raise ConnectionResetError("Connection aborted: the daemon closed the connection without a response")
    return _decode(b"".join(chunks))


def _timed_out(timeout_s: float) -> TimedOut:
    """requests' ReadTimeout text, as the SDK would have raised it (docker_client.classify: "timeout")."""
    return TimedOut(f"UnixHTTPConnectionPool(host='localhost', port=None): Read timed out. (read timeout={timeout_s})")


def _decode(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise Unanswered("no HTTP header")
    lines = head.decode("iso-8859-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or not status[1].isdigit():
        raise Unanswered(lines[0])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _unchunk(body)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise Unanswered("bad Content-Length") from None
        if len(body) < length:
            raise Unanswered("short reply")
        body = body[:length]
    return int(status[1]), headers, body


def demux(raw: bytes) -> bytes:
    """The payload of a multiplexed log stream (8-byte frame headers: stream, 0, 0, 0, big-endian size), frames
    joined in order, as the SDK's `logs()` returns it for a container without a TTY; `raw` itself when it is not
    framed so (a TTY's raw stream)."""
    out = bytearray()
    at = 0
    while at < len(raw):
        frame = raw[at:at + 8]
        if len(frame) < 8 or frame[0] not in (0, 1, 2) or frame[1:4] != b"\0\0\0":
            return raw
        size = int.from_bytes(frame[4:8], "big")
        out += raw[at + 8:at + 8 + size]
        at += 8 + size
    return bytes(out)


def _unchunk(body: bytes) -> bytes:
    out = bytearray()
    while True:
        line, sep, rest = body.partition(b"\r\n")
        if not sep:
            raise Unanswered("truncated chunked reply")
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise Unanswered("bad chunk size") from None
        if size == 0:
            return bytes(out)
        if len(rest) < size + 2:
            raise Unanswered("truncated chunk")
        out += rest[:size]
        body = rest[size + 2:]
