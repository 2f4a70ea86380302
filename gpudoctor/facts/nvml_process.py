"""The NVML worker's process: how it is started, and one started early for the run to adopt.

NVML's answer is on the critical path of `gpudoctor check --no-probes` and of the per-GPU probe forms, and the
worker's own start (Python, then NVIDIA's 7,000-line bindings, compiled on every start where the environment
has no bytecode for them, as uv installs and PYTHONDONTWRITEBYTECODE leave it) costs more than NVML itself. So
the console script starts it before it imports the CLI (`gpudoctor/entry.py`), when the command line says the run
will ask NVML, and the nvml fact adopts that process instead of starting its own. An early worker that no run
adopts (a usage error, a run that ended first) is killed at exit: it only reads NVML, and nothing waits for it."""

from __future__ import annotations

import atexit
import subprocess
import threading
import time

from .child_python import command, end

# One worker started before the CLI loaded, with the monotonic time it was started; taken at most once.
_early: tuple["subprocess.Popen[bytes]", float] | None = None
_early_lock = threading.Lock()  # the fact's adoption and the exit's discard may meet


def worker_command() -> tuple[list[str], dict[str, str]]:
    """`python -S -m gpudoctor.facts.nvml_worker`, where this process finds pynvml and gpudoctor (child_python)."""
    return command("gpudoctor.facts.nvml_worker", "pynvml")


def spawn() -> "subprocess.Popen[bytes]":
    """Start a worker (OSError when it cannot be started at all)."""
    cmd, env = worker_command()
    return subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def start_early() -> None:
    """Start the worker now, for the run to adopt; a failure to start is left for the fact to meet and report."""
    global _early
    if _early is not None:
        return
    try:
        _early = (spawn(), time.monotonic())
    except OSError:
        return
    atexit.register(_discard_unadopted)


def adopt() -> tuple["subprocess.Popen[bytes]", float] | None:
    """The early worker and when it started, once; None when there is none (or it was taken)."""
    global _early
    with _early_lock:
        taken, _early = _early, None
    return taken


def _discard_unadopted() -> None:
    taken = adopt()
    if taken is None:
        return
    end(taken[0])
