"""The YAML worker (gpudoctor/facts/yaml_worker.py, yaml_process.py): what it answers is what the cdi fact would
have parsed itself, and any doubt sends the fact back to its own parse."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from gpudoctor.entry import judges_this_host
from gpudoctor.facts import yaml_process
from gpudoctor.facts.bounded import load_yaml
from gpudoctor.facts.cdi import parse_spec
from gpudoctor.facts.yaml_worker import answer, json_faithful

SPEC = Path(__file__).resolve().parent / "fixtures" / "real-h100-docker20-toolkit-cdi" / "cdi-nvidia.yaml"
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(6))


@pytest.fixture
def worker() -> Iterator[None]:
    yaml_process.start()
    yield
    yaml_process.stop()


def test_the_worker_s_document_is_the_fact_s_own(worker: None) -> None:
    text = SPEC.read_text()
    assert yaml_process.load(text) == (True, load_yaml(text))
    # The cdi fact's whole reading of the spec is the same either way.
    with_worker = parse_spec(text, "/etc/cdi/nvidia.yaml")
    yaml_process.stop()
    assert yaml_process.load(text) == (False, None)
    assert parse_spec(text, "/etc/cdi/nvidia.yaml") == with_worker
    assert with_worker.devices and with_worker.error is None


@pytest.mark.parametrize("text, why", [
    ("when: 2001-12-14\n", "not JSON"),  # a date
    ("{1: one}\n", "not JSON"),  # a key JSON would turn into "1"
    ("a: !!binary aGVsbG8=\n", "not JSON"),
    ("a: [b\n", "ParserError"),
    (ALIAS_BOMB, "ParseLimit"),
    ("[" * 200 + "]" * 200, "ParseLimit"),
])
def test_what_json_cannot_carry_or_the_loader_refuses_goes_back_to_the_fact(text: str, why: str) -> None:
    import json

    assert answer(json.dumps({"text": text})) == {"fallback": why}


def test_json_faithful_values() -> None:
    assert json_faithful({"a": [1, 2.5, None, True, "x", {"b": float("nan")}]})
    assert not json_faithful({"a": {1, 2}})
    assert not json_faithful({("a",): 1})


def test_through_the_process_a_refusal_is_a_fallback_and_the_worker_stays(worker: None) -> None:
    assert yaml_process.load("a: [b\n") == (False, None)
    assert yaml_process.load("a: 1\n") == (True, {"a": 1})  # still there for the next spec


def test_a_worker_that_never_answers_costs_one_timeout_and_is_not_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_process, "ANSWER_TIMEOUT_S", 0.3)
    yaml_process.start([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = time.monotonic()
        assert yaml_process.load("a: 1\n") == (False, None)
        assert time.monotonic() - started < 3
        assert yaml_process._worker is None  # let go (killed), so the next spec does not wait again
        assert yaml_process.load("a: 1\n") == (False, None)
    finally:
        yaml_process.stop()


def test_a_worker_that_died_is_a_fallback(worker: None) -> None:
    assert yaml_process._worker is not None
    yaml_process._worker.kill()
    yaml_process._worker.wait()
    assert yaml_process.load("a: 1\n") == (False, None)


def test_only_a_dir_that_holds_yaml_starts_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "spec.json").write_text("{}")
    (tmp_path / "yaml").mkdir()
    (tmp_path / "yaml" / "nvidia.yaml").write_text("cdiVersion: 0.5.0\n")
    assert not yaml_process.default_dirs_hold_yaml((str(tmp_path / "empty"), str(tmp_path / "json"), str(tmp_path / "none")))
    assert yaml_process.default_dirs_hold_yaml((str(tmp_path / "empty"), str(tmp_path / "yaml")))


@pytest.mark.parametrize("argv, starts", [
    (["check"], True),
    (["check", "--no-probes", "--format", "json"], True),
    (["facts", "--record", "b.json"], True),
    (["check", "--root", "/host"], False),  # another tree's specs: the fact parses them itself
    (["check", "--root=/host"], False),
    (["check", "--replay", "b.json"], False),
    (["explain", "--gpus", "all"], False),
])
def test_which_command_lines_start_it(argv: list[str], starts: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUDOCTOR_ROOT", raising=False)
    assert judges_this_host(argv) is starts
    monkeypatch.setenv("GPUDOCTOR_ROOT", "/host")
    assert not judges_this_host(argv)


def test_it_starts_early_only_with_a_core_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[bool] = []
    monkeypatch.setattr(yaml_process, "start", lambda argv=None: started.append(True))
    monkeypatch.setattr(yaml_process, "default_dirs_hold_yaml", lambda dirs=(): True)
    monkeypatch.setattr(yaml_process, "usable_cpus", lambda: 2)
    yaml_process.start_early()
    assert started == []
    monkeypatch.setattr(yaml_process, "usable_cpus", lambda: 16)
    yaml_process.start_early()
    assert started == [True]


def test_the_worker_does_not_outlive_gpudoctor() -> None:
    """Stopped at exit (atexit), and ended by its input's end where no exit handler ran (a SIGKILL)."""
    import os
    import subprocess

    code = ("import os, sys; from gpudoctor.facts import yaml_process; yaml_process.start(); "
            "print(yaml_process._worker.pid, flush=True); "
            "assert yaml_process.load('a: 1') == (True, {'a': 1}); "
            "os._exit(0) if sys.argv[1] == 'hard' else None")
    for how in ("atexit", "hard"):
        proc = subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True, timeout=30, cwd="/",
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        assert proc.returncode == 0, proc.stderr
        pid = int(proc.stdout.split()[0])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        assert not _alive(pid), how


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
