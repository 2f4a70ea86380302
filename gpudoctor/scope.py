"""What one verdict is about: one machine, never two (issue 11 #4).

With the daemon on this machine, every layer is this machine's and the verdict covers them all. With a remote
daemon (facts/locality.py: DOCKER_HOST=tcp://…, ssh://…, a context or a tunnel to another host) the layers are
read in two places: PCI, kernel, device nodes, NVML, toolkit and CDI files here; the Docker daemon and the probe
containers there. The question is whether *containers* get GPUs, and those containers run on the daemon's host,
so the verdict is the daemon's: this machine's host layers are read and shown, but not judged (a laptop without
a GPU is not the GPU node's root cause), and the run is partial (exit 4 when nothing judged is broken), naming the
layers it could not judge and where to run gpudoctor to judge them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from .frozen import frozen
from .model import CheckOutcome, Layer, Status, Verdict, skipped

# The layers read from this machine's files, kernel and NVML.
HOST_LAYERS = (Layer.PLATFORM, Layer.PCI, Layer.KERNEL, Layer.DEVICES, Layer.NVML, Layer.TOOLKIT, Layer.CDI)


@frozen
class Scope:
    """Where the layers were read. `remote_reason` is set when the daemon's host is not this machine."""

    this_machine: str  # "this machine (laptop)"
    daemon: str  # "tcp://gpu-node:2376 (engine host gpu-node)" or "unix:///var/run/docker.sock"
    remote_reason: str | None = None
    engine_host: str | None = None

    @property
    def remote(self) -> bool:
        return self.remote_reason is not None

    @property
    def where(self) -> dict[str, Any]:
        """Report field host.layers_read: which layers were read where."""
        return {"host_layers": self.this_machine, "docker_and_probes": self.daemon, "remote": self.remote,
                "why": self.remote_reason}

    @property
    def judged(self) -> str:
        """What the verdict covers, in words (Verdict.scope)."""
        if not self.remote:
            return f"the layers checked, all read on {self.this_machine}"
        return (f"the Docker daemon and probe containers at {self.daemon}; host layers were read on "
                f"{self.this_machine}, not the daemon's host, and are not judged")


def scope_of(values: Mapping[str, Any]) -> Scope:
    """The scope of a run from its facts (host_identity, docker)."""
    ident = values.get("host_identity")
    name = getattr(ident, "hostname", None)
    this = f"this machine ({name})" if name else "this machine"
    docker = values.get("docker")
    if docker is None:
        return Scope(this, "not asked")
    host = docker.name if docker.reachable else None
    daemon = docker.endpoint + (f" (engine host {host})" if host and docker.is_remote else "")
    return Scope(this, daemon, docker.remote_reason if docker.is_remote else None, host)


def not_judged(outcome: CheckOutcome, scope: Scope) -> CheckOutcome:
    """A host-layer check of this machine under a remote daemon: shown as read here, not judged."""
    if not scope.remote or outcome.check.layer not in HOST_LAYERS or outcome.outside_host:
        return outcome
    seen = [f"on this machine: {r.status.value}: {r.summary}" for r in outcome.results]
    worst = outcome.status
    result = skipped(
        f"not judged: read on {scope.this_machine}, and the daemon is remote ({scope.remote_reason}); run "
        f"gpudoctor on {scope.engine_host or 'the daemon host'} to judge its {outcome.check.layer.label}",
        details=seen,
        evidence={"not_judged": "remote-daemon", "this_machine_status": worst.value},
    )
    return replace(outcome, results=(result,))


def scoped_verdict(verdict: Verdict, scope: Scope) -> Verdict:
    """The verdict names its scope; under a remote daemon it is partial: the host layers were not judged."""
    if not scope.remote:
        return replace(verdict, scope=scope.judged)
    unjudged = tuple(layer.label for layer in HOST_LAYERS)
    note = (f"Host layers ({', '.join(unjudged)}) were read on {scope.this_machine}, not on the daemon's host: "
            f"run `gpudoctor check` on {scope.engine_host or 'the daemon host'} to judge them.")
    out = replace(verdict, scope=scope.judged, partial=True, unchecked=unjudged, notes=(*verdict.notes, note))
    if verdict.ready:
        warn = verdict.counts.get(Status.WARN.value, 0)
        headline = (f"Partial: nothing broken in the Docker daemon at {scope.daemon} and its containers; "
                    "host layers not judged (read on this machine, not the daemon's host)")
        if warn:
            headline += f" ({warn} warning{'s' if warn != 1 else ''})"
        out = replace(out, ready=False, headline=headline)
    return out
