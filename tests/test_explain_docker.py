"""Cross-check `explain` against the real docker CLI and a real (private) dockerd.

For every --gpus value the real CLI must produce exactly the DeviceRequest we predict (read back
with `docker inspect`), or reject it with exactly our error text. SDK-shaped requests are sent
with the Docker SDK and the daemon's errors compared with ours. Marked `docker`: needs root, a
`dockerd` binary, a docker CLI and Debian's static busybox; the daemon is private (own socket,
data-root, exec-root, containerd namespace in a temp dir, tests/support/dockerd.py) and is stopped and
removed at the end. Each test runs once per engine (`docker20`: Debian's; `docker29`: the one
GPUDOCTOR_TEST_ENGINE_DIRS names) and, where it says so, once per docker CLI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Iterator

import pytest

from gpudoctor.explain.analysis import E_BOTH, analyze, could_not_select
from gpudoctor.explain.gpus_flag import parse_gpus_value
from gpudoctor.explain.sdk import parse_sdk
from tests.support.dockerd import DockerdFactory, PrivateDockerd, find_busybox
from tests.support.engines import engines

pytestmark = pytest.mark.docker

IMAGE = "probe:busybox"


def _cli_version(cli: str) -> tuple[int, ...]:
    out = subprocess.run([cli, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0,)


def _clis() -> dict[str, str]:
    """Every docker CLI at hand, one per version (id `cli20.10.24` → path): the system's and each engine's own."""
    found: dict[str, str] = {}
    candidates = [p for p in ("/usr/local/bin/docker", "/usr/bin/docker") if os.access(p, os.X_OK)]
    candidates += [e.cli for e in engines() if e.cli and e.bin_dir]
    for path in candidates:
        found.setdefault("cli" + ".".join(map(str, _cli_version(path))), path)
    return found


CLI_BY_ID = _clis()
CLIS = list(CLI_BY_ID.values())


@pytest.fixture(scope="module")
def daemon(dockerd_factory: DockerdFactory) -> Iterator[PrivateDockerd]:
    """A private dockerd of the variant's engine ({"iptables": false, "bridge": "none"}) with the busybox image."""
    if not CLIS:
        pytest.skip("no docker CLI installed")
    if find_busybox() is None:
        pytest.skip("no static busybox (apt-get install busybox-static)")
    d = dockerd_factory.private({})
    try:
        d.import_busybox(IMAGE)
        yield d
    finally:
        d.close()


GPUS_VALUES = [
    "all", "-1", "count=all", "1", "count=1", "2", "0", "device=1", '"device=0,1"', "device=0,1",
    "device=GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821", '"device=nvidia.com/gpu=0"', '"capabilities=compute,utility"',
    "driver=nvidia", "all,driver=nvidia", "options=a=b", '"options=a=b,c=d"',
    'driver=nvidia,"capabilities=compute,utility",count=1', "all,1", "count=2,1", "capabilities=all", "device=",
    "driver=cdi", "device=0:1", "device=0,1,2",
    # rejected by the CLI
    "foo", "count=foo", "bogus=1", "count=1,count=2", "1,count=2", "", "capabilities=compute,utility",
    "device=0, capabilities=compute,utility", "device=0,capabilities=compute,utility", 'a"b', '"device=0,1', '"device=0"x',
    "all,", "99999999999999999999", "options=a=b,c=d", 'options="a', "GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821",
]


@pytest.mark.parametrize("cli", CLIS, ids=list(CLI_BY_ID))
def test_gpus_parse_matches_real_cli(daemon: PrivateDockerd, cli: str) -> None:
    legacy = _cli_version(cli) < (28, 0, 2)
    for value in GPUS_VALUES:
        ours = parse_gpus_value(value)
        r = daemon.docker("create", "--gpus", value, IMAGE, "true", cli=cli)
        if ours.rejection is not None:
            assert r.returncode == 125, (value, r.stdout, r.stderr)
            first = r.stderr.strip().splitlines()[0]
            assert first == ours.rejection.full(legacy=legacy), (value, first)
            continue
        assert r.returncode == 0, (value, r.stderr)
        cid = r.stdout.strip()
        got = json.loads(daemon.docker("inspect", "--format", "{{json .HostConfig.DeviceRequests}}", cid, cli=cli).stdout)
        assert got == [ours.request.to_api()], (value, got)


def test_cdi_device_flag_becomes_cdi_request(daemon: PrivateDockerd) -> None:
    """docker/cli >= 25 sends --device vendor/class=name as DeviceRequest{Driver:"cdi"}; a 20.10 daemon then refuses it."""
    from gpudoctor.explain.cmdline import parse_cmdline

    modern = [c for c in CLIS if _cli_version(c) >= (25,)]
    if not modern:
        pytest.skip("no docker CLI >= 25")
    req = parse_cmdline("docker create --device nvidia.com/gpu=all probe:busybox true")[0]
    r = daemon.docker("create", "--device", "nvidia.com/gpu=all", IMAGE, "true", cli=modern[0])
    assert r.returncode == 0, r.stderr
    got = json.loads(daemon.docker("inspect", "--format", "{{json .HostConfig.DeviceRequests}}", r.stdout.strip(), cli=modern[0]).stdout)
    assert [{k: v for k, v in g.items() if k in ("Driver", "DeviceIDs")} for g in got] == [
        {"Driver": d.driver, "DeviceIDs": list(d.device_ids or ())} for d in req.device_requests
    ]
    start = daemon.docker("start", r.stdout.strip(), cli=modern[0])
    assert start.returncode != 0
    # 20.10 has no CDI (could not select device driver "cdi"); 29.7 has CDI but no spec for the name
    # (unresolvable CDI devices): either way one of explain's requirement texts is the daemon's answer.
    expl = analyze(req, None, "x")
    texts = [e.text for q in expl.requirements for e in q.errors]
    assert any(t in start.stderr for t in texts), (start.stderr, texts)


def _sdk_client(daemon: PrivateDockerd):  # type: ignore[no-untyped-def]
    import docker

    return docker.APIClient(base_url=f"unix://{daemon.socket}", version="auto", timeout=30)


# Pitfalls whose daemon answer is a Go encoding/json type error (HTTP 400 at create).
JSON_TYPE_PITFALLS = ("request.capabilities-flat", "request.device-ids-not-strings")


@pytest.mark.parametrize(
    "snippet, pitfall_id",
    [
        ('DeviceRequest(count=-1)', "request.no-capabilities"),
        ('DeviceRequest(count=-1, capabilities=["gpu"])', "request.capabilities-flat"),
        ('DeviceRequest(device_ids=[0, 1], capabilities=[["gpu"]])', "request.device-ids-not-strings"),
        ('DeviceRequest(count=-1, capabilities=[["all"]])', "request.capability-unknown"),
        ('DeviceRequest(driver="cdi", device_ids=["nvidia.com/gpu=all"])', None),
    ],
)
def test_sdk_errors_match_real_daemon(
    daemon: PrivateDockerd, snippet: str, pitfall_id: str | None, request: pytest.FixtureRequest
) -> None:
    """Send what the snippet builds with the real SDK; the daemon's message is the one we quote."""
    import docker


    req = parse_sdk(snippet)
    expl = analyze(req, None, snippet)
    ns: dict[str, object] = {"DeviceRequest": docker.types.DeviceRequest}
    real = eval(snippet, ns)  # noqa: S307 - our own literal test input, not user input
    assert dict(real) == req.device_requests[0].to_api()
    api = _sdk_client(daemon)
    hc = api.create_host_config(device_requests=[real])
    try:
        cid = api.create_container(IMAGE, "true", host_config=hc)["Id"]
    except docker.errors.APIError as e:
        matching = [x for p in expl.pitfalls if p.id == pitfall_id for x in p.errors if x.text == e.explanation]
        assert matching, (e.explanation, [x.text for p in expl.pitfalls for x in p.errors])
        assert f"HTTP {e.status_code}" in matching[0].source
        return
    with pytest.raises(docker.errors.APIError) as info:
        api.start(cid)
    msg = info.value.explanation
    if pitfall_id is None:  # a 20.10 daemon has no CDI: the requirement names this exact error
        texts = [x.text for r in expl.requirements for x in r.errors]
    else:
        texts = [x.text for p in expl.pitfalls if p.id == pitfall_id for x in p.errors]
        texts += [x.text for r in expl.requirements for x in r.errors]
    assert any(t == msg for t in texts), (msg, texts)


def test_count_and_device_ids_reaches_daemon_unchanged(daemon: PrivateDockerd) -> None:
    """`--gpus device=0,1` really sends Count 1 + DeviceIDs ["0"]; with no NVIDIA driver the daemon refuses it with
    its no-driver error (20.10: "could not select"; 29.7: no GPU vendor in CDI), which explain names."""
    r = daemon.docker("create", "--gpus", "device=0,1", IMAGE, "true", cli=CLIS[0])
    cid = r.stdout.strip()
    start = daemon.docker("start", cid, cli=CLIS[0])
    assert start.returncode != 0
    assert daemon.engine.no_gpu_driver_error in start.stderr
    if not daemon.engine.at_least(29):
        assert could_not_select("", [["gpu"]]) in start.stderr
    expl = analyze(parse_gpus_request("device=0,1"), None, "device=0,1")
    assert any(e.text in start.stderr for q in expl.requirements for e in q.errors)
    assert any(e.text == E_BOTH for p in expl.pitfalls for e in p.errors)


def parse_gpus_request(value: str):  # type: ignore[no-untyped-def]
    from gpudoctor.explain.command import _parse

    return _parse("gpus", value, argv=None, source=value)[0]
