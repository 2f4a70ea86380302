"""The NVML worker's process: how it is started, and one started early for the run to adopt.

NVML's answer is on the critical path of `gpudoctor check --no-probes` and of the per-GPU probe forms, and the
worker's own start (Python, then NVIDIA's 7,000-line bindings, compiled on every start where the environment
has no bytecode for them, as uv installs and PYTHONDONTWRITEBYTECODE leave it) costs more than NVML itself. So
the console script starts it before it imports the CLI (`gpudoctor/entry.py`), when the command line says the run
will ask NVML, and the nvml fact adopts that process instead of starting its own. An early worker that no run
adopts (a usage error, a run that ended first) is killed at exit: it only reads NVML, and nothing waits for it."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time

# One worker started before the CLI loaded, with the monotonic time it was started; taken at most once.
_early: tuple["subprocess.Popen[bytes]", float] | None = None
_early_lock = threading.Lock()  # the fact's adoption and the exit's discard may meet


def worker_command() -> tuple[list[str], dict[str, str]]:
    """`python -m gpudoctor.facts.nvml_worker`, without `site` where the two directories it needs are known.

    The worker needs only pynvml and gpudoctor's own package; `site` costs more than NVML's answer on hosts with big
    environments (on the GPU machine's PyTorch venv, its .pth files alone took 60 ms of the worker's start): with
    `-S` the child skips it, and PYTHONPATH names where this process finds both (the sim's fake pynvml included, as
    it comes first on this process's path). Where pynvml is not found, the worker runs as before and says so."""
    import importlib.util

    env = dict(os.environ)
    try:
        spec = importlib.util.find_spec("pynvml")
    except (ImportError, ValueError):
        spec = None
    origin = spec.origin if spec is not None else None
    if not origin or not os.path.isfile(origin):
        return [sys.executable, "-m", "gpudoctor.facts.nvml_worker"], env
    module_dir = os.path.dirname(origin)
    if os.path.basename(origin) == "__init__.py":  # a package: its parent is the path entry
        module_dir = os.path.dirname(module_dir)
    package_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds gpudoctor/
    first = [package_dir, module_dir]
    if module_dir != package_dir and _holds(package_dir, "pynvml"):
        # gpudoctor's own directory holds another pynvml (a venv's, where this process was handed one on
        # PYTHONPATH, as the test bed hands its fake): the worker must ask the NVML this process would ask.
        if _holds(module_dir, "gpudoctor"):
            return [sys.executable, "-m", "gpudoctor.facts.nvml_worker"], env  # no order finds both: with site
        first = [module_dir, package_dir]
    extra = first + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(extra))
    return [sys.executable, "-S", "-m", "gpudoctor.facts.nvml_worker"], env


def _holds(path_entry: str, name: str) -> bool:
    """Whether an import of `name` would find a module or package of that name in this path entry."""
    return os.path.isfile(os.path.join(path_entry, name + ".py")) or os.path.isdir(os.path.join(path_entry, name))


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
    proc = taken[0]
    if proc.poll() is None:
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except (subprocess.TimeoutExpired, OSError, ValueError):
        pass
