"""Imports every built-in fact module so that their @fact registrations happen.

Keep this list in chain order; each layer's module registers the facts its checks name in `needs`.
"""

from . import identity, nvml, platform, pci, kernel, devices, probes, workload  # noqa: F401
from . import toolkit, cdi, docker, dockerd_process, daemon_config  # noqa: F401  (docker layer, issue 3)
