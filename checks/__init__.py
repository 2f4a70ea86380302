"""Built-in checks, imported as `gpudoctor.checks`.

One module per layer, listed here in chain order (bottom up); the order of this list and of each
module's `CHECKS` tuple is the order of the report. tests/test_checks_contract.py asserts that
every module in this folder is listed.
"""

from __future__ import annotations

from ..checking import Check
from . import cdi, containers, devices, docker, kernel, nvml, pci, platform, probe_image, toolkit, workload

# The containers layer has three modules: the probe matrix, the probe image, and the user's own workload.
BUILTIN_MODULES = (platform, pci, kernel, devices, nvml, toolkit, cdi, docker, containers, probe_image, workload)

BUILTIN_CHECKS: tuple[Check, ...] = tuple(c for m in BUILTIN_MODULES for c in m.CHECKS)
