"""The YAML worker's process (facts/yaml_worker.py): started early, so that PyYAML's import and the parse of the
host's CDI specs run on another core.

Why: `import yaml` costs 15–20 ms on the GPU machine (its reader compiles a regex over all of Unicode) and the
parse of the H200's spec 5–10 more; `gpudoctor check --no-probes` is CPU-bound in one process, where that made
the cdi fact the costliest of all (25–34 ms of CPU of about 200, benchmarks/check_speed.py). The console script
starts the worker before it loads the CLI (gpudoctor/entry.py), when the run will judge this host, its default
spec dirs hold YAML and the worker has a core of its own. The cdi fact still reads each file itself (through the host: bundles record it) and sends
the text; the document comes back as JSON. On any doubt (no worker, a worker that died or is slow, a document
that JSON cannot carry, a YAML error or a limit) the fact parses the text itself, as it always did: the worker
can make the answer come sooner, never different. It is killed at exit, and ends at its input's end anyway."""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import threading
import time
from typing import Any

from .cdi_dirs import DEFAULT_DIRS
from .child_python import command, end

# How long one answer may take (the first waits for the worker's own start and import) before the fact parses the
# text itself and the worker is let go.
ANSWER_TIMEOUT_S = 1.0

# The worker pays off where it has a core of its own: this process's main thread and its facts keep one busy, the
# Docker daemon's answers another. On the 2-core CI machine it made `check --no-probes` 23 ms slower, not faster.
MIN_CPUS = 3

_worker: "subprocess.Popen[bytes] | None" = None
_lock = threading.Lock()  # one request at a time on the pipe; also the exit's stop


def default_dirs_hold_yaml(dirs: tuple[str, ...] = DEFAULT_DIRS) -> bool:
    for d in dirs:
        try:
            with os.scandir(d) as entries:
                if any(e.name.endswith((".yaml", ".yml")) for e in entries):
                    return True
        except OSError:
            continue
    return False


def start(argv: list[str] | None = None) -> None:
    """Start the worker (`argv`: another command, for tests); a failure to start leaves the fact to parse alone."""
    global _worker
    if _worker is not None:
        return
    if argv is None:
        argv, env = command("gpudoctor.facts.yaml_worker", "yaml")
    else:
        env = dict(os.environ)
    try:
        _worker = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   env=env)
    except OSError:
        return
    atexit.register(stop)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def start_early() -> None:
    """Start the worker where this host's default spec dirs hold YAML for the cdi fact to parse, and it has a core."""
    if usable_cpus() >= MIN_CPUS and default_dirs_hold_yaml():
        start()


def load(text: str) -> tuple[bool, Any]:
    """(True, document) as the worker parsed it, else (False, None): the caller parses the text itself."""
    with _lock:
        proc = _worker
        if proc is None or proc.stdin is None or proc.stdout is None:
            return False, None
        try:
            proc.stdin.write(json.dumps({"text": text}).encode() + b"\n")
            proc.stdin.flush()
            line = _read_line(proc.stdout.fileno(), ANSWER_TIMEOUT_S)
            reply = json.loads(line) if line is not None else None
        except (OSError, ValueError):
            reply = None
        if not isinstance(reply, dict):
            _stop_locked()  # a worker that failed once is not asked again
            return False, None
    return ("doc" in reply), reply.get("doc")


def _read_line(fd: int, timeout: float) -> bytes | None:
    """One line from the pipe within `timeout`; None at its end or past the time."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None
        chunks.append(chunk)
        if chunk.endswith(b"\n"):  # the worker writes each answer whole, then waits for the next request
            return b"".join(chunks)


def stop() -> None:
    with _lock:
        _stop_locked()


def _stop_locked() -> None:
    global _worker
    proc, _worker = _worker, None
    if proc is not None:
        end(proc)
