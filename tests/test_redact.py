"""The redaction rules of gpudoctor/facts/redact.py on the file formats a bundle holds: what is a
secret, that the files still parse to the same structure, that redaction is idempotent, and that
a bundle recorded before redaction existed still replays (its questions are looked up redacted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gpudoctor.facts.host import RecordingHost, ReplayHost
from gpudoctor.facts.redact import REDACTED, is_secret_name, redact, redact_text
from gpudoctor.facts.registry import gather

try:
    import tomllib  # type: ignore[import-not-found]
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name", [
    "splunk-token", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "password", "db_password", "X-Registry-Auth",
    "auths", "apiKey", "OPENAI_API_KEY", "clientSecret", "authtoken", "--token", "credentials",
])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [
    "key", "PATH", "PWD", "HOME", "runtimes", "default-runtime", "no-proxy", "HttpProxy", "passthrough",
    "SecurityOptions", "ssh-key-path", "NVIDIA_VISIBLE_DEVICES", "spec-dirs", "ldconfig",
])
def test_names_that_are_not_secrets(name):
    assert not is_secret_name(name)


DAEMON_JSON = """{
    "registry-mirrors": ["https://mirroruser:mirrorpass@mirror.example.com"],
    "log-driver": "splunk",
    "log-opts": {"splunk-token": "tok-1", "splunk-url": "https://splunk.example.com:8088"},
    "proxies": {"http-proxy": "http://u:pw-2@proxy:3128", "https-proxy": "u:pw-3@proxy:3128", "no-proxy": "localhost"},
    "auth-token": 4242,
    "default-runtime": "nvidia",
    "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": ["--debug"]}}
}
"""

CONFIG_TOML = """[nvidia-container-cli]
environment = ["CI_JOB_TOKEN=tok-4", "HTTPS_PROXY=http://tk:pw-5@proxy:3128"]
ldconfig = "@/sbin/ldconfig"
api_key = 1234

[nvidia-container-runtime]
mode = "cdi"
"""

CDI_YAML = """cdiVersion: 0.6.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    env:
    - HF_TOKEN=tok-6
    deviceNodes:
    - path: /dev/nvidia0
containerEdits:
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  password: my pass phrase # why
"""


def _strip(value):
    """The structure of a parsed file with every leaf a secret could be in reduced to its type."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return type(value).__name__ if not isinstance(value, (int, float)) else "scalar"


@pytest.mark.parametrize("text, parse, secrets", [
    (DAEMON_JSON, json.loads, ["mirrorpass", "tok-1", "pw-2", "pw-3", "4242"]),
    (CONFIG_TOML, tomllib.loads, ["tok-4", "pw-5", "1234"]),
    (CDI_YAML, yaml.safe_load, ["tok-6", "pass phrase"]),
])
def test_files_keep_their_structure_and_lose_their_secrets(text, parse, secrets):
    out = redact_text(text)
    assert [s for s in secrets if s in out] == []
    before, after = parse(text), parse(out)
    assert after.keys() == before.keys()
    assert redact_text(out) == out  # idempotent
    if parse is json.loads:
        assert after["runtimes"] == before["runtimes"] and after["default-runtime"] == "nvidia"
        assert after["registry-mirrors"] == [f"https://{REDACTED}@mirror.example.com"]
        assert after["proxies"]["no-proxy"] == "localhost"
    if parse is tomllib.loads:
        assert after["nvidia-container-cli"]["ldconfig"] == "@/sbin/ldconfig"
        assert after["nvidia-container-runtime"] == {"mode": "cdi"}
        assert len(after["nvidia-container-cli"]["environment"]) == 2
    if parse is yaml.safe_load:
        assert after["devices"][0]["containerEdits"]["deviceNodes"] == [{"path": "/dev/nvidia0"}]
        assert after["containerEdits"]["env"] == ["NVIDIA_VISIBLE_DEVICES=void"]


def test_real_files_are_left_as_they_are():
    # The captures of the H100 host hold no credentials: redaction must not touch a byte of them.
    for name in ("cdi-nvidia.yaml", "config.toml", "daemon.json-with-default-runtime"):
        text = (FIXTURES / "real-h100-docker20-toolkit-cdi" / name).read_text()
        assert redact_text(text) == text, name


def test_values_by_name_and_urls():
    info = {
        "HttpProxy": "http://user:pw-7@proxy:3128",
        "HttpsProxy": "user:pw-8@proxy:3128",
        "NoProxy": "localhost",
        "Labels": ["ci-token=tok-9", "zone=a"],
        "Env": ["GITHUB_TOKEN=tok-10", "PATH=/usr/bin", "PWD=/"],
        "key": "baseline",
        "Runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}},
    }
    out = redact(info)
    assert not any(s in json.dumps(out) for s in ("pw-7", "pw-8", "tok-9", "tok-10"))
    assert out["Env"][1:] == ["PATH=/usr/bin", "PWD=/"] and out["Labels"][1] == "zone=a"
    assert out["key"] == "baseline" and out["Runtimes"] == info["Runtimes"]
    assert redact(out) == out
    assert redact("ghp_x", name="GITHUB_TOKEN") == REDACTED
    assert redact("/usr/bin:/bin", name="PATH") == "/usr/bin:/bin"
    assert redact_text("ssh://deploy@gpu-host") == "ssh://deploy@gpu-host"  # an account, not a credential
    assert redact_text("tcp://u:p@10.0.0.5:2376") == f"tcp://{REDACTED}@10.0.0.5:2376"
    assert "abc.def-123456" not in redact_text("Authorization: Bearer abc.def-123456")


def test_recorded_env_answers_are_redacted_by_variable_name(monkeypatch):
    monkeypatch.setenv("GPUDOCTOR_TEST_TOKEN", "tok-11")
    rec = RecordingHost()
    assert rec.getenv("GPUDOCTOR_TEST_TOKEN") == "tok-11"  # the live run sees the real value
    bundle = rec.bundle("test")
    assert "tok-11" not in json.dumps(bundle)
    assert ReplayHost(bundle).getenv("GPUDOCTOR_TEST_TOKEN") == REDACTED


def test_a_bundle_recorded_before_redaction_still_replays(monkeypatch):
    """Older bundles hold DOCKER_HOST with its password, in answers and in the questions keyed on it;
    made here from a fresh recording with the password put back where redaction took it out."""
    from gpudoctor.facts.docker_client import reset_client_cache

    host = "tcp://user:pw-12@127.0.0.1:9"
    monkeypatch.setenv("DOCKER_HOST", host)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    reset_client_cache()
    rec = RecordingHost()
    live = gather(rec, ["docker"])
    text = json.dumps(rec.bundle("test"))
    assert "pw-12" not in text
    old = json.loads(text.replace(f"tcp://{REDACTED}@", "tcp://user:pw-12@"))
    assert sum(json.dumps(a).count("pw-12") for a in old["answers"]) >= 2  # an answer and a question
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    replayed = gather(ReplayHost(old), ["docker"])
    assert not replayed.errors, replayed.errors
    assert replayed.values["docker"] == live.values["docker"]
    assert replayed.values["docker"].error_kind == "bad-host"


def test_the_real_h100_bundle_is_unchanged_by_redaction():
    # 92 answers of a real GPU host (files, commands, NVML, Docker, probes) hold no credentials:
    # redaction must not alter one of them, or replays would stop matching live runs.
    bundle = json.loads((FIXTURES / "real-h100-host" / "bundle.json").read_text())
    changed = [(a["op"], a["args"]) for a in bundle["answers"]
               if redact(a["answer"]) != a["answer"] or redact(a["args"]) != a["args"]]
    assert changed == []


@pytest.mark.parametrize("capture", ["real-h100-docker20-toolkit-cdi", "cpu-docker20-no-toolkit"])
def test_the_info_fields_kept_are_all_the_docker_fact_reads(capture):
    # A bundle keeps only INFO_FIELDS of /info: what parse_version_info needs must be among them.
    from gpudoctor.facts.docker import INFO_FIELDS, parse_version_info

    info = json.loads((FIXTURES / capture / "docker-info.json").read_text())
    kept = {k: v for k, v in info.items() if k in INFO_FIELDS}
    assert set(info) - set(kept)  # the capture has more than that (labels, proxies, plugins, …)
    assert parse_version_info({}, None, kept) == parse_version_info({}, None, info)
