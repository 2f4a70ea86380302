"""Is the Docker daemon's host this machine? Pure: judged from what was read, no I/O.

Two signals, neither enough alone (issue 11 #4):
* the address: a unix socket, npipe, or tcp/ssh to localhost/127.0.0.1/::1 is this machine's — unless it is a tunnel
  (`ssh -L 2375:/var/run/docker.sock gpu-node`, a socket forwarded from a VM);
* the engine's own word: `/info` Name is the daemon host's hostname and KernelVersion its kernel
  (https://docs.docker.com/reference/api/engine/version/v1.43/#tag/System/operation/SystemInfo). A tcp:// address
  of this machine's own network interface names this machine, although it is not a loopback address.

So: a local address is another machine when the engine names another host (a tunnel, a VM's forwarded socket; or
gpudoctor in a container without `--root /host`, whose hostname is the container's: then the host layers it reads are
the container's view, not the host's, either); a remote address is this machine only when the engine names this
host *and* runs this kernel (default hostnames such as "ubuntu" are common across a fleet, so the name alone does
not make it this machine).
"""

from __future__ import annotations


def host_label(name: str | None) -> str | None:
    """The host name's first label, lower case: "gpu-17.example.com" and "GPU-17" are one host."""
    return (name or "").strip().split(".")[0].lower() or None


def elsewhere(address_local: bool, endpoint: str, engine_host: str | None, engine_kernel: str | None,
              this_host: str | None, this_kernel: str | None) -> str | None:
    """Why the daemon runs on another machine than the one gpudoctor reads, or None when it runs on this one."""
    theirs, ours = host_label(engine_host), host_label(this_host)
    if theirs is None or ours is None:  # unreachable, or an engine that gives no name: the address decides
        return None if address_local else f"{endpoint} is another machine's address"
    same_kernel = None if not (engine_kernel and this_kernel) else engine_kernel.strip() == this_kernel.strip()
    if address_local:
        if theirs != ours:
            return (f"the engine at {endpoint} runs on host {engine_host!r}, not on this machine ({this_host!r}): a "
                    "tunnel, a VM, or gpudoctor in a container without --root /host")
        return None
    if theirs == ours and same_kernel is True:
        return None  # this machine's own address
    return f"{endpoint} is another machine's address (the engine's host is {engine_host!r})"
