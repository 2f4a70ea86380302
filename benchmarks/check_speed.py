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
| 8 simulated GPUs, all forms ≤ 1.5 × 1 simulated GPU     | `check --all-forms` on the simulated 8-GPU host |
|                                                        |   / the same on the simulated 1-GPU host        |

Where no GPU container can run (a CPU machine), the GPU-run ratios use the plain run instead and say so.

The simulated hosts are tests/sim's beds (a host tree, the fake NVML, the stand-in toolkit, a private dockerd;
they need root, dockerd, runc and a static busybox). `--sim` runs *everything* against them: the plain and GPU
runs and the checks against the 1-GPU bed (`--gpus all` works there), so a CPU machine measures every goal;
`--sim-ratio` adds only the 8-vs-1 goal to a run against the real daemon (the GPU machine). Where the beds
cannot start, the 8-vs-1 goal says why it was not measured.
The probe containers of `check` and `check --all-forms` are also timed alone, in turns with the rest
(benchmarks/containers_alone.py: the run's recorded probes through gpudoctor's own runner, in a process already
started): the floor under those goals. A goal whose containers alone miss it is out of reach on that machine,
whatever gpudoctor does, and the run says so (`containers_alone`, `reachable`, `gpudoctor_adds_s`).
The breakdown of one more `check` is read from its own JSON report: the run's and each fact's time (`timings`)
and each probe's create/start/wait/remove times (the probe results' evidence).

    python3 benchmarks/check_speed.py --image probe:glibc --repeat 7 [--gpus] [--sim-ratio] [--json out.json]
    python3 benchmarks/check_speed.py --sim --repeat 5                   # a CPU machine: everything simulated
    (gpudoctor on PATH or `--gpudoctor "python3 -m gpudoctor"`; the daemon in DOCKER_HOST)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

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
    "sim_8_vs_1": ("sim8_all_forms", "sim1_all_forms", 1.5),
}
# The runs whose probe containers are also timed alone (benchmarks/containers_alone.py): the floor under their goal.
FLOORS = {"check": "check_containers", "all_forms": "all_forms_containers"}
SIM_IMAGE = "probe:busybox"  # what the beds import (tests/sim/bed.py DEFAULT_IMAGE)


class Cmd:
    """One timed command: its argv, and the environment and --root it runs with (a bed's, or this one's)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv, self.env = argv, env


class ContainersAlone:
    """benchmarks/containers_alone.py, kept running against one run's recorded probes: each round times them once."""

    def __init__(self, bundle: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks/containers_alone.py"), str(bundle)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd="/")
        assert self.proc.stdin and self.proc.stdout
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.ready = json.loads(self.stdout.readline() or "{}").get("ready")

    def time(self) -> tuple[float, int]:
        self.stdin.write("go\n")
        self.stdin.flush()
        answer = json.loads(self.stdout.readline())
        return float(answer["wall_s"]), 3 if answer["bad"] else 0

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait(30)


def containers_alone(stack: ExitStack, name: str, cmd: Cmd, env: dict[str, str], tmp: str) -> ContainersAlone | str:
    """The probe containers of run `name` alone, or why they cannot be timed: the run is recorded once
    (`gpudoctor facts --record`, the same options) and its probes are replayed against the live daemon."""
    bundle = Path(tmp) / f"{name}.bundle.json"
    argv = [*cmd.argv[: cmd.argv.index("check")], "facts", "--record", str(bundle),
            *[a for a in cmd.argv[cmd.argv.index("check") + 1:] if a not in ("--format", "json")]]
    proc = subprocess.run(argv, capture_output=True, text=True, env=cmd.env or env, cwd="/")
    if proc.returncode != 0 or not bundle.exists():
        return f"the run could not be recorded: {proc.stderr.strip()[-300:]}"
    try:
        alone = ContainersAlone(bundle, cmd.env or env)
    except (OSError, ValueError) as e:
        return f"containers_alone.py did not start: {e}"
    if not alone.ready:
        alone.close()
        return "containers_alone.py found no probe in the recording (is gpudoctor importable by this Python?)"
    stack.callback(alone.close)
    return alone


def _time(cmd: "Cmd | ContainersAlone", env: dict[str, str]) -> tuple[float, int]:
    if isinstance(cmd, ContainersAlone):
        return cmd.time()
    started = time.monotonic()
    proc = subprocess.run(cmd.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cmd.env or env, cwd="/")
    return time.monotonic() - started, proc.returncode


def start_beds(stack: ExitStack, gpu_counts: tuple[int, ...]) -> dict[int, Any] | str:
    """The simulated hosts (tests/sim), one per GPU count, healthy, legacy-mode toolkit and the nvidia runtime
    registered; or why they cannot run here."""
    sys.path.insert(0, str(ROOT))
    from tests.sim.bed import NVIDIA_RUNTIME, SimBed, missing_prerequisite
    from tests.sim.host import SimHost
    from tests.sim.toolkit import ToolkitSpec

    why = missing_prerequisite()
    if why:
        return why
    # CDI off: Docker 25+ resolves CDI names itself, from its own spec dirs, never the bed's tree (tests/sim/bed.py),
    # so on the GPU machine the simulated hosts' CDI probes were answered by the real H200's spec. Without it the CDI
    # forms do not apply on either host, as on Docker 20.10 (the CPU machine's engine).
    config = {**NVIDIA_RUNTIME, "features": {"cdi": False}}
    beds = {}
    for n in gpu_counts:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"gpd-speed-sim{n}-")))
        beds[n] = stack.enter_context(SimBed.create(workdir, SimHost.standard(n), ToolkitSpec(mode="legacy"), config))
    return beds


def commands(a: argparse.Namespace, bare_app: str, beds: dict[int, Any] | None) -> dict[str, Cmd]:
    docker = shutil.which("docker") or "docker"
    gd = shlex.split(a.gpudoctor)
    img = a.image or (SIM_IMAGE if a.sim else None)
    image = ["--image", img] if img else []
    # --sim: the main commands ask the 1-GPU bed (its daemon, its host tree, the fake NVML).
    main_env = beds[1].env() if a.sim and beds else None
    root = ["--root", str(beds[1].root)] if a.sim and beds else []
    cmds = {
        "plain_run": Cmd([docker, "run", "--rm", "--network", "none", img or "probe:busybox", "true"], main_env),
        "check": Cmd([*gd, "check", "--format", "json", *image, *root], main_env),
        "no_probes": Cmd([*gd, "check", "--format", "json", "--no-probes", *root], main_env),
        "all_forms": Cmd([*gd, "check", "--format", "json", "--all-forms", *image, *root], main_env),
        "help": Cmd([*gd, "--help"]),
        "bare_typer": Cmd([sys.executable, bare_app, "--help"]),
        "python": Cmd([sys.executable, "-c", "pass"]),
    }
    if a.gpus or a.sim:
        cmds["gpu_run"] = Cmd([docker, "run", "--rm", "--network", "none", "--gpus", "all", img or "probe:busybox", "true"],
                              main_env)
    for n, bed in (beds or {}).items():
        cmds[f"sim{n}_all_forms"] = Cmd([*gd, "check", "--format", "json", "--all-forms", "--image", SIM_IMAGE,
                                         "--root", str(bed.root)], bed.env())
    return cmds


def breakdown(cmd: Cmd, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(cmd.argv, capture_output=True, text=True, env=cmd.env or env, cwd="/")
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
    ap.add_argument("--sim", action="store_true", help="run everything against simulated hosts (tests/sim): a CPU machine")
    ap.add_argument("--sim-ratio", action="store_true", help="add the 8-vs-1 simulated-GPU goal to a real-daemon run")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--warm", type=int, default=2, help="uncounted rounds first (page cache, image, daemon)")
    ap.add_argument("--gpudoctor", default="gpudoctor")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    # A SIGTERM ends the run through Python, so that the beds' private daemons are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = dict(os.environ)
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        bare = str(Path(tmp) / "bare_typer.py")
        Path(bare).write_text(BARE_TYPER_APP)
        beds: dict[int, Any] | None = None
        sim_problem = None
        if a.sim or a.sim_ratio:
            started = start_beds(stack, (1, 8))
            if isinstance(started, str):
                if a.sim:
                    ap.error(f"--sim: the simulated hosts cannot run here: {started}")
                sim_problem = started
            else:
                beds = started
        cmds = commands(a, bare, beds)
        # A gpudoctor that cannot even start (a broken install exits 1 with a traceback, as a not-ready host does)
        # would be timed as a fast one: each measured run must give a report first. A simulated host is healthy by
        # construction: a run that judges it otherwise measured another run (on the GPU machine, an NVML worker
        # that asked the real NVML saw one GPU of a simulated eight, "mismatched").
        sim_runs = [n for n in cmds if n.startswith("sim")] + (["check", "no_probes", "all_forms"] if a.sim else [])
        for name in dict.fromkeys(["check", "no_probes", *sim_runs]):
            got = breakdown(cmds[name], env)
            if "error" in got:
                print(f"{name}: gpudoctor gave no report: {got['error']}", file=sys.stderr)
                return 2
            verdict = str(got.get("verdict") or "")
            if name in sim_runs and not verdict.startswith("Ready"):
                print(f"{name}: the simulated host was not judged ready ({verdict or 'no report'}): not timed",
                      file=sys.stderr)
                return 2
        timed: dict[str, Cmd | ContainersAlone] = dict(cmds)
        floor_problems: dict[str, str] = {}
        for run_name, floor_name in FLOORS.items():
            alone = containers_alone(stack, run_name, cmds[run_name], env, tmp)
            if isinstance(alone, str):
                floor_problems[floor_name] = alone
            else:
                timed[floor_name] = alone
        times: dict[str, list[float]] = {k: [] for k in timed}
        failures: dict[str, int] = {}
        names = list(timed)
        for _ in range(a.warm):  # warm the page cache, the image and the daemon; not counted
            for name in names:
                _time(timed[name], env)
        for i in range(a.repeat):
            order = names[i % len(names):] + names[: i % len(names)]
            for name in order:
                t, rc = _time(timed[name], env)
                times[name].append(t)
                if rc not in (0, 1):  # check exits 1 on a not-ready host: still a whole run
                    failures[name] = rc
        medians = {k: round(statistics.median(v), 4) for k, v in times.items()}
        ratios: dict[str, dict[str, Any]] = {}
        for goal, (num, den, limit) in GOALS.items():
            if num not in medians:
                why = sim_problem or "not asked for (--sim or --sim-ratio)"
                ratios[goal] = {"ratio": None, "against": den, "goal": limit, "met": None, "not_measured": why}
                continue
            base = den if den in medians else "plain_run"
            ratio = medians[num] / medians[base]
            ratios[goal] = {"ratio": round(ratio, 3), "against": base, "goal": limit, "met": ratio <= limit}
            floor = FLOORS.get(goal)
            if floor in medians:
                # The containers alone over the same base: a goal they already miss is out of reach on this machine.
                floor_ratio = medians[floor] / medians[base]
                ratios[goal].update(containers_alone=round(floor_ratio, 3), reachable=floor_ratio <= limit,
                                    gpudoctor_adds_s=round(medians[num] - medians[floor], 4))
            elif floor:
                ratios[goal]["containers_alone_not_measured"] = floor_problems.get(floor, "not timed")
        out = {"repeat": a.repeat, "medians_s": medians, "ratios": ratios, "failures": failures,
               "samples_s": {k: [round(x, 4) for x in v] for k, v in times.items()},
               "breakdown": breakdown(cmds["check"], env), "breakdown_no_probes": breakdown(cmds["no_probes"], env),
               "gpus": a.gpus or a.sim,
               "where": "simulated hosts (tests/sim)" if a.sim else os.environ.get("DOCKER_HOST", "default socket")}
        if beds:
            out["breakdown_sim8_all_forms"] = breakdown(cmds["sim8_all_forms"], env)
    text = json.dumps(out, indent=2)
    if a.json:
        Path(a.json).write_text(text + "\n")
    print(text)
    for goal, r in ratios.items():
        if r["ratio"] is None:
            print(f"{goal:10}   n/a   goal <= {r['goal']}  not measured: {r['not_measured']}", file=sys.stderr)
            continue
        alone = (f"; its containers alone {r['containers_alone']:.2f} x"
                 f"{'' if r['reachable'] else ': out of reach on this machine'}") if "containers_alone" in r else ""
        print(f"{goal:10} {r['ratio']:6.2f} x {r['against']:14} goal <= {r['goal']}  {'met' if r['met'] else 'NOT met'}{alone}",
              file=sys.stderr)
    if "no_probes" in medians:
        print(f"no_probes  {medians['no_probes'] * 1000:6.0f} ms (goal <= 250 ms on the GPU machine)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
