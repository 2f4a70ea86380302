"""deploy/daemonset.yaml and deploy/job.yaml validated against Kubernetes' own OpenAPI schemas (kubernetes-validate,
strict: an unknown or misplaced field is an error), and held to what deploy/README.md promises: the host mounted
read-only, resource limits, no privilege beyond hostPID, the JSON report on stdout. tests/test_image.py runs their
exact command and mounts in gpudoctor's image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
MANIFESTS = ("daemonset.yaml", "job.yaml")
# The oldest Kubernetes still supported upstream when this was written, and the newest schemas the package ships.
VERSIONS = ("1.31.0", kubernetes_validate.latest_version())


def load(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    assert len(docs) == 1
    return docs[0]


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_valid_kubernetes(name: str, version: str) -> None:
    kubernetes_validate.validate(load(name), version, strict=True)


def test_the_validator_refuses_a_broken_manifest() -> None:
    """The validator is not a rubber stamp: a misspelt field and a wrong type are both refused."""
    bad = load("job.yaml")
    pod_spec(bad)["containers"][0]["volumeMount"] = pod_spec(bad)["containers"][0].pop("volumeMounts")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)
    bad = load("daemonset.yaml")
    pod_spec(bad)["hostPID"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("name", MANIFESTS)
def test_least_privilege_and_limits(name: str) -> None:
    spec = pod_spec(load(name))
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert volumes[mounts["/host"]["name"]]["hostPath"]["path"] == "/" and mounts["/host"]["readOnly"] is True
    # Every hostPath is mounted read-only; the only writable place is an emptyDir for /tmp.
    for m in container["volumeMounts"]:
        if "hostPath" in volumes[m["name"]]:
            assert m.get("readOnly") is True, m
        else:
            assert "emptyDir" in volumes[m["name"]]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert "add" not in sc["capabilities"]
    assert not spec.get("hostNetwork") and not spec.get("hostIPC") and spec["hostPID"] is True
    assert spec["automountServiceAccountToken"] is False
    limits = container["resources"]["limits"]
    assert set(limits) == {"cpu", "memory"}
    assert "--root" in container["args"] and container["args"][container["args"].index("--root") + 1] == "/host"
    assert container["args"][-2:] == ["--format", "json"]
    assert next(e["value"] for e in container["env"] if e["name"] == "DOCKER_HOST").startswith("unix:///host/")


def test_job_gates_on_the_exit_code_and_daemonset_selects_gpu_nodes() -> None:
    job = load("job.yaml")
    assert job["spec"]["backoffLimit"] == 0 and pod_spec(job)["restartPolicy"] == "Never"
    assert pod_spec(job)["containers"][0]["command"] == ["gpudoctor"]
    ds = load("daemonset.yaml")
    assert pod_spec(ds)["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod_spec(ds)["containers"][0]["command"] == ["python3", "-m", "gpudoctor.repeat"]


def test_repeat_runs_again_and_stops_on_sigterm() -> None:
    """gpudoctor.repeat (the DaemonSet's loop): each run a fresh `gpudoctor`, its output on stdout; as PID 1 a
    pod is stopped by SIGTERM, which must end the wait at once rather than after the interval."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "GPUDOCTOR_REPEAT_TIMES": "2"}
    proc = subprocess.run([sys.executable, "-m", "gpudoctor.repeat", "0.1", "--version"], capture_output=True,
                          text=True, env=env, timeout=60, cwd="/")
    assert proc.returncode == 0 and proc.stdout.count("gpudoctor ") == 2
    assert "run 2 exited 0" in proc.stderr
    env.pop("GPUDOCTOR_REPEAT_TIMES")
    long = subprocess.Popen([sys.executable, "-m", "gpudoctor.repeat", "3600", "--version"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    deadline = time.monotonic() + 30
    line = ""
    while "run 1 exited" not in line and time.monotonic() < deadline:
        line = long.stderr.readline()
    long.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert long.wait(timeout=10) == 0 and time.monotonic() - started < 5
    assert subprocess.run([sys.executable, "-m", "gpudoctor.repeat", "x"], capture_output=True, cwd="/").returncode == 2
