"""The SDK-free GETs (gpudoctor/facts/docker_http.py) against a scripted unix-socket server: a 200 is the
JSON body, whatever the framing; anything else is `Unanswered` (the SDK asks again), and silence a timeout
in the SDK's words."""

from __future__ import annotations

import socket
import threading

import pytest

from gpudoctor.facts.docker_http import TimedOut, Unanswered, get_json


def serve(tmp_path, reply: bytes | None):
    path = str(tmp_path / "d.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    seen: list[bytes] = []

    def run() -> None:
        conn, _ = srv.accept()
        seen.append(conn.recv(4096))
        if reply is None:  # took the request, never answers
            threading.Event().wait(2)
        else:
            conn.sendall(reply)
        conn.close()
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return path, seen


def test_exact_length_and_chunked(tmp_path):
    body = b'{"ApiVersion":"1.43"}'
    path, seen = serve(tmp_path, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert get_json(path, "/version", 2) == {"ApiVersion": "1.43"}
    assert seen[0].startswith(b"GET /version HTTP/1.1\r\n")
    (tmp_path / "c").mkdir()
    path, seen = serve(tmp_path / "c", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[{\"a\"\r\n5\r\n:1}]\n\r\n0\r\n\r\n")
    assert get_json(path, "/containers/json", 2, {"all": "1", "filters": '{"label": ["x"]}'}) == [{"a": 1}]
    assert b"/containers/json?all=1&filters=" in seen[0]


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnot",
    b"garbage",
])
def test_anything_else_is_for_the_sdk(tmp_path, reply):
    path, _ = serve(tmp_path, reply)
    with pytest.raises(Unanswered):
        get_json(path, "/info", 2)


def test_no_socket_is_for_the_sdk(tmp_path):
    with pytest.raises(Unanswered):
        get_json(str(tmp_path / "absent.sock"), "/version", 1)


def test_silence_is_a_timeout_in_the_sdks_words(tmp_path):
    path, _ = serve(tmp_path, None)
    with pytest.raises(TimedOut, match=r"Read timed out. \(read timeout=0.3\)"):
        get_json(path, "/version", 0.3)
