"""`python -m gpudoctor.probes.reap LABEL [WAIT_S GRACE_S]`: the detached reaper of one run's probes.

Started by gpudoctor/probes/runner.py when a run ended (interrupted, or past its deadline) without
the daemon confirming that its probe containers are gone — typically a frozen or overloaded daemon.
It waits for the daemon to answer, removes every container labelled LABEL, and exits; the loop
itself is `runner.reap`.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from .runner import REAPER_GRACE_S, REAPER_WAIT_S, RUN_LABEL, reap

    if not argv or not argv[0].startswith(RUN_LABEL + "="):  # never any other label
        sys.stderr.write("usage: python -m gpudoctor.probes.reap io.gpudoctor.run=ID [WAIT_S GRACE_S]\n")
        return 2
    wait_s = float(argv[1]) if len(argv) > 1 else REAPER_WAIT_S
    grace_s = float(argv[2]) if len(argv) > 2 else REAPER_GRACE_S
    reap(argv[0], wait_s, grace_s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
