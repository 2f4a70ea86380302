"""The probe image: which one the probe containers ran, why, and whether it fits the host driver.

The image is chosen by facts/probe_image.py (`--image`, a CUDA base image already present, `--pull`, or gpudoctor's
own, made from the host's files); this check says which and why, and warns only where the image itself is a
problem: the probes could not run, or the image fights the driver.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from ..checking import Check, check
from ..gpu_requests.request import env_mapping
from ..facts.probe_image import HOST_BUILT, LOCAL_CUDA, PULLED, USER
from ..facts.probes import ProbeFacts
from ..links import DOCKER_IMAGE_TAG_DOC, TOOLKIT_TROUBLESHOOTING
from ..model import Fix, Layer, Result, errored, passed, skipped, warned
from ..probes.cuda_images import SUPPORTED_TAGS_URL, cuda_number, cuda_text, known_tag

SOURCE_WORDS = {
    USER: "given with --image",
    LOCAL_CUDA: "a CUDA base image already on the daemon",
    PULLED: "pulled with --pull",
    HOST_BUILT: "gpudoctor's own, made from this host's files",
}
# What the report keeps of how gpudoctor's own image was made (probes/image.py).
BUILD_KEYS = ("built", "build_s", "digest", "tools", "files", "bytes", "missing", "removed")


def _evidence(probes: ProbeFacts) -> dict[str, Any]:
    info = probes.image_info
    ev: dict[str, Any] = {"image": probes.image, "source": probes.image_source, "why": probes.image_why,
                          "image_id": info.get("id")}
    if probes.image_source == HOST_BUILT:
        ev.update({k: info[k] for k in BUILD_KEYS if k in info})
    return ev


@check("containers.image", "The probe image is usable and fits the host driver", layer=Layer.CONTAINERS,
       needs=("probes", "nvml"), after=("docker.reachable",))
def image(probes: ProbeFacts, nvml: Any) -> Iterable[Result]:
    """The probe image exists, does not bake in driver libraries, and does not need a newer CUDA driver.

    Why: without an image no probe container runs and GPU access is only inferred; driver libraries inside an
    image break when the host driver changes (`image-bundles-driver-libraries`); `NVIDIA_REQUIRE_CUDA=cuda>=X`
    above the host's CUDA version makes the toolkit refuse the container (`image-requires-newer-driver`).
    Without --image gpudoctor uses a CUDA base image already present, else makes its own from the host's files.

    Fix: build from a CUDA base image and never copy libcuda/libnvidia-ml into it; pick an image tag
    matching `nvidia-smi`'s "CUDA Version" (published tags: NVIDIA's supported-tags list).
    """
    ev = _evidence(probes)
    if not probes.image_source or (probes.daemon_error and not probes.enabled):
        return [skipped(f"no probe ran: {probes.reason}", evidence=ev)]
    have = nvml.cuda_driver_version if nvml.ok else None
    if not probes.image_info.get("present"):
        return [_unavailable(probes, have, ev)]
    results = []
    env = env_mapping(probes.image_info.get("env"))
    need = _required_cuda(env)
    if need and have and need > have:
        results.append(warned(
            f"the image needs CUDA {cuda_text(need)} but the host driver supports CUDA {cuda_text(have)}",
            subject=probes.image, evidence=ev,
            fix=Fix("Use an image built for the host's CUDA version, or upgrade the driver.",
                    ("nvidia-smi | head -n 4",) + ((f"docker pull {known_tag(have)}",) if known_tag(have) else ()),
                    "https://docs.nvidia.com/deploy/cuda-compatibility/"),
        ))
    base = next((probes.outcomes.get(s.key) for s in probes.specs if s.form_id == "baseline"), None)
    if base and base.get("ok"):
        from ..probes.parse import parse_probe_output

        view = parse_probe_output(str(base.get("output") or ""))
        baked = [p for p in view.libs if not view.lib_is_mounted(p) and "/stubs/" not in p]
        if baked and not any(("libcuda" in m or "libnvidia-ml" in m) for m in view.mounts):
            results.append(warned(
                f"the image ships driver libraries itself: {', '.join(baked[:4])}",
                subject=probes.image, evidence=ev,
                fix=Fix("Remove driver libraries from the image; the toolkit injects the host's matching ones.",
                        ("docker run --rm IMAGE sh -c 'ls -l /usr/lib/x86_64-linux-gnu/libcuda.so*'",),
                        TOOLKIT_TROUBLESHOOTING),
            ))
    if not results:
        words = SOURCE_WORDS.get(probes.image_source, probes.image_source)
        results.append(passed(f"{probes.image} ({words}) is present and fits the host driver", subject=probes.image,
                              details=(f"why this image: {probes.image_why}",), evidence=ev))
    return results


def _unavailable(probes: ProbeFacts, have: int | None, ev: dict[str, Any]) -> Result:
    """No image to probe with. Advice to pull a CUDA image only where it matters: a host whose driver lists GPUs,
    and only a tag that is published for that driver's CUDA version."""
    if probes.image_source == USER:
        fix = Fix(
            "Container probes need an image: pull it, or point gpudoctor at an image that is present (without "
            "--image gpudoctor makes its own probe image from this host's files).",
            (f"docker pull {probes.image}", f"gpudoctor check --pull --image {probes.image}"),
            None,
        )
        if probes.image_info.get("invalid"):
            fix = Fix(
                "Give --image a reference Docker accepts: a lowercase repository, then :tag or @digest.",
                ("docker image ls", "gpudoctor check --image REPOSITORY:TAG"),
                DOCKER_IMAGE_TAG_DOC,
            )
        # Asked for by name (issue 14): without it no probe container runs and the containers layer cannot be
        # judged at all, so the run must not pass on it.
        return errored(
            f"{probes.reason or f'probe image {probes.image} is not available'}; no probe container ran, "
            "so the containers layer cannot be judged",
            subject=probes.image, evidence=ev, fix=fix,
        )
    if not probes.gpus:
        return skipped(f"no probe ran: {probes.reason} (NVML lists no GPU here, so no CUDA image is suggested)",
                       evidence=ev)
    tag = known_tag(have)
    commands = ((f"docker pull {tag}", "gpudoctor check") if tag else ()) + ("gpudoctor check --image YOUR_IMAGE",)
    return warned(
        f"no probe ran: {probes.reason}", subject=probes.image, evidence=ev,
        fix=Fix("Give the probes an image: your workload's image is the most telling; the CUDA base image published "
                f"for this driver's CUDA {cuda_text(have) if have else 'version'} is used once it is present.",
                commands, SUPPORTED_TAGS_URL),
    )


def _required_cuda(env: dict[str, str]) -> int | None:
    text = env.get("NVIDIA_REQUIRE_CUDA", "")
    m = re.search(r"cuda>=(\d+)\.(\d+)", text) or re.match(r"(\d+)\.(\d+)", env.get("CUDA_VERSION", ""))
    return cuda_number(int(m.group(1)), int(m.group(2))) if m else None


CHECKS: tuple[Check, ...] = (image,)
