"""Which image the probe containers run when `--image` is not given, and why (the report says both).

In order (issue 10):
1. an `nvidia/cuda` base image already on the daemon whose CUDA version the driver supports: what CUDA workloads
   build on, so the most telling image gpudoctor can have without the user's;
2. with `--pull` only: the published base tag for the driver's CUDA version (probes/cuda_images.py), pulled;
3. otherwise gpudoctor's own image, made from this host's files (probes/image.py): no registry, so the probes run
   on air-gapped hosts, behind proxies and rate limits, and in CI.
`--image` always wins; the probes fact handles it before asking here. Every daemon answer goes through
`ctx.host.call("probe.*")`, so a support bundle replays the choice.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ..frozen import frozen
from ..probes.cuda_images import REPOSITORY, cuda_text, known_tag, present_fit
from .host import HostCallError
from .registry import FactContext

USER, LOCAL_CUDA, PULLED, HOST_BUILT = "user", "local-cuda", "pulled", "host-built"


@frozen
class ImageChoice:
    image: str | None
    info: Mapping[str, Any] | str  # runner.ensure_image's answer, or why the daemon could not be asked
    source: str  # USER | LOCAL_CUDA | PULLED | HOST_BUILT
    why: str


def choose_default_image(
    ctx: FactContext, cuda: int | None, pull: bool, prepare: Callable[[str], Mapping[str, Any] | str]
) -> ImageChoice:
    """The probe image without `--image`. `prepare` inspects (with `--pull`: pulls) an image, as the probes fact
    does for `--image`."""
    from ..probes import image as host_image
    from ..probes import runner

    driver = f"the driver's CUDA {cuda_text(cuda)}" if cuda else "the driver (its CUDA version is unknown)"
    try:
        present = ctx.host.call("probe.local-images", [REPOSITORY], lambda: runner.local_images(REPOSITORY))
    except HostCallError:
        present = []
    local = present_fit(cuda, present)
    if local:
        info = prepare(local)
        if isinstance(info, str) or info.get("present"):
            return ImageChoice(local, info, LOCAL_CUDA, f"{local} is already on the daemon and fits {driver}")
    not_cuda = f"no {REPOSITORY} base image on the daemon fits {driver}"
    if pull:
        tag = known_tag(cuda)
        if tag is None:
            not_cuda += f"; --pull: no published {REPOSITORY} base image is known for {driver}"
        else:
            info = prepare(tag)
            if isinstance(info, str):
                return ImageChoice(tag, info, PULLED, f"--pull: {tag}")
            if info.get("present"):
                how = "pulled" if info.get("pulled") else "present"
                return ImageChoice(tag, info, PULLED, f"--pull: {tag} ({how}) is the newest published {REPOSITORY} "
                                                       f"base image {driver} supports")
            not_cuda += f"; --pull could not fetch {tag}: {info.get('error') or 'unknown error'}"
    root = ctx.host.root
    try:
        made = ctx.host.call("probe.host-image", [root], lambda: host_image.ensure_host_image(root), expect=dict)
    except HostCallError as e:
        return ImageChoice(None, f"could not make gpudoctor's probe image: {e.message}", HOST_BUILT, not_cuda)
    if not made.get("present"):
        why = f"gpudoctor's own probe image could not be made from this host's files ({not_cuda})"
        return ImageChoice(made.get("image"), made, HOST_BUILT, why)
    how = f"made now in {made.get('build_s', 0):g}s" if made.get("built") else "made on an earlier run, its inputs unchanged"
    why = (f"gpudoctor's own probe image, made from this host's files with no registry ({made.get('tools')}; {how}): "
           f"{not_cuda}")
    if not pull:
        why += " and --pull was not given"
    return ImageChoice(str(made.get("image")), made, HOST_BUILT, why)
