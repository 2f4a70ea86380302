"""The fact modules the probe containers wait on: the probes fact's own, and those of the facts it asks for
(`docker` and the host identity it may ask, `devices` and the `kernel` it asks, `nvml`).

`gpudoctor/runner.py` loads these first and starts the probes at once, then loads the other fact modules while the
daemon creates the containers. A fact asked for that is not among them is still found: the gathering then loads
the rest first (`FactContext._start`), so this list only decides how early the containers start."""

from . import identity, kernel, devices, nvml, docker, probes  # noqa: F401

# Started together rather than one after another as the probes fact asks for them (the others it asks start then).
FACTS = ("probes", "docker", "nvml", "devices")
