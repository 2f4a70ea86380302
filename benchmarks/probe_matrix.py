#!/usr/bin/env python3
"""Speed goal of the probe matrix, measured as a ratio in one run (issue: probes, "Speed").

    default probe matrix wall time  /  one plain `docker run --rm IMAGE true` wall time

The goal: at most 1.5 on a 1-GPU host. Also reported, where GPU containers can run: the matrix against
one `docker run --rm --gpus all IMAGE true` — the floor for any matrix holding a GPU container, which
shows what the concurrency leaves on top of it. Both are timed alternately, `--repeat` times each, against the
same daemon and image, and the medians are compared. The matrix is timed the way `gpudoctor check`
runs it (the `probes` fact: image inspect, leftover sweep, concurrent hardened probes, removal).

    python3 benchmarks/probe_matrix.py --image probe:glibc --repeat 5          # the daemon in DOCKER_HOST
    python3 benchmarks/probe_matrix.py --sim 1 --repeat 5                      # the simulated 1-GPU host (tests/sim)

Prints one JSON object (also written to --json PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_docker_run(image: str, *extra: str, check: bool = True) -> float | None:
    """Wall time of one `docker run --rm [extra] IMAGE true`; None if it failed and check is False."""
    docker = shutil.which("docker") or "docker"
    started = time.monotonic()
    proc = subprocess.run([docker, "run", "--rm", "--network", "none", *extra, image, "true"], check=check,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started if proc.returncode == 0 else None


def time_matrix(image: str, forms: str | None) -> tuple[float, dict]:
    from gpudoctor.facts.host import LiveHost
    from gpudoctor.facts.registry import FactOptions, gather

    options = {"probe_image": image, "probes": True,
               "probe_forms": forms.split(",") if forms else None}
    started = time.monotonic()
    facts = gather(LiveHost(), ["probes"], FactOptions(options))
    wall = time.monotonic() - started
    probes = facts.values.get("probes")
    if probes is None:
        raise SystemExit(f"probes fact failed: {facts.errors.get('probes')}")
    if not probes.enabled:
        raise SystemExit(f"no probe ran: {probes.reason}")
    summary = {k: {"ok": o.get("ok"), "error": (o.get("error") or "")[:120],
                   "total_s": round((o.get("timings") or {}).get("total_s", 0), 3)}
               for k, o in probes.outcomes.items()}
    return wall, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=None, help="probe image (default: probe:busybox with --sim)")
    ap.add_argument("--forms", default=None, help="comma-separated form ids (default: the default matrix)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sim", type=int, default=0, metavar="GPUS",
                    help="start the simulated host of tests/sim with this many GPUs (legacy-mode stand-in toolkit)")
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args()

    with ExitStack() as stack:
        where = os.environ.get("DOCKER_HOST", "default socket")
        if args.sim:
            sys.path.insert(0, str(ROOT))
            import tempfile

            # The simulation lives with the tests: a real private dockerd with the stand-in toolkit.
            from tests.sim.bed import NVIDIA_RUNTIME, SimBed
            from tests.sim.host import SimHost
            from tests.sim.toolkit import ToolkitSpec

            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpd-bench-")))
            bed = stack.enter_context(
                SimBed.create(workdir, SimHost.standard(args.sim), ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME)
            )
            os.environ.update(bed.env())
            where = f"simulated {args.sim}-GPU host ({os.environ['DOCKER_HOST']})"
        image = args.image or ("probe:busybox" if args.sim else None)
        if not image:
            ap.error("--image is required without --sim")
        time_docker_run(image)  # warm caches once for both sides
        time_matrix(image, args.forms)
        runs, matrices, gpu_runs = [], [], []
        last = {}
        for _ in range(args.repeat):
            runs.append(time_docker_run(image))
            wall, last = time_matrix(image, args.forms)
            matrices.append(wall)
            # One GPU container on its own: the floor for any matrix that holds one. Where `--gpus all`
            # cannot run (no toolkit) this stays empty.
            gpu = time_docker_run(image, "--gpus", "all", check=False)
            if gpu is not None:
                gpu_runs.append(gpu)
        result = {
            "where": where,
            "image": image,
            "repeat": args.repeat,
            "docker_run_median_s": round(statistics.median(runs), 3),
            "matrix_median_s": round(statistics.median(matrices), 3),
            "ratio": round(statistics.median(matrices) / statistics.median(runs), 2),
            "goal": 1.5,
            "gpu_run_median_s": round(statistics.median(gpu_runs), 3) if gpu_runs else None,
            "ratio_to_one_gpu_run": round(statistics.median(matrices) / statistics.median(gpu_runs), 2) if gpu_runs else None,
            "probes": last,
        }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ratio"] <= result["goal"] else 1


if __name__ == "__main__":
    sys.exit(main())
