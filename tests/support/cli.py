"""Run the real `gpudoctor` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from typing import Mapping, Sequence


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 120,
    memory_mib: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """`memory_mib`: cap the command's address space (RLIMIT_AS), so that a test of hostile input
    fails with MemoryError instead of eating the machine."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("NO_COLOR", None) if env is None or "NO_COLOR" not in env else None

    def limits() -> None:
        if memory_mib is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mib << 20, memory_mib << 20))

    # cwd defaults to / so that a ./gpudoctor folder never shadows the installed package.
    return subprocess.run(
        [sys.executable, "-m", "gpudoctor", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or "/",
        timeout=timeout,
        check=False,
        preexec_fn=limits if memory_mib is not None else None,
    )
