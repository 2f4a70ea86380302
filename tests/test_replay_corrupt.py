"""Corrupt or odd replay bundles (issue 14, item 4), through the real console script: `check --replay`
and `facts --replay` exit 3 and name what is wrong — the file, the answer, the fact — never an invented
verdict, never a traceback, and never a hang (a FIFO given as the bundle).

Each bundle is the real H100 capture (tests/fixtures/real-h100-host/bundle.json) with one reviewed
change, or a file that is not a bundle at all."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest

from gpudoctor.facts.host import MAX_BUNDLE_BYTES
from gpudoctor.facts.registry import FactSpec, gather
from tests.support.cli import run_cli

REAL = Path(__file__).parent / "fixtures" / "real-h100-host" / "bundle.json"


def _real() -> dict[str, Any]:
    return json.loads(REAL.read_text())


def _edit(op: str, args: list[Any], change: Callable[[dict[str, Any]], None]) -> Callable[[Path], Path]:
    """A maker: the real bundle with the answer to (op, args) changed in place."""

    def make(tmp: Path) -> Path:
        bundle = copy.deepcopy(_real())
        entry = next(a for a in bundle["answers"] if a["op"] == op and a["args"] == args)
        change(entry)
        path = tmp / "bundle.json"
        path.write_text(json.dumps(bundle))
        return path

    return make


def _file(content: bytes | str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "bundle.json"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    return make


def _whole(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "bundle.json"
        path.write_text(json.dumps(change(copy.deepcopy(_real()))))
        return path

    return make


def _fifo(tmp: Path) -> Path:
    path = tmp / "bundle.fifo"
    os.mkfifo(path)
    return path


def _sparse_huge(tmp: Path) -> Path:
    path = tmp / "huge.json"
    with open(path, "wb") as f:
        f.truncate(MAX_BUNDLE_BYTES + 1)
    return path


def _set_value(value: Any) -> Callable[[dict[str, Any]], None]:
    def change(entry: dict[str, Any]) -> None:
        entry["answer"] = {"value": value}

    return change


def _set_answer(answer: Any) -> Callable[[dict[str, Any]], None]:
    def change(entry: dict[str, Any]) -> None:
        entry["answer"] = answer

    return change


def _drop_stat_fields(entry: dict[str, Any]) -> None:
    entry["answer"]["value"] = {"kind": "char", "mode": "0666"}


def _with(**fields: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda bundle: {**bundle, **fields}


OSRELEASE = ["/proc/sys/kernel/osrelease"]

CASES = {
    # wrong types in an answer: the fact and the answer are named
    "read-value-a-number": (
        _edit("read", OSRELEASE, _set_value(6)),
        r"fact 'platform': the answer to read \[\"/proc/sys/kernel/osrelease\"\] is malformed "
        r"\(answer #\d+: the value must be a string, not a JSON number\)",
    ),
    "stat-value-missing-fields": (
        _edit("stat", ["/dev/nvidia0"], _drop_stat_fields),
        r"fact 'devices': the answer to stat \[\"/dev/nvidia0\"\] is malformed \(answer #\d+: "
        r"mode, uid, gid, rdev_major, rdev_minor, size, mtime missing or of the wrong type\)",
    ),
    "nvml-snapshot-an-array": (
        _edit("nvml.snapshot", [], _set_value([1, 2])),
        r"fact 'nvml': the answer to nvml.snapshot \[\] is a JSON array, not what gpudoctor records there",
    ),
    "endpoint-without-host": (
        _edit("docker.endpoint", [], _set_value({"source": "default"})),
        r"fact 'docker': the answer to docker.endpoint \[\] is not what the fact expects \(KeyError: 'host'\)",
    ),
    # truncated answers
    "answer-empty": (
        _edit("read", OSRELEASE, _set_answer({})),
        r"answer #\d+ \(read \[\"/proc/sys/kernel/osrelease\"\]\) is malformed: "
        r"its answer must hold exactly one of value, oserror, callerror",
    ),
    "callerror-cut-short": (
        _edit("docker.version", ["unix:///var/run/docker.sock"], _set_answer({"callerror": ["timeout"]})),
        r"answer #\d+ \(docker.version \[\"unix:///var/run/docker.sock\"\]\) is malformed: "
        r"'callerror' must be \[kind, message, data\]",
    ),
    "oserror-not-a-pair": (
        _edit("stat", ["/dev/dxg"], _set_answer({"oserror": 2})),
        r"answer #\d+ \(stat \[\"/dev/dxg\"\]\) is malformed: 'oserror' must be \[errno, message\]",
    ),
    "entry-without-args": (
        _whole(lambda b: {**b, "answers": [*b["answers"], {"op": "read", "answer": {"value": "x"}}]}),
        r"answer #92 \(read\) is malformed: 'args' must be an array, not a JSON null",
    ),
    "entry-not-an-object": (
        _whole(lambda b: {**b, "answers": ["read", *b["answers"]]}),
        r"answer #0 is malformed: a JSON string, expected an object with op, args, answer",
    ),
    "answers-missing": (
        _whole(lambda b: {k: v for k, v in b.items() if k != "answers"}),
        r"'answers' must be a list, not a JSON null",
    ),
    "no-answers": (
        _whole(_with(answers=[])),
        r"lacks \d+ answer\(s\) this version needs:\n  the bundle has no answer for ",
    ),
    "meta-a-string": (_whole(_with(meta="options")), r"'meta' must be an object whose 'options' is an object"),
    "root-a-number": (_whole(_with(root=5)), r"'root' must be a string, not a JSON number"),
    # not a bundle at all
    "top-level-array": (
        _whole(lambda b: b["answers"]),
        r"not a gpudoctor bundle \(a JSON array, expected an object with format 'gpudoctor.bundle/v1'\)",
    ),
    "other-format": (_whole(_with(format="gpudoctor.bundle/v0")), r"not a gpudoctor bundle \(expected format"),
    "truncated-file": (_file(REAL.read_text()[: len(REAL.read_text()) // 2]), r"bundle.json is not valid JSON: "),
    "not-json": (_file("NVRM version: 580.159.04\n"), r"bundle.json is not valid JSON: Expecting value: line 1"),
    "not-utf8": (_file(b'{"format": "\xff\xfe"}'), r"bundle.json is not a bundle: not UTF-8 text"),
    "nested-too-deeply": (_file("[" * 200_000 + "]" * 200_000), r"not valid JSON: nested deeper than 100 levels"),
    "missing-file": (lambda tmp: tmp / "nope.json", r"cannot read bundle \S+/nope.json: No such file or directory"),
    "directory": (lambda tmp: tmp, r"cannot read bundle \S+: it is a directory, not a bundle file"),
    "fifo": (_fifo, r"cannot read bundle \S+/bundle.fifo: it is a FIFO \(named pipe\), not a bundle file"),
    "char-device": (lambda tmp: Path("/dev/zero"), r"cannot read bundle /dev/zero: it is a character device"),
    "too-large": (_sparse_huge, r"cannot read bundle \S+/huge.json: \d+ bytes, larger than a bundle can be \(64 MiB\)"),
}


@pytest.mark.parametrize("command", ["check", "facts"])
@pytest.mark.parametrize("case", list(CASES))
def test_corrupt_bundle_exits_3_naming_the_problem(case, command, tmp_path):
    make, message = CASES[case]
    path = make(tmp_path)
    # A short timeout: a FIFO or a device must be refused at once, not read.
    proc = run_cli([command, "--replay", str(path)], timeout=60)
    assert proc.returncode == 3, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    assert proc.stderr.startswith("gpudoctor: cannot replay"), proc.stderr
    import re

    assert re.search(message, proc.stderr), proc.stderr
    assert proc.stdout == ""  # no report, no facts: nothing invented
    assert "Traceback" not in proc.stderr and "Not ready" not in proc.stderr


def test_the_real_bundle_itself_replays(tmp_path):
    # The control for the cases above: the unmodified capture replays (exit 1: that host had no toolkit).
    for command in ("check", "facts"):
        proc = run_cli([command, "--replay", str(REAL)], timeout=60)
        assert proc.returncode in (0, 1), proc.stderr
        assert proc.stdout


def test_a_crashing_fact_reports_where_not_a_traceback():
    def broken(ctx: Any) -> Any:
        return {}["missing"]

    facts = gather_with({"broken": FactSpec("broken", broken, 5, "")})
    err = facts.errors["broken"]
    assert err.kind == "error" and err.message == "KeyError: 'missing'"
    assert "Traceback" not in err.trace and "\n" not in err.trace
    assert err.trace.startswith("test_replay_corrupt.py:")  # the innermost frame: the fact's own code
    assert err.trace.endswith(" in broken")


def gather_with(specs: dict[str, FactSpec]) -> Any:
    from gpudoctor.facts.host import LiveHost

    return gather(LiveHost(), list(specs), specs=specs)
