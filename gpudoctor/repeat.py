"""`python3 -m gpudoctor.repeat SECONDS ARGS…`: run `gpudoctor ARGS…` now and then every SECONDS, for a
Kubernetes DaemonSet (deploy/daemonset.yaml), whose container must keep running. The image has no shell to loop in.

Each run is a fresh process (its report on stdout, as `gpudoctor` prints it; one line on stderr with its exit
code), so one run's state never leaks into the next. SIGTERM (the pod stopping) ends the wait at once; a run in
progress gets it too and removes its probe containers (cli.main). GPUDOCTOR_REPEAT_TIMES=N stops after N runs
with the last run's exit code (0, the default, repeats until stopped).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        every = float(args.pop(0))
        if every <= 0:
            raise ValueError
    except (IndexError, ValueError):
        print("usage: python3 -m gpudoctor.repeat SECONDS GPUDOCTOR-ARGS…", file=sys.stderr)
        return 2
    times = int(os.environ.get("GPUDOCTOR_REPEAT_TIMES", "0") or 0)
    stop = threading.Event()
    child: list[subprocess.Popen[bytes]] = []

    def on_term(signum: int, _frame: object) -> None:
        # As PID 1 in a container, a signal without a handler is ignored: this is what lets the pod stop.
        stop.set()
        for proc in child:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    runs, code = 0, 0
    while not stop.is_set():
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "gpudoctor", *args])
        child[:] = [proc]
        code = proc.wait()
        runs += 1
        print(f"gpudoctor.repeat: run {runs} exited {code} after {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
        if times and runs >= times:
            break
        stop.wait(every)
    return code


if __name__ == "__main__":
    sys.exit(main())
