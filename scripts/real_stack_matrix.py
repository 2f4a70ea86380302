#!/usr/bin/env python3
"""The real-stack matrix: put a GPU host with the real NVIDIA Container Toolkit and a real Docker engine into
one state after another, and record for each state

* `ground-truth.json` — what plain `docker run` (and the Docker SDK, for the SDK forms) really did with every
  catalogued GPU request form: exit code, the daemon's error, the device nodes and `nvidia-smi -L` seen inside;
* `bundle.json` — `gpudoctor facts --record --all-forms` (a support bundle of every answer the host gave);
* `report.json` — `gpudoctor check --replay bundle.json --format json`.

Run as root on the GPU machine after `.gpuhost/gpu-host-up.sh --install-toolkit` (see `scripts/real-stack-run.sh`).
It changes the toolkit's config, daemon.json, CDI specs and the toolkit's binaries, and restarts dockerd: never
run it on a host you care about. It restores what it touched between states, never touches the GPU's settings.

    python3 scripts/real_stack_matrix.py --engine 29.7 --out /tmp/matrix [--states a,b] [--list]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KIT = Path("/opt/gpuhost")
STASH = KIT / "toolkit-stash"
TOOLKIT_BINS = ("nvidia-ctk", "nvidia-container-runtime", "nvidia-container-runtime-hook", "nvidia-cdi-hook",
                "nvidia-container-cli")
CONFIG = Path("/etc/nvidia-container-runtime/config.toml")
DAEMON_JSON = Path("/etc/docker/daemon.json")
BASE_DAEMON = {"iptables": False, "bridge": "none"}
IMAGE = "probe:glibc"
LEAK_IMAGE = "probe:nvenv"  # probe:glibc with ENV NVIDIA_VISIBLE_DEVICES=all baked in, as nvidia/cuda images do
DOCKERD_PATH = f"{KIT}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOCKERD_LOG = Path("/var/log/dockerd.log")
# What a probe of the ground truth prints: device nodes, then nvidia-smi -L wherever the toolkit put it.
PROBE = ("echo '== nodes'; ls /dev | grep -E '^nvidia' ; echo '== smi';"
         " for s in nvidia-smi /usr/bin/nvidia-smi /usr/local/nvidia/bin/nvidia-smi; do"
         " if command -v $s >/dev/null 2>&1; then $s -L 2>&1; echo \"smi-rc $?\"; break; fi; done;"
         " echo '== env'; env | grep -E '^NVIDIA_' ; true")


def sh(cmd: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed ({p.returncode}): {p.stderr.strip()[-800:]}")
    return p


# -- dockerd ----------------------------------------------------------------------------------------------------
def dockerd_pids() -> list[int]:
    p = sh("pgrep -x dockerd")
    return [int(x) for x in p.stdout.split()]


def stop_dockerd() -> None:
    for pid in dockerd_pids():
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
    for _ in range(100):
        if not dockerd_pids() and not sh("pgrep -x containerd").stdout.strip():
            break
        time.sleep(0.1)
    sh("pkill -9 -x containerd; rm -f /var/run/docker.pid /var/run/docker.sock")


def start_dockerd(path: str = DOCKERD_PATH) -> dict[str, Any]:
    """Start dockerd as its unit would; return whether it answered and its log's tail when it did not."""
    mark = DOCKERD_LOG.stat().st_size if DOCKERD_LOG.exists() else 0
    env = f"env -i PATH={path} LD_LIBRARY_PATH={KIT}/lib HOME=/root"
    sh(f"(setsid {env} dockerd >>{DOCKERD_LOG} 2>&1 &)")
    for _ in range(60):
        if sh("docker version --format '{{.Server.Version}}'", timeout=10).returncode == 0:
            return {"started": True}
        if not dockerd_pids():
            break
        time.sleep(0.25)
    log = DOCKERD_LOG.read_text(errors="replace")[mark:] if DOCKERD_LOG.exists() else ""
    return {"started": False, "log_tail": log.strip().splitlines()[-8:]}


# -- toolkit state ------------------------------------------------------------------------------------------------
def stash_toolkit() -> None:
    STASH.mkdir(parents=True, exist_ok=True)
    for b in TOOLKIT_BINS:
        if Path("/usr/bin", b).exists() and not (STASH / b).exists():
            shutil.copy2(Path("/usr/bin", b), STASH / b)


def restore_toolkit() -> None:
    for b in TOOLKIT_BINS:
        if (STASH / b).exists():
            shutil.copy2(STASH / b, Path("/usr/bin", b))


def default_config() -> None:
    """config.toml as the toolkit's package writes it (`nvidia-ctk config default`)."""
    CONFIG.parent.mkdir(parents=True, exist_ok=True)
    sh(f"nvidia-ctk config default --output={CONFIG}", check=True)


def compat_workaround() -> None:
    """The kits pair a 1.20 hook with nvidia-container-cli 1.17, which rejects `--cuda-compat-mode`: this turns
    the flag off so the legacy path works (../shared/kits/README.md). Without it the host shows real skew."""
    text = CONFIG.read_text()
    text = text.replace('cuda-compat-mode = "ldconfig"', 'cuda-compat-mode = ""')
    if "[nvidia-container-runtime.modes.legacy]" not in text:
        text += '\n[nvidia-container-runtime.modes.legacy]\ncuda-compat-mode = ""\n'
    if "\n[features]" in text:
        text = text.replace("\n[features]", "\n[features]\nallow-cuda-compat-libs-from-container = true", 1)
    else:
        text += "\n[features]\nallow-cuda-compat-libs-from-container = true\n"
    CONFIG.write_text(text)


def ctk_set(*settings: str) -> None:
    for s in settings:
        sh(f"nvidia-ctk config --in-place --set {s}", check=True)


def write_daemon(extra: dict[str, Any] | None = None, raw: str | None = None) -> None:
    DAEMON_JSON.parent.mkdir(parents=True, exist_ok=True)
    DAEMON_JSON.write_text(raw if raw is not None else json.dumps({**BASE_DAEMON, **(extra or {})}, indent=2))


def register_runtime(*extra: str) -> None:
    sh("nvidia-ctk runtime configure --runtime=docker " + " ".join(extra), check=True)


def cdi_generate(output: str = "/etc/cdi/nvidia.yaml", *extra: str) -> None:
    sh(f"nvidia-ctk cdi generate --output={output} " + " ".join(extra), check=True)


def reset() -> None:
    stop_dockerd()
    restore_toolkit()
    for d in ("/etc/cdi", "/var/run/cdi"):
        shutil.rmtree(d, ignore_errors=True)
    default_config()
    compat_workaround()
    write_daemon()


# -- the states ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class State:
    id: str
    summary: str
    setup: Any  # callable run with dockerd stopped
    after_start: Any = None  # callable run once dockerd answers (e.g. a change the daemon must not see)
    engines: tuple[str, ...] = ("20.10", "29.7")
    dockerd_path: str = DOCKERD_PATH


def _healthy_legacy() -> None:
    ctk_set("nvidia-container-runtime.mode=legacy")
    register_runtime()
    cdi_generate("/etc/cdi/nvidia.yaml", "--device-name-strategy=index", "--device-name-strategy=uuid")


def _hook_late() -> None:
    """The toolkit installed after dockerd started: dockerd found no hook on its PATH at start."""
    for b in ("nvidia-container-runtime-hook", "nvidia-cdi-hook"):
        Path("/usr/bin", b).unlink(missing_ok=True)


def _hook_back() -> None:
    # Well past dockerd's start (gpudoctor allows 1.5 s for /proc's whole-second start time), as a real install is.
    time.sleep(3)
    restore_toolkit()


def _stale_spec() -> None:
    _healthy_legacy()
    spec = Path("/etc/cdi/nvidia.yaml")
    # A spec from an older driver: library paths that no longer exist (what a driver upgrade leaves behind).
    text = spec.read_text()
    import re

    text = re.sub(r"\.so\.(\d+)\.(\d+)\.(\d+)", r".so.\1.0.1", text)
    spec.write_text(text)


def _dup_spec() -> None:
    _healthy_legacy()
    Path("/var/run/cdi").mkdir(parents=True, exist_ok=True)
    cdi_generate("/var/run/cdi/nvidia.yaml")


STATES: tuple[State, ...] = (
    State("installed-unconfigured", "toolkit installed as its packages leave it: no runtime, no CDI spec, mode auto",
          lambda: None),
    State("legacy-runtime", "mode legacy, runtime registered, CDI spec with index and UUID names", _healthy_legacy),
    State("auto-runtime", "mode auto, runtime registered, CDI spec with index and UUID names",
          lambda: (register_runtime(), cdi_generate("/etc/cdi/nvidia.yaml", "--device-name-strategy=index",
                                                    "--device-name-strategy=uuid"))),
    State("auto-runtime-default", "mode auto, runtime registered and the default, CDI spec",
          lambda: (register_runtime("--set-as-default"), cdi_generate())),
    State("cdi-runtime", "mode cdi, runtime registered (default runc), CDI spec",
          lambda: (ctk_set("nvidia-container-runtime.mode=cdi"), register_runtime(), cdi_generate())),
    State("cdi-runtime-default", "mode cdi, runtime registered and the default, CDI spec",
          lambda: (ctk_set("nvidia-container-runtime.mode=cdi"), register_runtime("--set-as-default"), cdi_generate())),
    State("jit-cdi-runtime", "mode jit-cdi, runtime registered, no CDI spec",
          lambda: (ctk_set("nvidia-container-runtime.mode=jit-cdi"), register_runtime())),
    State("cdi-no-runtime", "mode cdi, no runtime registered, CDI spec",
          lambda: (ctk_set("nvidia-container-runtime.mode=cdi"), cdi_generate())),
    State("spec-only", "mode auto, no runtime registered, CDI spec with index and UUID names",
          lambda: cdi_generate("/etc/cdi/nvidia.yaml", "--device-name-strategy=index", "--device-name-strategy=uuid")),
    State("cdi-no-spec", "mode cdi, runtime registered, no CDI spec",
          lambda: (ctk_set("nvidia-container-runtime.mode=cdi"), register_runtime())),
    State("spec-index-only", "mode auto, runtime registered, CDI spec with index names only",
          lambda: (register_runtime(), cdi_generate("/etc/cdi/nvidia.yaml", "--device-name-strategy=index"))),
    State("spec-stale", "mode legacy, runtime registered, CDI spec naming libraries of another driver", _stale_spec),
    State("spec-duplicated", "two NVIDIA CDI specs (/etc/cdi and /var/run/cdi) define the same devices", _dup_spec),
    State("version-skew", "mode legacy, runtime registered: hook 1.20 over nvidia-container-cli 1.17, stock config",
          lambda: (default_config(), ctk_set("nvidia-container-runtime.mode=legacy"), register_runtime(), cdi_generate())),
    State("daemon-json-drift", "runtime written to daemon.json after dockerd started (no restart)",
          lambda: cdi_generate(), after_start=lambda: register_runtime()),
    State("default-runtime-unregistered", "daemon.json names default-runtime nvidia without a runtimes entry",
          lambda: write_daemon({"default-runtime": "nvidia"})),
    State("daemon-json-invalid", "daemon.json is not valid JSON", lambda: write_daemon(raw='{"runtimes": {')),
    State("runtime-binary-missing", "runtime registered but nvidia-container-runtime removed",
          lambda: (register_runtime(), cdi_generate(), Path("/usr/bin/nvidia-container-runtime").unlink())),
    State("legacy-hook-missing", "nvidia-container-runtime-hook removed; runtime registered, CDI spec",
          lambda: (register_runtime(), cdi_generate(), Path("/usr/bin/nvidia-container-runtime-hook").unlink())),
    State("cdi-hook-missing", "nvidia-cdi-hook removed; mode legacy, runtime registered",
          lambda: (ctk_set("nvidia-container-runtime.mode=legacy"), register_runtime(),
                   Path("/usr/bin/nvidia-cdi-hook").unlink())),
    State("hooks-installed-after-start", "toolkit hooks installed after dockerd started; runtime registered, spec",
          lambda: (register_runtime(), cdi_generate(), _hook_late()), after_start=_hook_back),
    State("ldconfig-wrong", "config.toml ldconfig points at a missing binary; mode legacy, runtime registered",
          lambda: (_healthy_legacy(), ctk_set('nvidia-container-cli.ldconfig="@/sbin/ldconfig.missing"'))),
    State("no-cgroups-rootful", "no-cgroups = true on a rootful daemon; mode legacy, runtime registered",
          lambda: (_healthy_legacy(), ctk_set("nvidia-container-cli.no-cgroups=true"))),
    State("cdi-disabled", "features.cdi=false in daemon.json; runtime registered, spec",
          lambda: (register_runtime(), cdi_generate(), _merge_daemon({"features": {"cdi": False}})), engines=("29.7",)),
    State("default-nvidia-leak", "runtime nvidia as the default, mode legacy; probe image bakes NVIDIA_VISIBLE_DEVICES=all",
          lambda: (ctk_set("nvidia-container-runtime.mode=legacy"), register_runtime("--set-as-default"))),
)


def _merge_daemon(extra: dict[str, Any]) -> None:
    data = json.loads(DAEMON_JSON.read_text())
    data.update(extra)
    DAEMON_JSON.write_text(json.dumps(data, indent=2))


# -- ground truth ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Form:
    key: str  # the probe key gpudoctor uses for the same request
    cli: tuple[str, ...] = ()  # docker run arguments before the image
    sdk: dict[str, Any] = field(default_factory=dict)  # containers.run keyword arguments (SDK forms)


def forms(uuid: str | None, n_gpus: int) -> list[Form]:
    gpu = {"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}}
    out = [
        Form("baseline"),
        Form("gpus-all", ("--gpus", "all")),
        Form("sdk-device-request", sdk={"device_requests": [gpu]}),
        Form("sdk-runtime-nvidia", sdk={"runtime": "nvidia", "device_requests": [gpu]}),
        Form("gpus-count-1", ("--gpus", "1")),
        Form("gpus-count-host", ("--gpus", str(n_gpus))),
        Form("gpus-count-over", ("--gpus", str(n_gpus + 1))),
        Form("gpus-device-index:0", ("--gpus", "device=0")),
        Form("caps-compute-utility", ("--gpus", 'all,"capabilities=compute,utility"')),
        Form("caps-utility", ("--gpus", 'all,"capabilities=utility"')),
        Form("runtime-nvidia-env", ("--runtime=nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=all")),
        Form("cdi-all", ("--device", "nvidia.com/gpu=all")),
        Form("cdi-index:0", ("--device", "nvidia.com/gpu=0")),
    ]
    if uuid:
        out.insert(8, Form("gpus-device-uuid:0", ("--gpus", f"device={uuid}")))
        out.append(Form("cdi-uuid:0", ("--device", f"nvidia.com/gpu={uuid}")))
    return out


def parse_seen(stdout: str) -> dict[str, Any]:
    part, nodes, smi, env = "", [], [], []
    for line in stdout.splitlines():
        if line.startswith("== "):
            part = line[3:].strip()
            continue
        {"nodes": nodes, "smi": smi, "env": env}.get(part, []).append(line)
    uuids = [w.strip("()") for line in smi for w in line.split() if w.startswith("(UUID:") or w.startswith("GPU-")]
    return {"nodes": nodes, "smi": smi, "env": env, "gpu_uuids": [u for u in uuids if u.startswith("GPU-")]}


def run_cli_form(f: Form, image: str) -> dict[str, Any]:
    argv = ["docker", "run", "--rm", "--network", "none", *f.cli, image, "sh", "-c", PROBE]
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = None, str(e.stdout or ""), "timed out after 60 s"
    return {"how": "cli", "argv": argv[2:-3] + [image], "rc": rc, "stderr": err.strip()[-2000:],
            "seen": parse_seen(out) if rc == 0 else None, "elapsed_s": round(time.monotonic() - t0, 3)}


def run_sdk_form(f: Form, image: str) -> dict[str, Any]:
    import docker
    from docker.types import DeviceRequest

    client = docker.from_env()
    kw = dict(f.sdk)
    kw["device_requests"] = [DeviceRequest(driver=d["Driver"], count=d["Count"], device_ids=d["DeviceIDs"],
                                           capabilities=d["Capabilities"]) for d in kw.get("device_requests", [])]
    t0 = time.monotonic()
    container = None
    try:
        container = client.containers.create(image, ["sh", "-c", PROBE], network_mode="none", **kw)
        container.start()
        rc = container.wait(timeout=60)["StatusCode"]
        out = container.logs().decode(errors="replace")
        res = {"rc": rc, "stderr": "", "seen": parse_seen(out)}
    except Exception as e:  # the daemon's refusal is the ground truth being recorded
        res = {"rc": 125, "stderr": f"{type(e).__name__}: {e}"[-2000:], "seen": None}
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except Exception:
                pass
    return {"how": "sdk", "kwargs": f.sdk, **res, "elapsed_s": round(time.monotonic() - t0, 3)}


def host_gpus() -> tuple[int, str | None]:
    p = sh("/usr/local/nvidia/bin/nvidia-smi --query-gpu=uuid --format=csv,noheader || nvidia-smi --query-gpu=uuid --format=csv,noheader")
    uuids = [u.strip() for u in p.stdout.split() if u.strip().startswith("GPU-")]
    return len(uuids), (uuids[0] if uuids else None)


def ensure_leak_image() -> None:
    if sh(f"docker image inspect {LEAK_IMAGE}").returncode == 0:
        return
    sh(f"c=$(docker create {IMAGE} true) && docker commit --change 'ENV NVIDIA_VISIBLE_DEVICES=all' $c {LEAK_IMAGE}"
       " >/dev/null && docker rm $c >/dev/null", check=True)


def run_state(state: State, engine: str, out: Path, gpudoctor: list[str]) -> dict[str, Any]:
    d = out / state.id
    d.mkdir(parents=True, exist_ok=True)
    reset()
    state.setup()
    daemon = start_dockerd(state.dockerd_path)
    if daemon["started"] and state.after_start:
        state.after_start()
    n, uuid = host_gpus()
    image = LEAK_IMAGE if state.id == "default-nvidia-leak" else IMAGE
    truth: dict[str, Any] = {"state": state.id, "summary": state.summary, "engine": engine, "daemon": daemon,
                             "image": image, "host_gpus": n, "host_uuid": uuid, "forms": {}}
    if daemon["started"]:
        if state.id == "default-nvidia-leak":
            ensure_leak_image()
        for f in forms(uuid, n):
            truth["forms"][f.key] = run_sdk_form(f, image) if f.sdk else run_cli_form(f, image)
    truth["daemon_json"] = DAEMON_JSON.read_text() if DAEMON_JSON.exists() else None
    truth["config_toml_mode"] = sh(f"grep -E '^\\s*mode\\s*=' {CONFIG}").stdout.strip()
    (d / "ground-truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
    t0 = time.monotonic()
    rec = subprocess.run([*gpudoctor, "facts", "--record", str(d / "bundle.json"), "--all-forms", "--image", image],
                         capture_output=True, text=True, timeout=300)
    rep = subprocess.run([*gpudoctor, "check", "--replay", str(d / "bundle.json"), "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    (d / "report.json").write_text(rep.stdout or json.dumps({"error": rep.stderr[-2000:]}))
    left = sh("docker ps -aq").stdout.split() if daemon["started"] else []
    summary = {"state": state.id, "daemon_started": daemon["started"], "record_rc": rec.returncode,
               "record_err": rec.stderr.strip()[-300:], "check_rc": rep.returncode, "left_containers": len(left),
               "gpudoctor_s": round(time.monotonic() - t0, 2),
               "truth": {k: v["rc"] for k, v in truth["forms"].items()}}
    try:
        summary["verdict"] = json.loads(rep.stdout)["verdict"]
    except Exception:
        summary["verdict"] = None
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", required=True, help="the engine under test, as a label: 20.10 or 29.7")
    ap.add_argument("--out", required=True)
    ap.add_argument("--states", default="", help="comma-separated state ids (default: every state for the engine)")
    ap.add_argument("--gpudoctor", default=f"{sys.executable} -P -m gpudoctor")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    chosen = [s for s in STATES if a.engine in s.engines and (not a.states or s.id in a.states.split(","))]
    if a.list:
        for s in chosen:
            print(f"{s.id:32} {s.summary}")
        return 0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stash_toolkit()
    results = []
    for s in chosen:
        t0 = time.monotonic()
        try:
            r = run_state(s, a.engine, out, a.gpudoctor.split())
        except Exception as e:
            r = {"state": s.id, "error": f"{type(e).__name__}: {e}"}
        r["state_s"] = round(time.monotonic() - t0, 1)
        results.append(r)
        v = (r.get("verdict") or {})
        print(f"{s.id:30} {r.get('state_s')}s daemon={r.get('daemon_started')} ready={v.get('ready')} "
              f"root={v.get('root_cause')} truth={r.get('truth')} {r.get('error', '')}", flush=True)
    reset()
    start_dockerd()
    (out / "summary.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
