#!/usr/bin/env python3
"""On the GPU machine, after `scripts/real-stack-run.sh`'s setup (or `.gpuhost/gpu-host-up.sh --install-toolkit`):
put the host into one real-stack state (scripts/real_stack_matrix.py), then run what a user would and record it:

* `gpudoctor check` with no CUDA image on the host (the probe image gpudoctor builds itself), twice: the first run
  builds the image, the second reuses it — wall time of each;
* `gpudoctor explain --run` for the seed requests: `--gpus all`, `--gpus "1"`, and the SDK's
  `runtime="nvidia"` + `DeviceRequest(count=-1, capabilities=[["gpu"]])`;
* what is left on the daemon afterwards (containers, images).

    python3 scripts/gpu-machine-checks.py --state legacy-runtime --out /tmp/checks
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_stack_matrix as matrix  # noqa: E402

SEEDS = (
    ("--gpus all",),
    ('--gpus "1"',),
    ('client.containers.run("img", runtime="nvidia", '
     'device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])])',),
)


def timed(argv: list[str]) -> dict:
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    return {"argv": argv, "rc": p.returncode, "wall_s": round(time.monotonic() - t0, 3),
            "stdout": p.stdout[-20000:], "stderr": p.stderr[-4000:]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", default="legacy-runtime")
    ap.add_argument("--engine", default="29.7")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    gd = [sys.executable, "-P", "-m", "gpudoctor"]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    state = next(s for s in matrix.STATES if s.id == a.state)
    matrix.stash_toolkit()
    matrix.reset()
    state.setup()
    daemon = matrix.start_dockerd(state.dockerd_path)
    record: dict = {"state": a.state, "engine": a.engine, "daemon": daemon, "runs": {}}
    images_before = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
                                   capture_output=True, text=True).stdout.split()
    record["images_before"] = images_before
    for n in ("first", "second"):
        record["runs"][f"check-{n}"] = timed([*gd, "check", "--format", "json"])
    record["runs"]["check-text"] = timed([*gd, "check", "--no-color"])
    for i, seed in enumerate(SEEDS):
        record["runs"][f"explain-run-{i}"] = timed([*gd, "explain", "--run", "--format", "json", "--", *seed])
    record["images_after"] = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
                                            capture_output=True, text=True).stdout.split()
    record["containers_after"] = subprocess.run(["docker", "ps", "-aq"], capture_output=True, text=True).stdout.split()
    (out / "checks.json").write_text(json.dumps(record, indent=1))
    for k, r in record["runs"].items():
        print(f"{k:16} rc={r['rc']} {r['wall_s']}s")
    print("images before", images_before, "after", record["images_after"], "containers left", record["containers_after"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
