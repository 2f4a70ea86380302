"""`gpudoctor explain`: a table of real-world GPU requests → parse, pitfalls, corrected CLI spelling.

Expected values come from docker/cli opts/gpus.go, moby's device handling, docker-py and the
Compose docs (docs/docker-gpu-internals.md §1, §5, §6; failure-modes.md §10); the --gpus
rows are also checked against the real CLI in tests/test_explain_docker.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from gpudoctor.explain.command import explain_one
from gpudoctor.explain.model import Explanation
from gpudoctor.explain.pitfalls import FAILURE_MODES, PITFALLS

ALL = {"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}}


def cli_req(count: int = 0, ids: list[str] | None = None, caps: list[list[str]] | None = None, driver: str = "", options: dict | None = None) -> dict[str, Any]:
    return {"Driver": driver, "Count": count, "DeviceIDs": ids, "Capabilities": caps or [["gpu"]], "Options": options or {}}


def sdk_req(count: Any = 0, ids: list | None = None, caps: list | None = None, driver: str = "") -> dict[str, Any]:
    return {"Driver": driver, "Count": count, "DeviceIDs": ids or [], "Capabilities": caps or [], "Options": {}}


def compose_req(count: int = 0, ids: list[str] | None = None, caps: list[list[str]] | None = None, driver: str = "nvidia") -> dict[str, Any]:
    return {"Driver": driver, "Count": count, "DeviceIDs": ids, "Capabilities": caps, "Options": None}


@dataclass(frozen=True)
class Row:
    input: str
    kind: str
    requests: list[dict[str, Any]] | None  # None: the client rejects it
    pitfalls: set[str]
    cli: str | None = None  # first corrected CLI spelling
    rejected: str | None = None  # exact client error (modern docker CLI / docker-py)
    runtime: str | None = None


COMPOSE_OK = """services:
  app:
    image: nvidia/cuda:12.4.1-base-ubuntu22.04
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              count: all
              capabilities: [gpu]
"""
COMPOSE_SPLIT = """services:
  app:
    image: img
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
            - capabilities: [gpu]
"""
COMPOSE_BOTH = """- driver: nvidia
  count: 1
  device_ids: ["0"]
  capabilities: [gpu]
"""
COMPOSE_NO_CAPS = """devices:
  - driver: nvidia
    count: all
"""
COMPOSE_COUNT_WORD = """- driver: nvidia
  count: two
  capabilities: [gpu]
"""
COMPOSE_INT_IDS = """- driver: nvidia
  device_ids: [0, 1]
  capabilities: [gpu]
"""
COMPOSE_CDI = """services:
  app:
    image: img
    deploy:
      resources:
        reservations:
          devices:
            - driver: cdi
              device_ids: [nvidia.com/gpu=all]
              capabilities: [gpu]
"""
COMPOSE_ENV_ONLY = """services:
  app:
    image: img
    environment:
      - NVIDIA_VISIBLE_DEVICES=all
"""
COMPOSE_RUNTIME = """version: "3.8"
services:
  app:
    image: img
    runtime: nvidia
    environment:
      NVIDIA_VISIBLE_DEVICES: "0"
"""
COMPOSE_NO_COUNT = """- driver: nvidia
  capabilities: [gpu, utility, compute]
"""
COMPOSE_GPUS_ALL = """services:
  app:
    image: img
    gpus: all
"""
COMPOSE_UNKNOWN_KEY = """- driver: nvidia
  count: 1
  gpu_ids: ["0"]
  capabilities: [gpu]
"""

ROWS = [
    # --- --gpus values (failure-modes.md #46, #47) ---
    Row("all", "gpus", [ALL], set(), "docker run --rm --gpus all IMAGE"),
    Row("--gpus all", "cmdline", [ALL], set(), "docker run --rm --gpus all IMAGE"),
    Row("count=all", "gpus", [ALL], set(), "docker run --rm --gpus all IMAGE"),
    Row("1", "gpus", [cli_req(1)], {"gpus.count-not-index"}, "docker run --rm --gpus count=1 IMAGE"),
    Row("2", "gpus", [cli_req(2)], {"gpus.count-not-index"}, "docker run --rm --gpus count=2 IMAGE"),
    Row("count=2", "gpus", [cli_req(2)], set(), "docker run --rm --gpus count=2 IMAGE"),
    Row("0", "gpus", [cli_req(0)], {"request.count-zero"}, "docker run --rm --gpus device=0 IMAGE"),
    Row("device=1", "gpus", [cli_req(0, ["1"])], set(), "docker run --rm --gpus device=1 IMAGE"),
    Row('"device=0,1"', "gpus", [cli_req(0, ["0", "1"])], set(), "docker run --rm --gpus '\"device=0,1\"' IMAGE"),
    Row("device=0,1", "gpus", [cli_req(1, ["0"])], {"gpus.unquoted-device-list"}, "docker run --rm --gpus '\"device=0,1\"' IMAGE"),
    Row("device=0,1,2", "gpus", [cli_req(2, ["0"])], {"gpus.unquoted-device-list"}, "docker run --rm --gpus '\"device=0,1,2\"' IMAGE"),
    Row('"capabilities=compute,utility"', "gpus", [cli_req(1, caps=[["compute", "utility", "gpu"]])], set(),
        "docker run --rm --gpus 'count=1,\"capabilities=compute,utility\"' IMAGE"),
    Row("capabilities=compute,utility", "gpus", None, {"gpus.unquoted-list"}, "docker run --rm --gpus 'all,\"capabilities=compute,utility\"' IMAGE",
        rejected='invalid argument "capabilities=compute,utility" for "--gpus" flag: invalid count (utility): value must be either "all" or an integer: invalid syntax'),
    Row("device=0, capabilities=compute,utility", "gpus", None, {"gpus.space-after-comma"},
        "docker run --rm --gpus 'device=0,\"capabilities=compute,utility\"' IMAGE",
        rejected="invalid argument \"device=0, capabilities=compute,utility\" for \"--gpus\" flag: unexpected key ' capabilities' in ' capabilities=compute'"),
    Row("device=0,capabilities=compute,utility", "gpus", None, {"gpus.unquoted-list"},
        "docker run --rm --gpus 'device=0,\"capabilities=compute,utility\"' IMAGE",
        rejected='invalid argument "device=0,capabilities=compute,utility" for "--gpus" flag: invalid count (utility): value must be either "all" or an integer: invalid syntax'),
    Row("foo", "gpus", None, {"gpus.bad-count"}, None,
        rejected='invalid argument "foo" for "--gpus" flag: invalid count (foo): value must be either "all" or an integer: invalid syntax'),
    Row("bogus=1", "gpus", None, {"gpus.unknown-key"}, None, rejected="invalid argument \"bogus=1\" for \"--gpus\" flag: unexpected key 'bogus' in 'bogus=1'"),
    Row("1,count=2", "gpus", None, {"gpus.key-repeated"}, "docker run --rm --gpus count=2 IMAGE",
        rejected="invalid argument \"1,count=2\" for \"--gpus\" flag: gpu request key 'count' can be specified only once"),
    Row("all,1", "gpus", [cli_req(1)], {"gpus.count-overridden", "gpus.count-not-index"}, "docker run --rm --gpus count=1 IMAGE"),
    Row('"device=0,1', "gpus", None, {"gpus.csv-quoting"}, "docker run --rm --gpus '\"device=0,1\"' IMAGE",
        rejected='invalid argument "\\"device=0,1" for "--gpus" flag: parse error on line 1, column 12: extraneous or missing " in quoted-field'),
    Row("GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821", "gpus", None, {"gpus.bad-count"}, None,
        rejected='invalid argument "GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821" for "--gpus" flag: invalid count (GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821): value must be either "all" or an integer: invalid syntax'),
    Row("capabilities=all", "gpus", [cli_req(1, caps=[["all", "gpu"]])], {"request.capability-unknown"},
        "docker run --rm --gpus count=1 -e NVIDIA_DRIVER_CAPABILITIES=all IMAGE"),
    Row('"capabilities=compute"', "gpus", [cli_req(1, caps=[["compute", "gpu"]])], {"request.capabilities-narrow"}, None),
    Row("device=", "gpus", [cli_req(0, [""])], {"request.empty-device-id"}, None),
    Row("device=MIG-GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821/1/0", "gpus",
        [cli_req(0, ["MIG-GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821/1/0"])], {"request.mig-legacy-name"}, None),
    Row('"device=nvidia.com/gpu=0"', "gpus", [cli_req(0, ["nvidia.com/gpu=0"])], {"request.cdi-name-in-gpus"},
        "docker run --rm --device nvidia.com/gpu=0 IMAGE"),
    Row("driver=cdi", "gpus", [cli_req(1, driver="cdi")], {"cdi.count-or-options"}, None),
    Row("", "gpus", None, {"gpus.empty"}, None, rejected='invalid argument "" for "--gpus" flag: EOF'),
    # --- whole command lines ---
    Row('docker run --rm --gpus "device=0,1" nvidia/cuda:12.4.1-base-ubuntu22.04 nvidia-smi', "cmdline", [cli_req(1, ["0"])],
        {"gpus.unquoted-device-list"}, "docker run --rm --gpus '\"device=0,1\"' nvidia/cuda:12.4.1-base-ubuntu22.04"),
    Row("docker run --rm --gpus '\"device=0,1\"' img", "cmdline", [cli_req(0, ["0", "1"])], set(), "docker run --rm --gpus '\"device=0,1\"' img"),
    Row("docker run --rm -e NVIDIA_VISIBLE_DEVICES=all nvidia/cuda nvidia-smi", "cmdline", [], {"env.visible-devices-without-runtime"},
        "docker run --rm --gpus all nvidia/cuda"),
    Row("docker run --rm nvidia/cuda nvidia-smi", "cmdline", [], {"request.no-gpu"}, "docker run --rm --gpus all nvidia/cuda"),
    Row("docker run --runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=1 img", "cmdline", [], set(),
        "docker run --rm --runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=1 img", runtime="nvidia"),
    Row("docker run --gpus all -e NVIDIA_VISIBLE_DEVICES=1 img", "cmdline", [ALL], {"env.overridden-by-gpus"}, None),
    Row("docker run --gpus device=0 --gpus device=1 img", "cmdline", [cli_req(0, ["0"]), cli_req(0, ["1"])], {"gpus.repeated-flag"},
        "docker run --rm --gpus '\"device=0,1\"' img"),
    Row("docker run --privileged --gpus '\"device=1\"' img", "cmdline", [cli_req(0, ["1"])], {"request.privileged-all-gpus"}, None),
    Row("docker run --device /dev/nvidia0 img", "cmdline", [], {"request.raw-device-nodes"}, "docker run --rm --gpus device=0 img"),
    Row("docker run --device nvidia.com/gpu=all img", "cmdline",
        [{"Driver": "cdi", "Count": 0, "DeviceIDs": ["nvidia.com/gpu=all"], "Capabilities": None, "Options": None}], set(),
        "docker run --rm --device nvidia.com/gpu=all img"),
    Row("nvidia-docker run img", "cmdline", [], set(), None, runtime="nvidia"),
    Row("docker run --gpus '\"device=2,3\"' -e CUDA_VISIBLE_DEVICES=2 img", "cmdline", [cli_req(0, ["2", "3"])], {"env.cuda-visible-devices"}, None),
    Row("sudo docker run -it --gpus 2 img bash", "cmdline", [cli_req(2)], {"gpus.count-not-index"}, "docker run --rm --gpus count=2 img"),
    # --- Docker SDK (#48) ---
    Row("docker.types.DeviceRequest(count=-1)", "sdk", [sdk_req(-1)], {"request.no-capabilities"}, "docker run --rm --gpus all IMAGE"),
    Row('docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])', "sdk", [sdk_req(-1, caps=[["gpu"]])], set(), "docker run --rm --gpus all IMAGE"),
    Row('DeviceRequest(count=-1, capabilities=["gpu"])', "sdk", [sdk_req(-1, caps=["gpu"])], {"request.capabilities-flat"}, None),
    Row('DeviceRequest(device_ids=[0, 1], capabilities=[["gpu"]])', "sdk", [sdk_req(0, [0, 1], [["gpu"]])], {"request.device-ids-not-strings"}, None),
    Row('DeviceRequest(count=1, device_ids=["1"], capabilities=[["gpu"]])', "sdk", [sdk_req(1, ["1"], [["gpu"]])], {"request.count-and-device-ids"},
        "docker run --rm --gpus device=1 IMAGE"),
    Row('DeviceRequest(driver="nvidia", count=-1)', "sdk", [sdk_req(-1, driver="nvidia")], {"request.no-capabilities"}, None),
    Row('DeviceRequest(count="all", capabilities=[["gpu"]])', "sdk", [sdk_req("all", caps=[["gpu"]])], {"sdk.client-error"}, None,
        rejected="ValueError: DeviceRequest.count must be an integer"),
    Row('DeviceRequest(gpus=2, capabilities=[["gpu"]])', "sdk", [sdk_req(0, caps=[["gpu"]])], {"sdk.ignored-keyword", "request.count-zero"}, None),
    Row('client.containers.run("img", runtime="nvidia", device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])])', "sdk",
        [sdk_req(-1, caps=[["gpu"]])], set(), "docker run --rm --runtime=nvidia --gpus all img", runtime="nvidia"),
    Row('client.containers.run("img", gpus="all")', "sdk", [], {"sdk.client-error"}, None,
        rejected="TypeError: run() got an unexpected keyword argument 'gpus'"),
    Row('client.containers.run("img", "nvidia-smi")', "sdk", [], {"request.no-gpu"}, "docker run --rm --gpus all img"),
    Row('req = DeviceRequest(device_ids=["0"], capabilities=[["gpu"]])\nclient.containers.run("img", device_requests=[req])', "sdk",
        [sdk_req(0, ["0"], [["gpu"]])], set(), "docker run --rm --gpus device=0 img"),
    Row('api.create_container("img", runtime="nvidia", host_config=api.create_host_config(device_requests=[{"Count": -1, "Capabilities": [["gpu"]]}]))',
        "sdk", [sdk_req(-1, caps=[["gpu"]])], {"sdk.runtime-top-level"}, None, runtime="nvidia"),
    Row('DeviceRequest(driver="cdi", device_ids=["nvidia.com/gpu=all"])', "sdk", [sdk_req(0, ["nvidia.com/gpu=all"], driver="cdi")], set(),
        "docker run --rm --device nvidia.com/gpu=all IMAGE"),
    # --- Compose (#49) ---
    Row(COMPOSE_OK, "compose", [compose_req(-1, caps=[["gpu"]])], set(), "docker run --rm --gpus all,driver=nvidia nvidia/cuda:12.4.1-base-ubuntu22.04"),
    Row(COMPOSE_SPLIT, "compose", [compose_req(-1), compose_req(-1, caps=[["gpu"]], driver="")], {"compose.split-device-item", "compose.missing-capabilities"}, None),
    Row(COMPOSE_BOTH, "compose", [compose_req(1, ["0"], [["gpu"]])], {"compose.count-and-device-ids"}, "docker run --rm --gpus device=0,driver=nvidia IMAGE"),
    Row(COMPOSE_NO_CAPS, "compose", [compose_req(-1)], {"compose.missing-capabilities"}, None),
    Row(COMPOSE_COUNT_WORD, "compose", [compose_req("two", caps=[["gpu"]])], {"compose.bad-count"}, None),
    Row(COMPOSE_INT_IDS, "compose", [compose_req(0, ["0", "1"], [["gpu"]])], {"compose.device-ids-not-strings"}, None),
    Row(COMPOSE_CDI, "compose", [compose_req(0, ["nvidia.com/gpu=all"], [["gpu"]], driver="cdi")], set(), "docker run --rm --device nvidia.com/gpu=all img"),
    Row(COMPOSE_ENV_ONLY, "compose", [], {"env.visible-devices-without-runtime"}, "docker run --rm --gpus all img"),
    Row(COMPOSE_RUNTIME, "compose", [], set(), None, runtime="nvidia"),
    Row(COMPOSE_NO_COUNT, "compose", [compose_req(-1, caps=[["gpu", "utility", "compute"]])], set(), None),
    Row(COMPOSE_GPUS_ALL, "compose", [{"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": None}], set(), None),
    Row(COMPOSE_UNKNOWN_KEY, "compose", [compose_req(1, caps=[["gpu"]])], {"compose.unknown-key"}, None),
    # --- NVIDIA_VISIBLE_DEVICES (#50, #52) ---
    Row("NVIDIA_VISIBLE_DEVICES=0,1", "env", [], set(), "docker run --rm --gpus '\"device=0,1\"' IMAGE"),
    Row("NVIDIA_VISIBLE_DEVICES=all", "env", [], set(), "docker run --rm --gpus all IMAGE"),
    Row("NVIDIA_VISIBLE_DEVICES=MIG-GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821/1/0", "env", [], set(), None),
]


def _one(row: Row) -> Explanation:
    items = explain_one(row.input, kind=None)
    assert len(items) == 1, items
    ex = items[0]
    assert isinstance(ex, Explanation), ex
    return ex


@pytest.mark.parametrize("row", ROWS, ids=[f"{i:02d}-{r.kind}" for i, r in enumerate(ROWS)])
def test_table(row: Row) -> None:
    ex = _one(row)
    assert ex.kind == row.kind
    got_requests = [d.to_api() for d in ex.request.device_requests] if ex.request else []
    if row.requests is not None:
        assert got_requests == row.requests
    assert {p.id for p in ex.pitfalls} == row.pitfalls, [(p.id, p.summary) for p in ex.pitfalls]
    if row.rejected is not None:
        assert ex.rejected is not None and ex.rejected.text == row.rejected
    elif row.requests is None:
        assert ex.rejected is not None  # the CLI refuses it
    if row.cli is not None:
        assert ex.corrections and ex.corrections[0].cli == row.cli, [c.cli for c in ex.corrections]
    if row.runtime is not None:
        assert ex.request is not None and ex.request.runtime == row.runtime
    # Every pitfall names a catalogued failure mode and carries a reason; exit code follows the pitfalls.
    for p in ex.pitfalls:
        assert FAILURE_MODES[p.failure_mode] == p.failure_mode_number and p.summary
    assert ex.exit_code == (1 if (row.pitfalls or ex.rejected) else 0)


def test_table_is_large_and_covers_request_pitfall_section() -> None:
    assert len(ROWS) >= 40
    seen = {pid for r in ROWS for pid in r.pitfalls}
    modes = {PITFALLS[pid] for pid in seen}
    # failure-modes.md §10, entries 45–53: every one is hit by at least one row.
    section10 = {name for name, n in FAILURE_MODES.items() if 45 <= n <= 53}
    assert section10 <= modes, section10 - modes
    assert {"sdk", "compose", "cmdline", "gpus", "env"} <= {r.kind for r in ROWS}
