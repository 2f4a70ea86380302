#!/usr/bin/env python3
"""The probe containers of one `gpudoctor check` run, and nothing else: the floor under the speed goals.

`benchmarks/check_speed.py` starts this once per run it measures and keeps it running. It reads a support bundle of
that run (`gpudoctor facts --record`) for the probes the run made (key, form, image, request, hardening), then, for
each `go` line on stdin, runs those same probes through gpudoctor's own runner (create, start, wait, logs, remove;
`gpudoctor/probes/runner.py`) at the run's concurrency (`MAX_CONCURRENT_PROBES`), and prints the wall time from the
first create to the last removal, in seconds. No process start, no import, no fact, no check, no report: what is
left is what the engine and the toolkit take for those containers. Where that alone is over a goal's ratio, no
change to gpudoctor can meet the goal on that machine, and the benchmark says so.

    python3 benchmarks/containers_alone.py BUNDLE   (DOCKER_HOST: the daemon the bundle was recorded against)
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gpudoctor.facts.probes import MAX_CONCURRENT_PROBES, PROBE_TIMEOUT_S
from gpudoctor.probes import runner


def recorded_probes(bundle: Path) -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    """(key, form id, image, request, hardening) of each probe the recorded run made."""
    out = []
    for answer in json.loads(bundle.read_text())["answers"]:
        if answer["op"] != "probe.run":
            continue
        key, image, args = answer["args"]
        outcome = answer["answer"].get("value") or {}
        out.append((key, key.split(":")[0], image, args, outcome.get("hardening") or {}))
    return out


def run_all(probes: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]) -> tuple[float, list[str]]:
    """Wall time of the probes run at once (bounded as gpudoctor bounds them), and the keys that did not run right."""
    gate = threading.BoundedSemaphore(MAX_CONCURRENT_PROBES)
    run = runner.ProbeRun()
    bad: list[str] = []

    def one(key: str, form_id: str, image: str, args: dict[str, Any], hardening: dict[str, Any]) -> None:
        with gate:
            outcome = runner.run_probe(key, form_id, image, args, PROBE_TIMEOUT_S, run, hardening)
        if outcome.get("timed_out"):  # a refusal is an answer (an over-count must be refused); no answer is not
            bad.append(key)

    threads = [threading.Thread(target=one, args=p, daemon=True) for p in probes]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    run.close("the benchmark round ended")
    return wall, bad


def main() -> int:
    probes = recorded_probes(Path(sys.argv[1]))
    if not probes:
        print("no probe in the bundle", file=sys.stderr)
        return 2
    print(json.dumps({"ready": len(probes)}), flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        wall, bad = run_all(probes)
        print(json.dumps({"wall_s": wall, "bad": bad}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
