"""How gpudoctor starts a Python child of its own (the NVML worker, the YAML worker): `python -S -m <worker>`.

The child needs only one third-party module (pynvml, PyYAML) and gpudoctor's own package, and `site` costs more
than its answer on hosts with big environments (on the GPU machine's PyTorch venv, its .pth files alone took 60 ms
of the NVML worker's start): with `-S` the child skips it, and PYTHONPATH names where this process finds both
(the test bed's fake pynvml included, as it comes first on this process's path). Where the module is not found,
the child runs with `site`, as this process does, and says so itself."""

from __future__ import annotations

import os
import subprocess
import sys


def command(worker: str, needs: str) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of `python -m worker`, which imports `needs` and gpudoctor."""
    import importlib.util

    env = dict(os.environ)
    try:
        spec = importlib.util.find_spec(needs)
    except (ImportError, ValueError):
        spec = None
    origin = spec.origin if spec is not None else None
    if not origin or not os.path.isfile(origin):
        return [sys.executable, "-m", worker], env
    module_dir = os.path.dirname(origin)
    if os.path.basename(origin) == "__init__.py":  # a package: its parent is the path entry
        module_dir = os.path.dirname(module_dir)
    package_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds gpudoctor/
    first = [package_dir, module_dir]
    if module_dir != package_dir and _holds(package_dir, needs):
        # gpudoctor's own directory holds another copy of the module (a venv's, where this process was handed one on
        # PYTHONPATH, as the test bed hands its fake pynvml): the child must import the one this process imports.
        if _holds(module_dir, "gpudoctor"):
            return [sys.executable, "-m", worker], env  # no order finds both: with site
        first = [module_dir, package_dir]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(first + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])))
    return [sys.executable, "-S", "-m", worker], env


def _holds(path_entry: str, name: str) -> bool:
    """Whether an import of `name` would find a module or package of that name in this path entry."""
    return os.path.isfile(os.path.join(path_entry, name + ".py")) or os.path.isdir(os.path.join(path_entry, name))


def end(proc: "subprocess.Popen[bytes]") -> None:
    """Kill a child that is still running and reap it (a worker nobody waits for any more)."""
    if proc.poll() is None:
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except (subprocess.TimeoutExpired, OSError, ValueError):
        pass
