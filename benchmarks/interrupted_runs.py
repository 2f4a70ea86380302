#!/usr/bin/env python3
"""How many probe containers do interrupted runs leave behind? (issue 14; the tests assert 0 per run.)

On a simulated host (tests/sim/, a real private dockerd) with a probe image whose /bin/sh sleeps for ever,
run the installed `gpudoctor check --all-forms` RUNS times per way of interrupting it, each time once at
least 3 probes are live, and count the containers with the probe label right after the process exits:

    python3 benchmarks/interrupted_runs.py --runs 10                      # SIGINT, SIGTERM, SIGHUP, ...
    python3 benchmarks/interrupted_runs.py --runs 10 --pythonpath OLD_TREE  # an older gpudoctor checkout

Leftovers are removed between runs. Needs root, dockerd and busybox-static (like the docker tests).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WAYS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGINT+SIGINT", "timeout-INT", "timeout-TERM")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from tests.sim.bed import NVIDIA_RUNTIME, SimBed
    from tests.sim.host import SimHost
    from tests.sim.toolkit import ToolkitSpec
    from tests.support.faults import console_script, import_sleeping_image, interrupted_run, probe_containers

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="interrupted runs per way (default 10)")
    ap.add_argument("--gpus", type=int, default=8, help="simulated GPUs (default 8)")
    ap.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated, from {', '.join(WAYS)}")
    ap.add_argument("--pythonpath", help="run the gpudoctor package found in this directory instead")
    args = ap.parse_args()
    gpudoctor = console_script()
    if gpudoctor is None:
        ap.error("no gpudoctor console script (pip install -e .)")
    results: dict[str, dict[str, object]] = {}
    with SimBed.create(Path(tempfile.mkdtemp(prefix="gpd-interrupt-")), SimHost.standard(args.gpus),
                       ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME) as bed:
        image = import_sleeping_image(bed.docker)
        env = bed.env()
        if args.pythonpath:
            env["PYTHONPATH"] = f"{args.pythonpath}:{env['PYTHONPATH']}"
        check_args = ["--format", "json", "--image", image, "--all-forms", "--root", str(bed.root)]
        for way in args.ways.split(","):
            left, leaking, tracebacks, seconds, codes = [], 0, 0, [], []
            for _ in range(args.runs):
                r = interrupted_run(gpudoctor, check_args, env, bed.docker, way)
                print(f"  {way}: exit {r.returncode}, {len(r.left)} left, {r.seconds_after_signal:.1f}s after the signal",
                      file=sys.stderr, flush=True)
                left.append(len(r.left))
                leaking += bool(r.left)
                tracebacks += "Traceback" in r.stderr
                seconds.append(round(r.seconds_after_signal, 1))
                codes.append(r.returncode)
                rest = probe_containers(bed.docker)
                if rest:
                    bed.docker("rm", "-f", *rest, timeout=120)
            results[way] = {"runs": args.runs, "containers_left": sum(left), "runs_leaking": leaking,
                            "per_run": left, "tracebacks": tracebacks, "exit_codes": sorted(set(codes)),
                            "max_seconds_after_signal": max(seconds)}
            print(way, results[way], file=sys.stderr, flush=True)
    print(json.dumps({"gpus": args.gpus, "ways": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
