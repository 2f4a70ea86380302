#!/usr/bin/env python3
"""Time and peak memory of gpudoctor on hostile files (issue 14 item 2), each through the real console script.

    python3 benchmarks/bad_inputs.py                  # every case, a table on stdout
    python3 benchmarks/bad_inputs.py --json out.json  # also as JSON
    python3 benchmarks/bad_inputs.py --only cdi-      # cases whose name starts with cdi-
    python3 benchmarks/bad_inputs.py --python /tmp/old/.venv/bin/python   # another gpudoctor (before/after)

Each case builds its file (a CDI spec, config.toml, daemon.json under a `--root` tree, or an `explain`
input) in a temp dir and runs `python -m gpudoctor …` in a child with an address-space cap
(--mem-cap-mib, default 2048: an alias bomb is stopped there instead of eating the machine) and a
wall-clock cap (--time-cap, default 60 s). Reported per case: exit status (or "killed"), wall seconds,
the child's peak RSS (wait4 ru_maxrss), and whether the output names the bad file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# A 9×9 alias tree: about 1 KB of YAML standing for 9**9 (387 million) strings.
_LEVELS = 9


def alias_tree(indent: str) -> str:
    rows = [f'{indent}- &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, _LEVELS):
        rows.append(f"{indent}- &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(rows)


def cdi_alias_bomb() -> str:
    return (
        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: all\n  containerEdits:\n"
        "    deviceNodes:\n    - path: /dev/nvidia0\n    hooks:\n    - path: /usr/bin/nvidia-cdi-hook\n"
        "      hookName: createContainer\n      args:\n" + alias_tree("      ") + "\n"
    )


def compose_alias_bomb() -> str:
    return (
        "services:\n  app:\n    image: x\n    deploy: {resources: {reservations: {devices: "
        "[{driver: nvidia, count: all, capabilities: [gpu]}]}}}\n    environment:\n" + alias_tree("      ") + "\n"
    )


DEEP = 100_000


@dataclass(frozen=True)
class Case:
    name: str
    path: str  # the bad file, relative to the case dir (what the output should name)
    make: Callable[[Path], None]
    argv: Callable[[Path], list[str]]  # gpudoctor arguments


def _write(p: Path, text: str) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def _fifo(p: Path) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(p)


def _facts(d: Path) -> list[str]:
    return ["facts", "--root", str(d / "root"), "--no-probes"]


def _explain(rel: str) -> Callable[[Path], list[str]]:
    return lambda d: ["explain", "--no-host", str(d / rel)]


CDI = "root/etc/cdi/nvidia.yaml"
CDI_JSON = "root/etc/cdi/nvidia.json"
TOML = "root/etc/nvidia-container-runtime/config.toml"
DAEMON = "root/etc/docker/daemon.json"

CASES = [
    Case("cdi-alias-bomb", CDI, lambda d: _write(d / CDI, cdi_alias_bomb()), _facts),
    Case("cdi-fifo", CDI, lambda d: _fifo(d / CDI), _facts),
    Case("cdi-deep-json", CDI_JSON, lambda d: _write(d / CDI_JSON, "[" * DEEP + "]" * DEEP), _facts),
    Case("cdi-deep-yaml", CDI, lambda d: _write(d / CDI, "[" * DEEP + "]" * DEEP), _facts),
    Case("toml-fifo", TOML, lambda d: _fifo(d / TOML), _facts),
    Case("toml-deep", TOML, lambda d: _write(d / TOML, "a = " + "[" * DEEP + "]" * DEEP + "\n"), _facts),
    Case("daemon-json-fifo", DAEMON, lambda d: _fifo(d / DAEMON), _facts),
    Case("daemon-json-deep", DAEMON, lambda d: _write(d / DAEMON, '{"a": ' * DEEP + "1" + "}" * DEEP), _facts),
    Case("explain-compose-alias-bomb", "bomb.yaml", lambda d: _write(d / "bomb.yaml", compose_alias_bomb()),
         _explain("bomb.yaml")),
    Case("explain-compose-deep", "deep.yaml", lambda d: _write(d / "deep.yaml", "a: " + "[" * DEEP + "]" * DEEP + "\n"),
         _explain("deep.yaml")),
    Case("explain-compose-fifo", "pipe.yaml", lambda d: _fifo(d / "pipe.yaml"), _explain("pipe.yaml")),
    # One 1 MB line: a docker-py call whose device_ids are 100k names (values decided at run time).
    Case("explain-sdk-1mb-line", "long.py",
         lambda d: _write(d / "long.py", "DeviceRequest(capabilities=[['gpu']], device_ids=["
                          + ", ".join(f"gpu_{i:05d}" for i in range(100_000)) + "])\n"),
         _explain("long.py")),
    # One 750 KB line of Compose (50k labels) and an 80k-word docker command line: linear before and after.
    Case("explain-compose-750kb-line", "long.yaml",
         lambda d: _write(d / "long.yaml", "services: {app: {image: x, deploy: {resources: {reservations: {devices: "
                          "[{driver: nvidia, count: all, capabilities: [gpu]}]}}}, labels: ["
                          + ", ".join(f'"label{i:06d}"' for i in range(50_000)) + "]}}\n"),
         _explain("long.yaml")),
    Case("explain-cmdline-80k-words", "-", lambda d: None,
         lambda d: ["explain", "--no-host", "--", "docker", "run", "--gpus", "all",
                    *[w for i in range(40_000) for w in ("-e", f"K{i}=v")], "img"]),
    Case("explain-sdk-deep", "deep.py", lambda d: _write(d / "deep.py", "DeviceRequest(count=" + "-" * DEEP + "1)\n"),
         _explain("deep.py")),
    Case("replay-fifo", "bundle.json", lambda d: _fifo(d / "bundle.json"),
         lambda d: ["check", "--replay", str(d / "bundle.json")]),
]


def run_case(case: Case, mem_cap: int, time_cap: float, python: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"gd-{case.name}-") as tmp:
        d = Path(tmp)
        (d / "root").mkdir()
        case.make(d)

        def limits() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (mem_cap, mem_cap))
            os.setsid()

        env = {**os.environ, "DOCKER_HOST": f"unix://{d}/no-docker.sock", "NO_COLOR": "1"}
        start = time.monotonic()
        proc = subprocess.Popen([python, "-m", "gpudoctor", *case.argv(d)], cwd="/", env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                preexec_fn=limits)
        killed = False
        out = b""
        try:
            out, _ = proc.communicate(timeout=time_cap)
        except subprocess.TimeoutExpired:
            killed = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        # communicate() reaped the child; its rusage is in RUSAGE_CHILDREN only as a running maximum,
        # so every case runs in its own interpreter (see main) to keep the figure per case.
        wall = time.monotonic() - start
        maxrss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        text = out.decode("utf-8", "replace")
        shown = str(Path(case.path).relative_to("root")) if case.path.startswith("root/") else case.path
        return {
            "case": case.name,
            "exit": "killed" if killed else proc.returncode,
            "wall_s": round(wall, 2),
            "peak_rss_mib": round(maxrss_kib / 1024, 1),
            "names_file": case.path != "-" and (("/" + shown if case.path.startswith("root/") else shown) in text
                                                or str(d / case.path) in text),
            "last_line": (text.strip().splitlines() or [""])[-1][:160],
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="run the cases whose name starts with this")
    ap.add_argument("--mem-cap-mib", type=int, default=2048)
    ap.add_argument("--time-cap", type=float, default=60.0)
    ap.add_argument("--json", help="also write the rows as JSON here")
    ap.add_argument("--python", default=sys.executable, help="the interpreter whose gpudoctor is measured")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case in this interpreter
    args = ap.parse_args()
    if args.one:
        case = next(c for c in CASES if c.name == args.one)
        print(json.dumps(run_case(case, args.mem_cap_mib << 20, args.time_cap, args.python)))
        return 0
    rows = []
    for case in CASES:
        if not case.name.startswith(args.only):
            continue
        # A fresh interpreter per case: RUSAGE_CHILDREN's ru_maxrss is the largest child so far.
        got = subprocess.run([sys.executable, __file__, "--one", case.name, "--mem-cap-mib", str(args.mem_cap_mib),
                              "--time-cap", str(args.time_cap), "--python", args.python],
                             capture_output=True, text=True, check=False)
        row = json.loads(got.stdout) if got.returncode == 0 else {"case": case.name, "exit": "harness", "last_line": got.stderr[-200:]}
        rows.append(row)
        print(f"{row['case']:<28} exit={row.get('exit')!s:<7} {row.get('wall_s', '-')!s:>7} s "
              f"{row.get('peak_rss_mib', '-')!s:>8} MiB  names file: {row.get('names_file')!s:<5}  {row.get('last_line', '')}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
