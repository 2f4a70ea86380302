"""The NVML worker started before the CLI loads (gpudoctor/facts/nvml_process.py, gpudoctor/entry.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpudoctor.entry import asks_nvml_early, default_to_check
from tests.sim.host import SIM_HOST_ENV, SimHost

FAKE_DIR = Path(__file__).resolve().parent / "sim" / "fake_nvml"
REPO = Path(__file__).resolve().parent.parent

# A pynvml whose nvmlInit never returns (a GPU that fell off the bus), and says which process it is.
SLOW_PYNVML = '''
import os, time
def nvmlInit():
    open(os.environ["SLOW_NVML_PID_FILE"], "w").write(str(os.getpid()))
    time.sleep(60)
'''


def _run(code: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**env, "PYTHONPATH": os.pathsep.join([env["PYTHONPATH"], str(REPO)])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/",
                          timeout=timeout, check=False)


def _sim_env(tmp_path: Path, gpus: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != SIM_HOST_ENV}
    env["PYTHONPATH"] = str(FAKE_DIR)
    env[SIM_HOST_ENV] = str(SimHost.standard(gpus).save(tmp_path / "host.json"))
    return env


@pytest.mark.parametrize(
    ("argv", "early"),
    [
        ([], True),
        (["--no-probes"], True),
        (["check", "--format", "json"], True),
        (["facts", "--record", "b.json"], True),
        (["check", "--replay", "b.json"], False),
        (["check", "--replay=b.json"], False),
        (["check", "--only", "docker"], False),
        (["check", "--skip=probes"], False),
        (["check", "--help"], False),
        (["--help"], False),
        (["explain", "--gpus", "all"], False),
        (["list"], False),
        (["merge", "a.json"], False),
    ],
)
def test_which_command_lines_start_nvml_before_the_cli_loads(argv: list[str], early: bool) -> None:
    assert asks_nvml_early(default_to_check(argv)) is early


def test_the_run_adopts_the_early_worker_instead_of_starting_another(tmp_path: Path) -> None:
    code = (
        "import json\n"
        "from gpudoctor.facts import nvml, nvml_process\n"
        "nvml_process.start_early()\n"
        "early_pid = nvml_process._early[0].pid\n"
        "spawned = []\n"
        "real_spawn = nvml_process.spawn\n"
        "nvml_process.spawn = lambda: spawned.append(1) or real_spawn()\n"
        "first = nvml.run_worker()\n"
        "second = nvml.run_worker()  # a second run in the same process asks NVML afresh\n"
        "print(json.dumps([first['device_count'], second['device_count'], len(spawned), early_pid > 0]))\n"
    )
    proc = _run(code, _sim_env(tmp_path, 3))
    assert proc.returncode == 0, proc.stderr
    first_count, second_count, spawned, had_early = json.loads(proc.stdout)
    assert first_count == {"value": 3} and second_count == {"value": 3}
    assert had_early and spawned == 1  # the first answer came from the early worker; only the second spawned


def test_an_early_worker_nobody_adopts_is_killed_when_gpudoctor_exits(tmp_path: Path) -> None:
    (tmp_path / "pynvml.py").write_text(SLOW_PYNVML)
    pid_file = tmp_path / "pid"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SLOW_NVML_PID_FILE": str(pid_file)}
    code = (
        "import os, time\n"
        "from gpudoctor.facts import nvml_process\n"
        "nvml_process.start_early()\n"
        "while not os.path.exists(os.environ['SLOW_NVML_PID_FILE']): time.sleep(0.01)\n"
    )
    started = time.monotonic()
    proc = _run(code, env)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 20  # exit did not wait for the hung NVML
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left behind
        os.kill(pid, 0)


def test_the_timeout_counts_from_the_early_start(tmp_path: Path) -> None:
    (tmp_path / "pynvml.py").write_text(SLOW_PYNVML)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SLOW_NVML_PID_FILE": str(tmp_path / "pid")}
    code = (
        "import json, time\n"
        "from gpudoctor.facts import nvml, nvml_process\n"
        "from gpudoctor.facts.host import HostCallError\n"
        "nvml_process.start_early()\n"
        "time.sleep(1.5)\n"
        "asked = time.monotonic()\n"
        "try:\n"
        "    nvml.run_worker(timeout=2.0)\n"
        "except HostCallError as e:\n"
        "    print(json.dumps([e.kind, time.monotonic() - asked]))\n"
    )
    proc = _run(code, env)
    assert proc.returncode == 0, proc.stderr
    kind, waited = json.loads(proc.stdout)
    assert kind == "timeout"
    assert waited < 1.2  # 2 s from the worker's start, of which 1.5 s had passed before the run asked
