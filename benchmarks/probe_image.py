#!/usr/bin/env python3
"""What gpudoctor's own probe image costs (issue 10): the first `gpudoctor check` on a daemon makes it, later ones
reuse it. Runs the real CLI with no --image against a private dockerd with no image at all:

    python3 benchmarks/probe_image.py --repeat 5            # the simulated 1-GPU host (tests/sim): every default form
    python3 benchmarks/probe_image.py --repeat 5 --plain    # this machine's own files, no GPU (CI's case)

For each run: the whole check's wall time, the time spent finding or making the image (containers.image evidence
`build_s`), whether it was made, and the probe matrix's wall time. Then one run after an input changed (the tree's
busybox, as an upgrade would). Prints one JSON object (also written to --json PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one_run(argv: list[str], env: dict[str, str]) -> dict:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gpudoctor", "check", "--format", "json", *argv], env=env, cwd="/",
                          capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    report = json.loads(proc.stdout)
    checks = {c["id"]: c for c in report["checks"]}
    ev = checks["containers.image"]["results"][0]["evidence"]
    summary = checks["containers.summary"]["results"][0]["evidence"]
    return {"wall_s": round(wall, 3), "built": ev.get("built"), "build_s": ev.get("build_s"), "image": ev.get("image"),
            "matrix_wall_s": summary.get("matrix_wall_s"), "forms": len(summary.get("table", {}).get("rows", [])),
            "ready": report["verdict"]["ready"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs after the first (default 5)")
    parser.add_argument("--plain", action="store_true", help="this machine's files and a plain private daemon")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()

    from tests.support import userland
    from tests.support.dockerd import PrivateDockerd

    with ExitStack() as stack:
        if args.plain:
            daemon = stack.enter_context(PrivateDockerd(None, {}))
            env, argv, busybox = daemon.env(), ["--only", "containers"], None
        else:
            from tests.sim.bed import NVIDIA_RUNTIME, SimBed
            from tests.sim.host import SimHost
            from tests.sim.toolkit import ToolkitSpec

            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpd-bench-")))
            bed = stack.enter_context(SimBed.create(work, SimHost.standard(1), ToolkitSpec(mode="legacy"),
                                                    NVIDIA_RUNTIME, image=False))
            userland.install_busybox(bed.root)
            userland.install_glibc(bed.root)
            daemon, env, argv = bed.dockerd, bed.env(), ["--root", str(bed.root)]
            from gpudoctor.facts.bounded import resolve_in_root

            busybox = Path(resolve_in_root(str(bed.root), "/bin/busybox"))
        env = {**os.environ, **env}
        first = one_run(argv, env)
        later = [one_run(argv, env) for _ in range(args.repeat)]
        changed = None
        if busybox is not None:
            busybox.write_bytes(busybox.read_bytes() + b"\0")
            changed = one_run(argv, env)
        images = daemon.docker("images", "-a", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        leftovers = daemon.containers()
    result = {
        "host": "this machine (no GPU)" if args.plain else "simulated 1-GPU host, legacy toolkit",
        "first": first,
        "later": later,
        "later_median_wall_s": round(statistics.median(r["wall_s"] for r in later), 3) if later else None,
        "later_median_build_s": round(statistics.median(r["build_s"] for r in later), 3) if later else None,
        "after_input_change": changed,
        "images_on_daemon": images,
        "containers_left": leftovers,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
