"""`gpudoctor explain` never exits 3 on input (issue 14 items 2 and 5): a table of nasty inputs through the
real console script, each with the exit code it must give and a phrase its output must hold.

Exit codes (gpudoctor/explain/command.py): 0 explained, 1 pitfalls, 2 bad input; 3 is gpudoctor's own
failure and must never come from what a user typed or pointed at. Every run is capped at 1 GiB of
address space and 60 s, so an input that blows up fails the test instead of the machine.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests.support.cli import run_cli

MEMORY_MIB = 1024
DEEP = 100_000


def alias_bomb(indent: str) -> str:
    """About 1 KB of YAML whose 9 levels of 9 aliases stand for 9**9 strings."""
    rows = [f'{indent}- &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    rows += [f"{indent}- &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(rows) + "\n"


GPU_SERVICE = "services:\n  app:\n    image: x\n    deploy: {resources: {reservations: {devices: [{driver: nvidia, count: all, capabilities: [gpu]}]}}}\n"


@dataclass(frozen=True)
class Nasty:
    id: str
    exit: int
    needle: str  # in stdout (text report) or, for exit 2, in the error line
    text: str | None = None  # the argument itself…
    file: Callable[[Path], Path] | None = None  # …or a file made for it
    args: tuple[str, ...] = ()  # extra arguments (--kind)


def _file(name: str, content: str | bytes) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return p

    return make


def _fifo(name: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        os.mkfifo(d / name)
        return d / name

    return make


def _dir(name: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        (d / name).mkdir()
        return d / name

    return make


NASTY = [
    # -- SDK values decided at run time: explained, never a crash (item 5) --------------------------------
    Nasty("sdk-count-variable", 0, "decided at run time", 'docker.types.DeviceRequest(count=n_gpus, capabilities=[["gpu"]])'),
    Nasty("sdk-device-ids-environ", 0, "decided at run time",
          'client.containers.run("img", device_requests=[DeviceRequest(device_ids=os.environ["GPUS"], capabilities=[["gpu"]])])'),
    Nasty("sdk-device-id-item-environ", 0, "decided at run time", 'DeviceRequest(device_ids=[os.environ["X"]], capabilities=[["gpu"]])'),
    Nasty("sdk-capabilities-variable", 0, "decided at run time", "DeviceRequest(count=-1, capabilities=caps)"),
    Nasty("sdk-capability-item-variable", 0, "decided at run time", "DeviceRequest(count=-1, capabilities=[[c]])"),
    Nasty("sdk-driver-variable", 0, "decided at run time", 'DeviceRequest(driver=d, count=-1, capabilities=[["gpu"]])'),
    Nasty("sdk-options-variable", 0, "decided at run time", 'DeviceRequest(count=-1, capabilities=[["gpu"]], options=o)'),
    Nasty("sdk-requests-variable", 0, "decided at run time", 'client.containers.run("img", device_requests=reqs)'),
    Nasty("sdk-request-item-variable", 0, "decided at run time", 'client.containers.run("img", device_requests=[r])'),
    Nasty("sdk-kwargs-variable", 0, "decided at run time", "DeviceRequest(**kw)"),
    Nasty("sdk-runtime-and-env-variables", 0, "DeviceRequest",
          'client.containers.run(img, runtime=rt, environment={"NVIDIA_VISIBLE_DEVICES": v}, '
          'device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])])'),
    Nasty("sdk-unhashable-dict-key", 0, "DeviceRequest", 'DeviceRequest(count=-1, capabilities=[["gpu"]], options={[1]: 2})'),
    Nasty("sdk-lambda-count", 0, "decided at run time", 'DeviceRequest(count=lambda: 1, capabilities=[["gpu"]])'),
    Nasty("sdk-self-reference", 0, "decided at run time", 'x = x\nDeviceRequest(count=x, capabilities=[["gpu"]])'),
    # -- SDK input too deep or malformed for Python's own parser: bad input (exit 2) -----------------------
    Nasty("sdk-deep-unary", 2, "nested too deeply", file=_file("deep.py", "DeviceRequest(count=" + "-" * DEEP + "1)\n")),
    Nasty("sdk-deep-lists", 2, "not valid Python", "DeviceRequest(count=" + "[" * 300 + "]" * 300 + ")"),
    Nasty("sdk-long-attribute-chain", 2, "nested too deeply", file=_file("chain.py", "x" + ".y" * 50_000 + "()\n")),
    Nasty("sdk-nul-byte", 2, "not valid Python", file=_file("nul.py", b"DeviceRequest(count=1\x00)\n")),
    Nasty("sdk-not-utf8", 2, "not UTF-8", file=_file("latin1.py", b"DeviceRequest(count=1)  # caf\xe9\n")),
    Nasty("sdk-fifo", 2, "is a named pipe (FIFO), not a regular file", file=_fifo("pipe.py")),
    # One 1 MB line (100k device names decided at run time): linear now; it used to take minutes.
    Nasty("sdk-1mb-line", 0, "decided at run time", file=_file(
        "long.py", "DeviceRequest(capabilities=[['gpu']], device_ids=[" + ", ".join(f"gpu_{i:05d}" for i in range(100_000)) + "])\n")),
    # -- Compose ----------------------------------------------------------------------------------------
    Nasty("compose-alias-bomb", 2, "aliases expand to more than 10000 nodes",
          file=_file("bomb.yaml", GPU_SERVICE + "    environment:\n" + alias_bomb("      "))),
    Nasty("compose-recursive-alias", 2, "recursive structure", file=_file("loop.yaml", GPU_SERVICE + "    labels: &l [*l]\n")),
    Nasty("compose-deep-flow", 2, "not valid YAML", file=_file("deep.yaml", "a: " + "[" * DEEP + "]" * DEEP + "\n")),
    Nasty("compose-deep-block", 2, "nested deeper than 100 levels",
          file=_file("block.yaml", "".join(f"{'  ' * i}k{i}:\n" for i in range(150)) + "  " * 150 + "v: 1\n")),
    Nasty("compose-anchors-and-merge-keys", 0, "count: all", file=_file("merge.yaml", (
        "x-gpu: &gpu\n  deploy: {resources: {reservations: {devices: [{driver: nvidia, count: all, capabilities: [gpu]}]}}}\n"
        "services:\n  app:\n    <<: *gpu\n    image: x\n  worker:\n    <<: *gpu\n    image: y\n"))),
    Nasty("compose-fifo", 2, "is a named pipe (FIFO), not a regular file", file=_fifo("pipe.yaml")),
    Nasty("compose-directory", 2, "is a directory, not a regular file", file=_dir("dir.yaml")),
    Nasty("compose-too-big", 2, "larger than 4194304 bytes", file=_file("big.yaml", GPU_SERVICE + "# " + "x" * (5 << 20) + "\n")),
    Nasty("compose-empty", 2, "not a Compose file", file=_file("empty.yaml", "")),
    Nasty("compose-tabs", 2, "not valid YAML", "services:\n\tapp: {}", args=("--kind", "compose")),
    Nasty("compose-not-a-mapping", 2, "not a Compose file", "[1, 2]", args=("--kind", "compose")),
    # -- command lines, --gpus values, NVIDIA_VISIBLE_DEVICES ------------------------------------------------
    Nasty("cmdline-unclosed-quote", 2, "No closing quotation", 'docker run --gpus "all img'),
    Nasty("cmdline-gpus-without-value", 1, "--gpus", "docker run --gpus"),
    Nasty("cmdline-only-separators", 2, "no `docker run`", "; && ||", args=("--kind", "cmdline")),
    Nasty("gpus-100k-devices", 1, "device", "device=" + ",".join(["0"] * 50_000)),
    Nasty("gpus-binary-garbage", 1, "--gpus", "\x01\x02\x7f\u202e"),
    Nasty("env-100k-devices", 0, "NVIDIA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES=" + ",".join(["0"] * 20_000)),
    Nasty("check-id-like", 2, "no check with id", "a.b.c.d.e.f"),
    Nasty("forced-sdk-on-yaml", 2, "no function call", "services: {app: {image: x}}", args=("--kind", "sdk")),
]


@pytest.mark.parametrize("case", NASTY, ids=[c.id for c in NASTY])
def test_nasty_input_never_exits_3(case: Nasty, tmp_path: Path) -> None:
    target = str(case.file(tmp_path)) if case.file else case.text
    assert target is not None
    started = time.monotonic()
    proc = run_cli(["explain", "--no-host", "--no-color", *case.args, target], timeout=60, memory_mib=MEMORY_MIB)
    took = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode == case.exit, f"exit {proc.returncode} (want {case.exit}) after {took:.1f}s:\n{out[-2000:]}"
    assert "internal error" not in out and "Traceback" not in out
    assert case.needle in out, out[-2000:]


def test_the_json_report_of_a_run_time_value_is_valid_json_that_says_so() -> None:
    proc = run_cli(["explain", "--no-host", "--format", "json", 'DeviceRequest(count=n_gpus, device_ids=ids, capabilities=[["gpu"]])'])
    data = json.loads(proc.stdout)
    api = data["items"][0]["request"]["device_requests"][0]
    assert proc.returncode == 0 and api["Count"] == api["DeviceIDs"] == "(decided at run time)"
    assert api["Capabilities"] == [["gpu"]]
    assert data["items"][0]["selection"]["general"].startswith("decided at run time")
