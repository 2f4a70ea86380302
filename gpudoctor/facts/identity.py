"""Which machine this is: hostname and kernel release (for the report header)."""

from __future__ import annotations


from ..frozen import frozen
from .host import NotRecorded
from .hostfiles import read_file
from .registry import FactContext, fact


@frozen
class HostIdentity:
    hostname: str | None
    kernel: str | None
    # Other names this machine answers to (the kernel's, where /etc/hostname named it): cloud images often leave
    # /etc/hostname at a placeholder while the kernel's hostname, the one dockerd reports as /info Name, is set at
    # boot (cloud-init, DHCP). A daemon naming either is this machine's (facts/locality.py).
    aliases: tuple[str, ...] = ()


def _first_line(ctx: FactContext, path: str) -> str | None:
    return (read_file(ctx.host, path).text or "").strip() or None


@fact("host_identity", timeout_s=5)
def host_identity(ctx: FactContext) -> HostIdentity:
    """Hostname and kernel release of the host (under the root).

    /proc/sys/kernel/hostname answers for the UTS namespace of the process reading it, whichever procfs mount it
    is read through: under `--root /host` in a container or a pod it names the container. There the host's
    /etc/hostname names the host (hostname(5)); the kernel's answer is the fallback where that file is absent.
    """
    hostname = _first_line(ctx, "/etc/hostname") if ctx.host.root != "/" else None
    kernel_name = None
    if hostname is not None:
        try:
            kernel_name = _first_line(ctx, "/proc/sys/kernel/hostname")
        except NotRecorded:  # a bundle from before gpudoctor asked both
            kernel_name = None
    return HostIdentity(
        hostname=hostname or _first_line(ctx, "/proc/sys/kernel/hostname"),
        kernel=_first_line(ctx, "/proc/sys/kernel/osrelease"),
        aliases=tuple(n for n in (kernel_name,) if n and n != hostname),
    )
