"""Imports every built-in fact module so that their @fact registrations happen.

Keep this list in chain order; each layer's module registers the facts its checks name in `needs`.
"""

from . import identity, nvml, platform, pci, kernel, devices  # noqa: F401
