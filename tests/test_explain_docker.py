"""Cross-check `explain` against the real docker CLI and a real (private) dockerd.

For every --gpus value the real CLI must produce exactly the DeviceRequest we predict (read back
with `docker inspect`), or reject it with exactly our error text. SDK-shaped requests are sent
with the Docker SDK and the daemon's errors compared with ours. Marked `docker`: needs root, a
`dockerd` binary, a docker CLI and Debian's static busybox; the daemon is private (own socket,
data-root, exec-root, containerd namespace in a temp dir) and is stopped and removed at the end.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from gpudoctor.explain.analysis import E_BOTH, analyze, could_not_select
from gpudoctor.explain.gpus_flag import parse_gpus_value
from gpudoctor.explain.sdk import parse_sdk

pytestmark = pytest.mark.docker

IMAGE = "probe:busybox"
CLIS = [p for p in ("/usr/local/bin/docker", "/usr/bin/docker") if os.access(p, os.X_OK)]


def _dockerd() -> str | None:
    return shutil.which("dockerd") or next((p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd") if os.access(p, os.X_OK)), None)


def _busybox() -> str | None:
    return next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.access(p, os.X_OK)), None)


class TinyDockerd:
    """A private dockerd of our own: {"iptables": false, "bridge": "none"}, everything under one temp dir."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gpd-explain-", dir="/tmp"))
        self.sock = self.dir / "d.sock"
        self.ns = "gpdx-" + self.dir.name[-8:]
        (self.dir / "daemon.json").write_text(json.dumps({"iptables": False, "bridge": "none"}))
        self.log = open(self.dir / "dockerd.log", "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["PATH"] = env.get("PATH", "") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        self.proc = subprocess.Popen(
            [_dockerd() or "dockerd", "--config-file", str(self.dir / "daemon.json"), "--data-root", str(self.dir / "data"),
             "--exec-root", str(self.dir / "exec"), "--pidfile", str(self.dir / "d.pid"), "-H", f"unix://{self.sock}",
             "--containerd-namespace", self.ns, "--containerd-plugins-namespace", self.ns + "-p"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dockerd exited: " + (self.dir / "dockerd.log").read_text(errors="replace")[-2000:])
            if self.sock.exists() and self.cli(CLIS[0], "version").returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("dockerd did not come up")

    def cli(self, cli: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_CONFIG"] = str(self.dir / "cli")
        p = subprocess.run([cli, "-H", f"unix://{self.sock}", *args], input=input, capture_output=True, timeout=60, env=env)
        return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))

    def import_busybox(self) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for d in ("bin", "dev", "proc", "sys", "etc"):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            tar.add(os.path.realpath(_busybox() or "/bin/busybox"), arcname="bin/busybox")
            for applet in ("sh", "true"):
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        r = self.cli(CLIS[0], "import", "-", IMAGE, input=buf.getvalue())
        assert r.returncode == 0, r.stderr

    def close(self) -> None:
        try:
            ids = self.cli(CLIS[0], "ps", "-aq").stdout.split()
            if ids:
                self.cli(CLIS[0], "rm", "-f", *ids)
        finally:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            self.log.close()
            # dockerd's own containerd (if it started one) names our exec-root: stop it by pid.
            for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if str(self.dir).encode() in cmd and pid != os.getpid():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            with open("/proc/self/mounts") as f:
                points = [ln.split()[1] for ln in f if ln.split()[1].startswith(str(self.dir))]
            for m in sorted(points, key=len, reverse=True):
                subprocess.run(["umount", "-l", m], capture_output=True)
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon() -> Iterator[TinyDockerd]:
    if _dockerd() is None:
        pytest.skip("no dockerd binary installed")
    if not CLIS:
        pytest.skip("no docker CLI installed")
    if os.geteuid() != 0:
        pytest.skip("a private dockerd needs root")
    if _busybox() is None:
        pytest.skip("no static busybox (apt-get install busybox-static)")
    d = TinyDockerd()
    try:
        d.import_busybox()
        yield d
    finally:
        d.close()


def _cli_version(cli: str) -> tuple[int, ...]:
    out = subprocess.run([cli, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0,)


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


@pytest.mark.parametrize("cli", CLIS)
def test_gpus_parse_matches_real_cli(daemon: TinyDockerd, cli: str) -> None:
    legacy = _cli_version(cli) < (28, 0, 2)
    for value in GPUS_VALUES:
        ours = parse_gpus_value(value)
        r = daemon.cli(cli, "create", "--gpus", value, IMAGE, "true")
        if ours.rejection is not None:
            assert r.returncode == 125, (value, r.stdout, r.stderr)
            first = r.stderr.strip().splitlines()[0]
            assert first == ours.rejection.full(legacy=legacy), (value, first)
            continue
        assert r.returncode == 0, (value, r.stderr)
        cid = r.stdout.strip()
        got = json.loads(daemon.cli(cli, "inspect", "--format", "{{json .HostConfig.DeviceRequests}}", cid).stdout)
        assert got == [ours.request.to_api()], (value, got)


def test_cdi_device_flag_becomes_cdi_request(daemon: TinyDockerd) -> None:
    """docker/cli >= 25 sends --device vendor/class=name as DeviceRequest{Driver:"cdi"}; a 20.10 daemon then refuses it."""
    from gpudoctor.explain.cmdline import parse_cmdline

    modern = [c for c in CLIS if _cli_version(c) >= (25,)]
    if not modern:
        pytest.skip("no docker CLI >= 25")
    req = parse_cmdline("docker create --device nvidia.com/gpu=all probe:busybox true")[0]
    r = daemon.cli(modern[0], "create", "--device", "nvidia.com/gpu=all", IMAGE, "true")
    assert r.returncode == 0, r.stderr
    got = json.loads(daemon.cli(modern[0], "inspect", "--format", "{{json .HostConfig.DeviceRequests}}", r.stdout.strip()).stdout)
    assert [{k: v for k, v in g.items() if k in ("Driver", "DeviceIDs")} for g in got] == [
        {"Driver": d.driver, "DeviceIDs": list(d.device_ids or ())} for d in req.device_requests
    ]
    start = daemon.cli(modern[0], "start", r.stdout.strip())
    server = daemon.cli(modern[0], "version", "--format", "{{.Server.Version}}").stdout
    if server.startswith("20."):  # no CDI before 25.0: our requirement text is the daemon's answer
        expl = analyze(req, None, "x")
        texts = [e.text for q in expl.requirements for e in q.errors]
        assert any(t in start.stderr for t in texts), start.stderr


def _sdk_client(daemon: TinyDockerd):  # type: ignore[no-untyped-def]
    import docker

    return docker.APIClient(base_url=f"unix://{daemon.sock}", version="auto", timeout=30)


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
def test_sdk_errors_match_real_daemon(daemon: TinyDockerd, snippet: str, pitfall_id: str | None) -> None:
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


def test_count_and_device_ids_reaches_daemon_unchanged(daemon: TinyDockerd) -> None:
    """`--gpus device=0,1` really sends Count 1 + DeviceIDs ["0"]; with no NVIDIA driver the daemon says "could not select"."""
    r = daemon.cli(CLIS[0], "create", "--gpus", "device=0,1", IMAGE, "true")
    cid = r.stdout.strip()
    start = daemon.cli(CLIS[0], "start", cid)
    assert start.returncode != 0
    assert could_not_select("", [["gpu"]]) in start.stderr
    expl = analyze(parse_gpus_request("device=0,1"), None, "device=0,1")
    assert any(e.text == E_BOTH for p in expl.pitfalls for e in p.errors)


def parse_gpus_request(value: str):  # type: ignore[no-untyped-def]
    from gpudoctor.explain.command import _parse

    return _parse("gpus", value, argv=None, source=value)[0]
