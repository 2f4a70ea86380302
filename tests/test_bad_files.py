"""Broken and hostile files where a host's daemon.json, config.toml and CDI specs should be (issue 14 items
2, 6 and 8): each is a finding naming the file, found in bounded time and memory, through the real
console script under `--root`; the tree's own binaries are never run."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import pytest

from gpudoctor.checks import docker as docker_checks
from gpudoctor.facts.host import LiveHost
from gpudoctor.facts.registry import gather
from gpudoctor.model import Status
from tests.support.cli import run_cli
from tests.support.dpkg import write_toolkit_packages

DAEMON_JSON = "etc/docker/daemon.json"
NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/gpudoctor-test.sock", "DOCKER_CONTEXT": ""}


def _directory(p: Path) -> None:
    p.mkdir()


def _loop(p: Path) -> None:
    p.symlink_to(p.name)


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _deep(p: Path) -> None:
    p.write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)


def _parent_is_a_file(p: Path) -> None:
    p.parent.rmdir()
    p.parent.write_text("")


@pytest.mark.parametrize(
    "make, words",
    [
        (_directory, "is a directory, not a regular file: dockerd cannot read its configuration file"),
        (_loop, "Too many levels of symbolic links: dockerd cannot read its configuration file"),
        (_fifo, "is a named pipe (FIFO), not a regular file: dockerd cannot read its configuration file"),
        (_parent_is_a_file, "Not a directory: dockerd cannot read its configuration file"),
        (_deep, "is not valid: invalid JSON: nested deeper than 100 levels"),
    ],
    ids=["directory", "symlink-loop", "fifo", "parent-is-a-file", "nested-100k"],
)
def test_daemon_json_dockerd_cannot_read_fails_naming_it(tmp_path, monkeypatch, make: Callable[[Path], None], words: str):
    for k, v in NO_DOCKER.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "etc/docker").mkdir(parents=True)
    make(tmp_path / DAEMON_JSON)
    started = time.monotonic()
    facts = gather(LiveHost(str(tmp_path)), ["daemon_config", "dockerd_process", "docker"])
    assert time.monotonic() - started < 15 and not facts.errors, facts.errors
    r = docker_checks.daemon_json.fn(daemon_config=facts.values["daemon_config"],
                                     dockerd_process=facts.values["dockerd_process"], docker=facts.values["docker"])
    assert r.status is Status.FAIL and r.summary.startswith("/etc/docker/daemon.json") and words in r.summary, r.summary
    assert r.fix is not None and r.fix.link


def test_a_missing_or_dangling_daemon_json_still_means_defaults(tmp_path, monkeypatch):
    for k, v in NO_DOCKER.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "etc/docker").mkdir(parents=True)
    (tmp_path / DAEMON_JSON).symlink_to("/etc/docker/gone.json")  # ENOENT, as dockerd sees it: defaults
    facts = gather(LiveHost(str(tmp_path)), ["daemon_config", "dockerd_process", "docker"])
    r = docker_checks.daemon_json.fn(daemon_config=facts.values["daemon_config"],
                                     dockerd_process=facts.values["dockerd_process"], docker=facts.values["docker"])
    assert r.status is Status.PASS and "runs on its defaults" in r.summary


def _alias_bomb_spec() -> str:
    rows = ['      - &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    rows += [f"      - &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return ("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: all\n  containerEdits:\n"
            "    deviceNodes:\n    - path: /dev/nvidia0\n    hooks:\n    - path: /usr/bin/nvidia-cdi-hook\n"
            "      hookName: createContainer\n      args:\n" + "\n".join(rows) + "\n")


def test_a_tree_full_of_hostile_files_is_judged_in_bounded_time_and_memory(tmp_path):
    """Before (benchmarks/bad_inputs.py, each file alone): the alias bomb passed 975 MiB and was killed
    at 60 s (past 5 GB in the issue), a FIFO spec blocked 41 s, a FIFO config.toml 31 s, a FIFO
    daemon.json 21 s, and none of them named the file. Now: one run, every file named."""
    root = tmp_path / "root"
    bin_dir = root / "usr/bin"
    bin_dir.mkdir(parents=True)
    ran = tmp_path / "ran.log"
    versions = {"nvidia-ctk": "1.17.8", "nvidia-container-runtime": "1.17.8", "nvidia-container-runtime-hook": "1.17.8",
                "nvidia-container-cli": "1.17.8", "nvidia-cdi-hook": "1.17.8"}
    for name in versions:  # a binary that would leave a trace if gpudoctor ran it
        (bin_dir / name).write_text(f"#!/bin/sh\necho {name} >> {ran}\necho 'version 1.17.8'\n")
        (bin_dir / name).chmod(0o755)
    write_toolkit_packages(root, versions)
    (root / "etc/cdi").mkdir(parents=True)
    (root / "etc/cdi/bomb.yaml").write_text(_alias_bomb_spec())
    os.mkfifo(root / "etc/cdi/pipe.yaml")
    (root / "etc/cdi/deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "etc/cdi/future.yaml").write_text(
        "cdiVersion: 99.0.0\nkind: nvidia.com/gpu\ndevices:\n- name: all\n  containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\n")
    (root / "etc/nvidia-container-runtime").mkdir(parents=True)
    (root / "etc/nvidia-container-runtime/config.toml").write_text(
        '[nvidia-container-cli]\nldconfig = 5\nno-cgroups = "yes"\n')
    (root / "etc/docker").mkdir(parents=True)
    os.mkfifo(root / DAEMON_JSON)

    started = time.monotonic()
    proc = run_cli(["check", "--root", str(root), "--no-probes", "--format", "json"], env={**NO_DOCKER, "PATH": "/usr/bin:/bin"},
                   timeout=120, memory_mib=1024)
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert took < 60, f"took {took:.1f}s"
    checks = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}

    def summaries(check_id: str) -> str:
        return " | ".join(r["summary"] for r in checks[check_id]["results"])

    cdi = summaries("cdi.specs")
    assert "/etc/cdi/bomb.yaml: invalid YAML: aliases expand to more than 10000 nodes" in cdi
    assert "/etc/cdi/pipe.yaml: cannot read: is a named pipe (FIFO), not a regular file" in cdi
    assert "/etc/cdi/deep.json: invalid JSON: nested deeper than 100 levels" in cdi
    assert '/etc/cdi/future.yaml: cdiVersion "99.0.0" is not a CDI spec version' in cdi
    toml = summaries("toolkit.config")
    assert checks["toolkit.config"]["status"] == "fail"
    assert "nvidia-container-cli.ldconfig = 5: the toolkit expects a string" in toml
    assert 'nvidia-container-cli.no-cgroups = "yes": the toolkit expects true or false' in toml
    assert checks["docker.daemon-json"]["status"] == "fail"
    assert "/etc/docker/daemon.json: is a named pipe (FIFO)" in summaries("docker.daemon-json")
    assert checks["toolkit.versions"]["status"] == "pass" and "1.17.8" in summaries("toolkit.versions")
    assert not ran.exists(), f"gpudoctor ran the tree's binaries: {ran.read_text()}"
