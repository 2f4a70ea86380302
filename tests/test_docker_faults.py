"""A malformed DOCKER_HOST and a slow daemon are Docker-layer findings, never another layer's (issue 14).

On a simulated healthy host (tests/sim/, real private dockerd) every layer below Docker passes, so any
error row outside `docker.reachable` would be the misattribution the issue saw: "Not ready: NVIDIA
Container Toolkit — could not gather fact 'docker': ValueError: Invalid IPv6 URL" for DOCKER_HOST=tcp://[::1,
and the same "timed out" for a daemon answering each request after 9 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.sim.bed import NVIDIA_RUNTIME
from tests.sim.fixtures import sim_beds  # noqa: F401  (pytest fixture)
from tests.sim.host import SimHost
from tests.sim.toolkit import ToolkitSpec
from tests.support.faults import SlowProxy

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def bed(sim_beds):  # noqa: F811
    return sim_beds.shared(SimHost.standard(1), ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME)


def _check(bed, docker_host: str, timeout: float = 120) -> tuple[dict, float]:
    env = bed.env()
    env["DOCKER_HOST"] = docker_host
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gpudoctor", "check", "--format", "json", "--no-probes", "--root",
                           str(bed.root)], env=env, cwd="/", capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - started
    try:
        return json.loads(proc.stdout), wall
    except ValueError:
        raise AssertionError(f"exit {proc.returncode}, no JSON:\n{proc.stdout[-1000:]}\n{proc.stderr[-2000:]}") from None


def _problems(report: dict) -> dict[str, list[str]]:
    return {c["id"]: [r["summary"] for r in c["results"]] for c in report["checks"] if c["status"] in ("fail", "error")}


@pytest.mark.parametrize(
    "docker_host, why",
    [
        ("tcp://[::1", "Invalid IPv6 URL"),
        ("tcp://localhost:notaport", "Port could not be cast to integer"),
        ("tcp://localhost:99999", "Port out of range"),
        ("localhost:2375", "it has no scheme"),
        ("foo://bar", "unknown scheme 'foo'"),
    ],
)
def test_a_malformed_docker_host_is_docker_reachable_failing(bed, docker_host, why):
    report, _ = _check(bed, docker_host)
    problems = _problems(report)
    assert list(problems) == ["docker.reachable"], problems
    summary = problems["docker.reachable"][0]
    assert "bad-host" in summary and f"DOCKER_HOST={docker_host!r} is not a Docker daemon address" in summary
    assert why in summary
    checks = {c["id"]: c for c in report["checks"]}
    assert "unset DOCKER_HOST DOCKER_CONTEXT" in checks["docker.reachable"]["results"][0]["fix"]["commands"]
    assert report["verdict"]["root_cause"] == "docker.reachable"


def test_a_slow_daemon_is_a_warning_of_docker_reachable(bed, tmp_path):
    """Every request answered after 9 s (the issue's case: the docker fact then took longer than it was
    given, and the toolkit layer was blamed): the daemon works, slowly — docker.reachable says so; no
    fact times out and nothing else is an error."""
    with SlowProxy(str(tmp_path / "slow.sock"), str(bed.dockerd.socket), 9.0) as proxy:
        report, _ = _check(bed, proxy.url)
    assert _problems(report) == {}
    reachable = {c["id"]: c for c in report["checks"]}["docker.reachable"]
    assert reachable["status"] == "warn", reachable
    assert "answers, but slowly: /version took" in reachable["results"][0]["summary"]
    assert reachable["results"][0]["evidence"]["answer_s"] >= 9.0


def test_a_daemon_too_slow_to_answer_fails_docker_reachable_only(bed, tmp_path):
    """Every request answered after 11 s (> the 10 s a call may take): docker.reachable fails as a hung
    daemon, within the docker fact's own bound, and no other fact times out waiting for it."""
    with SlowProxy(str(tmp_path / "slower.sock"), str(bed.dockerd.socket), 11.0) as proxy:
        report, wall = _check(bed, proxy.url)
    problems = _problems(report)
    assert list(problems) == ["docker.reachable"], problems
    assert "did not answer in time (hung or overloaded)" in problems["docker.reachable"][0]
    assert report["verdict"]["root_cause"] == "docker.reachable"
    assert wall < 60
