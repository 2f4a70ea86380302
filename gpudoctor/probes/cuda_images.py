"""The `nvidia/cuda` base images: which tags exist, and which one fits a driver. Pure: no I/O.

The one table of published tags. A driver supports the CUDA versions up to the one `nvidia-smi` prints ("CUDA
Version", NVML's cudaDriverVersion): an image whose NVIDIA_REQUIRE_CUDA asks for more is refused by the toolkit
(failure mode `image-requires-newer-driver`). Not every CUDA version has an image: there is no CUDA 12.7 (driver
565), and the supported tags of CUDA 12.2 (driver 535) are `12.2.2-base-*`, not `12.2.0-*`. So the tag for a driver
is the newest one in this table whose CUDA version the driver supports, never one derived from the driver's number.

Source: NVIDIA's "Supported tags" list of the CUDA container images,
https://gitlab.com/nvidia/container-images/cuda/blob/master/doc/supported-tags.md (the `-base-ubuntu24.04` and
`-base-ubuntu22.04` entries, as of CUDA 13.2.1). Its support policy deletes a tag six months after its driver
branch goes end of life or once a newer update of the same CUDA version is out: when updating, copy the list again
rather than adding to it.
"""

from __future__ import annotations

import re
from typing import Sequence

REPOSITORY = "nvidia/cuda"
SUPPORTED_TAGS_URL = "https://gitlab.com/nvidia/container-images/cuda/blob/master/doc/supported-tags.md"

# (major, minor, patch) → the Ubuntu releases with a `-base-` image of that CUDA version, preferred first.
BASE_TAGS: dict[tuple[int, int, int], tuple[str, ...]] = {
    (13, 2, 1): ("ubuntu24.04", "ubuntu22.04"),
    (13, 1, 2): ("ubuntu24.04", "ubuntu22.04"),
    (13, 0, 3): ("ubuntu24.04", "ubuntu22.04"),
    (12, 9, 1): ("ubuntu24.04", "ubuntu22.04"),
    (12, 8, 2): ("ubuntu24.04", "ubuntu22.04"),
    (12, 6, 3): ("ubuntu24.04", "ubuntu22.04"),
    (12, 5, 1): ("ubuntu24.04", "ubuntu22.04"),
    (12, 4, 1): ("ubuntu22.04",),
    (12, 3, 2): ("ubuntu22.04",),
    (12, 2, 2): ("ubuntu22.04",),
    (12, 1, 1): ("ubuntu22.04",),
    (12, 0, 1): ("ubuntu22.04",),
    (11, 8, 0): ("ubuntu22.04",),
    (11, 7, 1): ("ubuntu22.04",),
}

_BASE = re.compile(rf"^{re.escape(REPOSITORY)}:(\d+)\.(\d+)(?:\.\d+)?-base-")


def cuda_number(major: int, minor: int) -> int:
    """NVML's encoding of a CUDA version: 12.8 → 12080."""
    return major * 1000 + minor * 10


def cuda_text(version: int) -> str:
    """12080 → "12.8"."""
    return f"{version // 1000}.{(version % 1000) // 10}"


def known_tag(cuda_driver_version: int | None) -> str | None:
    """The published base tag to pull for a driver: the newest CUDA version it supports. None when the driver's
    CUDA version is unknown or older than every image still published."""
    if not cuda_driver_version:
        return None
    fits = [v for v in BASE_TAGS if cuda_number(v[0], v[1]) <= cuda_driver_version]
    if not fits:
        return None
    best = max(fits)
    return f"{REPOSITORY}:{best[0]}.{best[1]}.{best[2]}-base-{BASE_TAGS[best][0]}"


def present_fit(cuda_driver_version: int | None, present: Sequence[str]) -> str | None:
    """Of the `nvidia/cuda` tags already on the daemon, the newest base image the driver supports (any base image
    when the driver's CUDA version is unknown), or None. Offline hosts often have one: it is a better probe than
    gpudoctor's own image, since it is what CUDA workloads build on."""
    usable = []
    for tag in present:
        m = _BASE.match(tag)
        if m:
            need = cuda_number(int(m.group(1)), int(m.group(2)))
            if cuda_driver_version is None or need <= cuda_driver_version:
                usable.append((need, tag))
    return max(usable)[1] if usable else None
