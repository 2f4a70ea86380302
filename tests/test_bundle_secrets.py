"""No credentials in support bundles (issue 14, item 3).

Secrets are planted wherever a user's host holds them — daemon.json (registry-mirror userinfo, a
log-opts token, proxy passwords), dockerd's command line and environment, the probe image's `Env`,
the toolkit's config.toml, a CDI spec, `DOCKER_HOST` — and `gpudoctor facts --record` is run as a
user would, through the console script, against a real private dockerd (tests/support/dockerd.py).
Each bundle is then grepped for every planted value: none may remain. The bundles must still
replay to the same check statuses as a live run (values are redacted, not structure).

The one answer no installed engine gives — `/info` of an engine before 20.10, which returned
HttpProxy/HttpsProxy with their passwords (20.10.24 here answers `xxxxx:xxxxx`) — is the real
daemon's `/info` with those fields put back as older engines answered, recorded through
RecordingHost like any answer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from gpudoctor.facts.docker import parse_version_info
from gpudoctor.facts.host import RecordingHost, ReplayHost
from tests.support.cli import run_cli
from tests.support.dockerd import PrivateDockerd, find_dockerd
from tests.support.hosttree import write

pytestmark = pytest.mark.docker

# label → planted value. Each value is unique, so a grep of the bundle finds exactly its leaks.
PLANTED = {
    "daemon.json registry-mirror password": "mirrorpw-4471a",
    "daemon.json log-opts splunk-token": "splunktok-88c2e",
    "daemon.json proxies http-proxy password": "pxpass-19f0b",
    "daemon.json proxies https-proxy password (no scheme)": "pxpass-schemeless-5d21",
    "dockerd command line --label ci-token": "labeltok-6b3d9",
    "dockerd environ AWS_SECRET_ACCESS_KEY": "awssecret-0c7e1",
    "dockerd environ HTTPS_PROXY password": "dproxypw-a4e58",
    "probe image Env GITHUB_TOKEN": "ghp-imagetok-2f9a7",
    "probe image Env PIP_INDEX_URL password": "pippw-7e1c3",
    "config.toml environment CI_JOB_TOKEN": "tomltok-3a8d0",
    "config.toml environment HTTPS_PROXY password": "tomlproxypw-91b4",
    "CDI spec containerEdits env HF_TOKEN": "hftok-cdi-5c6e2",
    "DOCKER_HOST userinfo password": "dockerhostpw-d2f71",
    "/info (engine < 20.10) HttpProxy password": "infoproxypw-44a9c",
    "/info (engine < 20.10) registry mirror password": "infomirrorpw-b83e0",
}
P = PLANTED


class _LabelledDockerd(PrivateDockerd):
    """A private dockerd with extra command-line flags (a label naming a token)."""

    def __init__(self, *args: object, extra_args: tuple[str, ...] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.extra_args = extra_args

    def argv(self) -> list[str]:
        return [*super().argv(), *self.extra_args]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateDockerd]:
    if find_dockerd() is None:
        pytest.skip("no dockerd binary installed")
    if os.geteuid() != 0:
        pytest.skip("a private dockerd needs root")
    bin_dir = tmp_path_factory.mktemp("bin")
    runtime = bin_dir / "nvidia-container-runtime"
    runtime.write_text('#!/bin/sh\nexec runc "$@"\n')
    runtime.chmod(0o755)
    d = _LabelledDockerd(
        None,
        {"runtimes": {"nvidia": {"path": str(runtime)}}},
        env={
            "AWS_SECRET_ACCESS_KEY": P["dockerd environ AWS_SECRET_ACCESS_KEY"],
            "HTTPS_PROXY": f"http://dproxy:{P['dockerd environ HTTPS_PROXY password']}@proxy.example:3128",
        },
        extra_args=("--label", f"ci-token={P['dockerd command line --label ci-token']}"),
    )
    try:
        d.start()
        d.import_busybox()
        cid = d.docker("create", "probe:busybox", check=True).stdout.strip()
        d.docker(
            "commit",
            "--change", f"ENV GITHUB_TOKEN={P['probe image Env GITHUB_TOKEN']}",
            "--change", f"ENV PIP_INDEX_URL=https://pip:{P['probe image Env PIP_INDEX_URL password']}@pypi.example/simple",
            cid, "probe:secret", check=True,
        )
        d.docker("rm", cid, check=True)
        # daemon.json edited after the daemon started (dockerd 20.10 refuses mirror userinfo at start;
        # the file is what an admin left there, and what gpudoctor reads and records).
        d.write_config({
            "runtimes": {"nvidia": {"path": str(runtime)}},
            "registry-mirrors": [f"https://mirroruser:{P['daemon.json registry-mirror password']}@mirror.example.com"],
            "log-driver": "splunk",
            "log-opts": {
                "splunk-token": P["daemon.json log-opts splunk-token"],
                "splunk-url": "https://splunk.example.com:8088",
            },
            "proxies": {
                "http-proxy": f"http://pxuser:{P['daemon.json proxies http-proxy password']}@proxy.example:3128",
                "https-proxy": f"pxuser:{P['daemon.json proxies https-proxy password (no scheme)']}@proxy.example:3128",
                "no-proxy": "localhost,127.0.0.1",
            },
        })
        yield d
    finally:
        d.close()


@pytest.fixture(scope="module")
def toolkit_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config.toml and a CDI spec (in the spec dir that config.toml names), with secrets in them."""
    root = tmp_path_factory.mktemp("toolkit")
    write(root, "/cdi/vendor.yaml", (
        "cdiVersion: 0.5.0\n"
        "kind: example.com/device\n"
        "devices:\n"
        "- name: dev0\n"
        "  containerEdits:\n"
        "    env:\n"
        f"    - HF_TOKEN={P['CDI spec containerEdits env HF_TOKEN']}\n"
        "containerEdits:\n"
        "  env:\n"
        "  - EXAMPLE_MODE=on\n"
    ))
    write(root, "/config.toml", (
        "[nvidia-container-cli]\n"
        f'environment = ["CI_JOB_TOKEN={P["config.toml environment CI_JOB_TOKEN"]}", '
        f'"HTTPS_PROXY=http://tk:{P["config.toml environment HTTPS_PROXY password"]}@proxy.example:3128"]\n'
        'ldconfig = "@/sbin/ldconfig"\n'
        "no-cgroups = false\n"
        "\n"
        "[nvidia-container-runtime]\n"
        'mode = "auto"\n'
        "\n"
        "[nvidia-container-runtime.modes.cdi]\n"
        f'spec-dirs = ["{root}/cdi"]\n'
    ))
    return root


def _leaks(*texts: str) -> list[str]:
    return [label for label, value in PLANTED.items() if any(value in t for t in texts)]


def _statuses(report_json: str) -> dict[str, str]:
    return {c["id"]: c["status"] for c in json.loads(report_json)["checks"]}


def _old_engine_info_bundle(daemon: PrivateDockerd) -> tuple[dict, dict]:
    """The real daemon's /info with the proxy and mirror fields as engines before 20.10 gave them."""
    import docker

    client = docker.APIClient(base_url=daemon.url, version="auto")
    try:
        info = client.info()
    finally:
        client.close()
    proxy = f"http://proxyuser:{P['/info (engine < 20.10) HttpProxy password']}@proxy.example:3128"
    mirror = f"https://mirroruser:{P['/info (engine < 20.10) registry mirror password']}@mirror.example.com/"
    info.update(HttpProxy=proxy, HttpsProxy=proxy, NoProxy="localhost")
    info["RegistryConfig"] = {"Mirrors": [mirror], "IndexConfigs": {"docker.io": {"Mirrors": [mirror], "Name": "docker.io"}}}
    rec = RecordingHost()
    rec.call("docker.info", [daemon.url], lambda: info)
    return json.loads(json.dumps(rec.bundle("test"))), info


def test_no_planted_secret_reaches_a_bundle(daemon, toolkit_files, tmp_path):
    env = daemon.env()
    env["NVIDIA_CTK_CONFIG_FILE_PATH"] = str(toolkit_files / "config.toml")
    probe_args = ["--image", "probe:secret", "--forms", "baseline"]

    # 1. A whole run against the private daemon: daemon.json, dockerd, probe image and probe, toolkit, CDI.
    bundle_a = tmp_path / "a.json"
    rec = run_cli(["facts", "--record", str(bundle_a), *probe_args], env=env, timeout=300)
    assert rec.returncode == 0, rec.stderr
    text_a = bundle_a.read_text()
    ops = {a["op"] for a in json.loads(text_a)["answers"]}
    assert {"docker.info", "probe.image", "probe.run", "proc.environ"} - ops == set(), rec.stdout  # each source was asked

    # 2. DOCKER_HOST with userinfo (docker-py refuses it; the endpoint and its error are recorded).
    bundle_b = tmp_path / "b.json"
    bad_host = {**env, "DOCKER_HOST": f"tcp://dhuser:{P['DOCKER_HOST userinfo password']}@127.0.0.1:9"}
    rec_b = run_cli(["facts", "--record", str(bundle_b), "--no-probes"], env=bad_host, timeout=120)
    assert rec_b.returncode == 0, rec_b.stderr
    text_b = bundle_b.read_text()

    # 3. /info as an engine before 20.10 answered it.
    bundle_c, old_info = _old_engine_info_bundle(daemon)
    text_c = json.dumps(bundle_c)

    leaked = _leaks(text_a, text_b, text_c)
    print(f"\nplanted secrets: {len(PLANTED)}, found in bundles: {len(leaked)}")
    for label in leaked:
        print(f"  leaked: {label}")
    assert leaked == []

    # The bundles replay: same statuses as a live run, and no secret in what the replay shows.
    live = run_cli(["check", "--format", "json", *probe_args], env=env, timeout=300)
    replay = run_cli(["check", "--format", "json", "--replay", str(bundle_a)], env=env, timeout=120)
    assert replay.returncode == live.returncode, replay.stderr
    assert _statuses(replay.stdout) == _statuses(live.stdout)
    facts = run_cli(["facts", "--replay", str(bundle_a)], env=env, timeout=120)
    assert facts.returncode == 0, facts.stderr
    replayed = json.loads(facts.stdout)["facts"]
    assert "nvidia" in {r["name"] for r in replayed["docker"]["runtimes"]}  # the runtime is still registered
    assert replayed["daemon_config"]["data"]["runtimes"]["nvidia"]["path"].endswith("nvidia-container-runtime")
    assert replayed["daemon_config"]["parse_error"] is None  # redacted daemon.json still parses
    assert replayed["toolkit"]["config_error"] is None  # so does config.toml
    assert replayed["toolkit"]["config"]["nvidia-container-cli"]["ldconfig"] == "@/sbin/ldconfig"
    spec = next(s for s in replayed["cdi"]["specs"] if s["path"].endswith("/cdi/vendor.yaml"))
    assert spec["error"] is None and spec["kind"] == "example.com/device"  # and the CDI spec
    assert _leaks(replay.stdout, replay.stderr, facts.stdout) == []

    replay_b = run_cli(["check", "--format", "json", "--replay", str(bundle_b)], env=env, timeout=120)
    assert replay_b.returncode in (0, 1), replay_b.stderr
    assert _leaks(replay_b.stdout, replay_b.stderr) == []

    old = ReplayHost(bundle_c).call("docker.info", [daemon.url], lambda: pytest.fail("a replay never asks"))
    assert parse_version_info({}, None, old)["runtimes"] == parse_version_info({}, None, old_info)["runtimes"]
