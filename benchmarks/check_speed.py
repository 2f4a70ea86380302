#!/usr/bin/env python3
"""Speed of the whole `gpudoctor check`, as a user runs it, against plain `docker run`s (issue: "Speed").

Every command is a fresh process, timed wall-clock from spawn to exit, and the commands are run in turns
(round i runs each once, in a rotated order) so that drift of the machine hits them alike; the medians are
compared as ratios taken in this one run:

| goal                                                   | ratio                                           |
|--------------------------------------------------------|-------------------------------------------------|
| `gpudoctor check` (default forms) ≤ 2.0 × GPU run      | check / `docker run --rm --gpus all IMG true`   |
| `gpudoctor check --no-probes` ≤ 1.25 × plain run       | no-probes / `docker run --rm IMG true` (and its |
|   (≤ 250 ms on the GPU machine)                        |   absolute median)                              |
| `gpudoctor check --all-forms` ≤ 3.0 × GPU run          | all-forms / GPU run                             |
| `gpudoctor --help` ≤ 1.2 × a bare two-command Typer app | help / bare app                                 |

Where no GPU container can run (a CPU machine), the GPU-run ratios use the plain run instead and say so.
The breakdown of one more `check` is read from its own JSON report: the run's and each fact's time (`timings`)
and each probe's create/start/wait/remove times (the probe results' evidence).

    python3 benchmarks/check_speed.py --image probe:glibc --repeat 7 [--gpus] [--json out.json]
    (gpudoctor on PATH or `--gpudoctor "python3 -m gpudoctor"`; the daemon in DOCKER_HOST)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BARE_TYPER_APP = '''
import typer
app = typer.Typer(add_completion=False)
@app.command()
def one() -> None: ...
@app.command()
def two() -> None: ...
app()
'''

GOALS = {
    "check": ("check", "gpu_run", 2.0),
    "no_probes": ("no_probes", "plain_run", 1.25),
    "all_forms": ("all_forms", "gpu_run", 3.0),
    "help": ("help", "bare_typer", 1.2),
}


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    started = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.monotonic() - started, proc.returncode


def commands(a: argparse.Namespace, bare_app: str) -> dict[str, list[str]]:
    docker = shutil.which("docker") or "docker"
    gd = shlex.split(a.gpudoctor)
    image = ["--image", a.image] if a.image else []
    cmds = {
        "plain_run": [docker, "run", "--rm", "--network", "none", a.image or "probe:busybox", "true"],
        "check": [*gd, "check", "--format", "json", *image],
        "no_probes": [*gd, "check", "--format", "json", "--no-probes"],
        "all_forms": [*gd, "check", "--format", "json", "--all-forms", *image],
        "help": [*gd, "--help"],
        "bare_typer": [sys.executable, bare_app, "--help"],
        "python": [sys.executable, "-c", "pass"],
    }
    if a.gpus:
        cmds["gpu_run"] = [docker, "run", "--rm", "--network", "none", "--gpus", "all", a.image or "probe:busybox", "true"]
    return cmds


def breakdown(a: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    gd = shlex.split(a.gpudoctor)
    image = ["--image", a.image] if a.image else []
    proc = subprocess.run([*gd, "check", "--format", "json", *image], capture_output=True, text=True, env=env)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return {"error": proc.stderr[-500:]}
    probes = {}
    matrix = None
    for c in report.get("checks", []):
        for r in c.get("results", []):
            ev = r.get("evidence") or {}
            if ev.get("timings"):
                probes[ev.get("form", c["id"])] = ev["timings"]
            if "matrix_wall_s" in ev:
                matrix = ev["matrix_wall_s"]
    return {"timings": report.get("timings"), "probe_matrix_wall_s": matrix, "probes": probes,
            "verdict": report.get("verdict", {}).get("headline")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default=None, help="the image of the plain/GPU docker runs and the probes")
    ap.add_argument("--gpus", action="store_true", help="GPU containers can run here: time `--gpus all` too")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--gpudoctor", default="gpudoctor")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        bare = str(Path(tmp) / "bare_typer.py")
        Path(bare).write_text(BARE_TYPER_APP)
        cmds = commands(a, bare)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        failures: dict[str, int] = {}
        names = list(cmds)
        for _ in range(2):  # warm the page cache, the image and the daemon; not counted
            for name in names:
                _time(cmds[name], env)
        for i in range(a.repeat):
            order = names[i % len(names):] + names[: i % len(names)]
            for name in order:
                t, rc = _time(cmds[name], env)
                times[name].append(t)
                if rc not in (0, 1):  # check exits 1 on a not-ready host: still a whole run
                    failures[name] = rc
        medians = {k: round(statistics.median(v), 4) for k, v in times.items()}
        ratios = {}
        for goal, (num, den, limit) in GOALS.items():
            base = den if den in medians else "plain_run"
            ratio = medians[num] / medians[base]
            ratios[goal] = {"ratio": round(ratio, 3), "against": base, "goal": limit, "met": ratio <= limit}
        out = {"repeat": a.repeat, "medians_s": medians, "ratios": ratios, "failures": failures,
               "breakdown": breakdown(a, env), "gpus": a.gpus}
    text = json.dumps(out, indent=2)
    if a.json:
        Path(a.json).write_text(text + "\n")
    print(text)
    for goal, r in ratios.items():
        print(f"{goal:10} {r['ratio']:6.2f} x {r['against']:10} goal <= {r['goal']}  {'met' if r['met'] else 'NOT met'}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
