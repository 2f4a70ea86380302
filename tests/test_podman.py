"""gpudoctor against a real Podman service (Debian's podman, `podman system service`) through DOCKER_HOST: it must
recognise Podman, say plainly that daemon.json does not apply, and run its probes through Podman's Docker API
(this machine has no GPU: the baseline probe, a container without a GPU request, is the one that runs)."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from tests.support.cli import run_cli
from tests.support.podman import PrivatePodman, why_no_podman

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def report() -> Iterator[tuple[dict[str, Any], PrivatePodman]]:
    reason = why_no_podman()
    if reason:
        pytest.skip(reason)
    with PrivatePodman() as podman:
        podman.import_busybox()
        proc = run_cli(["check", "--image", "probe:busybox", "--format", "json"], env=podman.env(), timeout=300)
        assert proc.returncode in (0, 1), proc.stderr
        yield json.loads(proc.stdout), podman


def _results(report: dict[str, Any], check_id: str) -> list[dict[str, Any]]:
    return next(c["results"] for c in report["checks"] if c["id"] == check_id)


def test_podman_is_recognised(report: tuple[dict[str, Any], PrivatePodman]) -> None:
    r, podman = report
    (reachable,) = _results(r, "docker.reachable")
    assert reachable["status"] == "pass" and podman.url in reachable["summary"]
    (engine,) = _results(r, "docker.engine")
    assert engine["status"] == "warn" and engine["summary"].startswith("Podman answers as Docker")
    assert "CDI" in engine["summary"] and "nvidia.com/gpu=all" in " ".join(engine["fix"]["commands"])


def test_daemon_json_is_said_not_to_apply(report: tuple[dict[str, Any], PrivatePodman]) -> None:
    r, _ = report
    for check_id in ("docker.daemon-json", "docker.daemon-json.drift"):
        (res,) = _results(r, check_id)
        assert res["status"] == "skip" and "Podman keep their engine settings elsewhere" in res["summary"], res


def test_probes_run_through_podman(report: tuple[dict[str, Any], PrivatePodman]) -> None:
    r, podman = report
    (baseline,) = _results(r, "containers.baseline")
    assert baseline["status"] == "pass" and baseline["evidence"]["verdict"] == "works", baseline
    assert baseline["evidence"]["seen"] == "no GPU" and baseline["summary"] == "saw no GPU, as expected"
    assert podman.containers() == []  # the probe container was removed


def test_cdi_is_judged_by_podmans_rules(report: tuple[dict[str, Any], PrivatePodman]) -> None:
    """Podman has resolved `--device nvidia.com/gpu=…` itself since 4.1, from /etc/cdi and /var/run/cdi: Docker's
    version rule (CDI needs 25+) and its features.cdi switch do not apply."""
    r, _ = report
    (cdi,) = _results(r, "docker.cdi")
    assert "no CDI support" not in cdi["summary"] and "features.cdi" not in cdi["summary"], cdi["summary"]
    assert cdi["status"] == "pass" and cdi["summary"].startswith("Podman "), cdi
    assert cdi["evidence"]["cdi_spec_dirs"] == ["/etc/cdi", "/var/run/cdi"]
