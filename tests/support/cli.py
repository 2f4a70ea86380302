"""Run the real `gpudoctor` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Mapping, Sequence


def run_cli(
    args: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("NO_COLOR", None) if env is None or "NO_COLOR" not in env else None
    # cwd defaults to / so that a ./gpudoctor folder never shadows the installed package.
    return subprocess.run(
        [sys.executable, "-m", "gpudoctor", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or "/",
        timeout=timeout,
        check=False,
    )
