"""Launches probe containers. With gpudoctor/facts/, the only code that touches the machine.

Every probe is hardened (no network, all capabilities dropped, no-new-privileges, memory and pids
limits, never privileged), labelled, and always removed:
* create, then start, then wait, then read logs, and remove *by id* in `finally` — the Docker SDK's
  `containers.run(..., detach=True)` raises when *start* fails and leaves a `Created` container
  behind, and a cleanup that relies on its return value never runs (seen on a real H100 host);
* every created id is also kept in `_LIVE` so that Ctrl-C, a fact timeout or interpreter exit
  (atexit) removes what a worker thread could not;
* leftovers of a killed run (label `io.gpudoctor.probe`, owner process gone) are swept at start.
Results are plain JSON so that support bundles record them and replays reproduce them.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from importlib import resources
from typing import Any, Mapping

from ..facts.docker_client import open_client, to_host_call_error

LABEL = "io.gpudoctor.probe"
OWNER_LABEL = "io.gpudoctor.owner"
FORM_LABEL = "io.gpudoctor.form"
MAX_OUTPUT = 64 * 1024
# The user's own command (`check --command`, facts/workload.py; `explain --run --command`) is their program, not the
# probe script: more room, and the end of its output (where errors are) rather than the start.
WORKLOAD_MEMORY, WORKLOAD_PIDS, WORKLOAD_TAIL_LINES = "4g", 512, 20
# A probe older than this is a leftover whatever its owner says (a crashed run on another machine
# that shares the daemon cannot be asked whether it is still alive).
STALE_AFTER_S = 15 * 60

_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()


def probe_script() -> str:
    return resources.files("gpudoctor.probes").joinpath("probe.sh").read_text(encoding="utf-8")


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _api(timeout_s: float) -> Any:
    return open_client(timeout_s).api


def remove_live(timeout_s: float = 10.0) -> int:
    """Remove every probe this process created and has not removed yet. Safe to call twice."""
    with _LIVE_LOCK:
        ids = list(_LIVE)
    removed = 0
    if not ids:
        return 0
    try:
        api = _api(timeout_s)
    except Exception:
        return 0
    for cid in ids:
        try:
            api.remove_container(cid, force=True)
            removed += 1
        except Exception:
            pass
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(cid)
    return removed


atexit.register(remove_live)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_leftover(labels: Mapping[str, str], created: float, now: float) -> bool:
    owner = labels.get(OWNER_LABEL, "")
    host, _, pid = owner.rpartition(":")
    if now - created > STALE_AFTER_S:
        return True
    if host == socket.gethostname() and pid.isdigit():
        return not _pid_alive(int(pid))
    return False


def sweep(timeout_s: float = 10.0) -> dict[str, Any]:
    """Remove probes left behind by killed runs. Returns what was removed."""
    try:
        api = _api(timeout_s)
        found = api.containers(all=True, filters={"label": LABEL})
    except Exception as e:
        raise to_host_call_error(e) from None
    now = time.time()
    removed = []
    for c in found:
        if _is_leftover(c.get("Labels") or {}, float(c.get("Created") or 0), now):
            try:
                api.remove_container(c["Id"], force=True)
                removed.append(c["Id"][:12])
            except Exception:
                pass
    return {"removed": removed}


def local_images(repository: str, timeout_s: float = 10.0) -> list[str]:
    """Tags of `repository` present on the daemon (e.g. the nvidia/cuda images already pulled)."""
    try:
        images = _api(timeout_s).images(name=repository)
    except Exception as e:
        raise to_host_call_error(e) from None
    return sorted({t for i in images for t in (i.get("RepoTags") or []) if t and not t.endswith("<none>")})


def ensure_image(image: str, pull: bool, timeout_s: float = 30.0) -> dict[str, Any]:
    """Is the probe image present? Pull it only when asked (hosts are often offline)."""
    import docker

    api = _api(timeout_s)
    try:
        info = api.inspect_image(image)
        pulled = False
    except docker.errors.ImageNotFound:
        if not pull:
            return {"image": image, "present": False, "pulled": False, "error": None, "env": [], "id": None}
        try:
            api.pull(image)
            info = api.inspect_image(image)
            pulled = True
        except Exception as e:
            return {"image": image, "present": False, "pulled": False, "error": _explain(e), "env": [], "id": None}
    except Exception as e:
        raise to_host_call_error(e) from None
    config = info.get("Config") or {}
    return {
        "image": image,
        "present": True,
        "pulled": pulled,
        "error": None,
        "id": info.get("Id"),
        "env": list(config.get("Env") or []),
        "entrypoint": config.get("Entrypoint"),
        "architecture": info.get("Architecture"),
    }


def _explain(exc: BaseException) -> str:
    """The daemon's own words for an APIError (`explanation`), else the exception text."""
    text = getattr(exc, "explanation", None)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text or exc).strip()


def run_probe(
    key: str, form_id: str, image: str, create_args: Mapping[str, Any], timeout_s: float = 60.0
) -> dict[str, Any]:
    """Create, start, wait for, read and remove one probe container. Never raises for a
    container-level failure: that is the finding. Raises HostCallError if the daemon is gone.
    `create_args["command"]`: the user's command, run (under the image's entrypoint, as `docker run IMAGE CMD`
    does) instead of the probe script, with the workload's limits, keeping the last lines of its output."""
    import docker

    started = time.monotonic()
    timings: dict[str, float] = {}
    outcome: dict[str, Any] = {
        "key": key, "ok": False, "phase": "create", "error": None, "exit_code": None,
        "output": "", "timed_out": False, "timings": timings,
    }
    api = _api(timeout_s)
    requests = [
        docker.types.DeviceRequest(
            driver=r.get("Driver") or "",
            count=r.get("Count") or 0,
            device_ids=r.get("DeviceIDs"),
            capabilities=r.get("Capabilities"),
            options=r.get("Options") or {},
        )
        for r in create_args.get("device_requests") or []
    ]
    cid: str | None = None
    user_command = create_args.get("command")
    try:
        host_config = api.create_host_config(
            network_mode="none",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            privileged=False,
            mem_limit=WORKLOAD_MEMORY if user_command else "256m",
            pids_limit=WORKLOAD_PIDS if user_command else 64,
            device_requests=requests or None,
            runtime=create_args.get("runtime") or None,
        )
        created = api.create_container(
            image,
            # The probe script, or the user's own command (explain --run --command): never both.
            entrypoint=None if user_command else ["sh", "-c", probe_script()],
            command=list(user_command or []),
            environment=list(create_args.get("environment") or []),
            labels={LABEL: "1", OWNER_LABEL: _owner(), FORM_LABEL: form_id},
            host_config=host_config,
            network_disabled=True,
        )
        cid = created["Id"]
        with _LIVE_LOCK:
            _LIVE.add(cid)
        timings["create_s"] = time.monotonic() - started
        outcome["phase"] = "start"
        api.start(cid)
        timings["start_s"] = time.monotonic() - started
        outcome["phase"] = "wait"
        try:
            status = api.wait(cid, timeout=timeout_s)
        except Exception as e:  # requests' ReadTimeout: the container outlived its budget
            if "timed out" in str(e).lower() or "timeout" in type(e).__name__.lower():
                outcome["timed_out"] = True
                outcome["error"] = f"the probe did not finish within {timeout_s:g}s"
                return outcome
            raise
        outcome["exit_code"] = status.get("StatusCode")
        outcome["phase"] = "logs"
        logs = api.logs(cid, stdout=True, stderr=True, tail=WORKLOAD_TAIL_LINES if user_command else "all")
        text = logs.decode("utf-8", "replace")
        outcome["output"] = text[-MAX_OUTPUT:] if user_command else text[:MAX_OUTPUT]
        outcome["ok"] = True
        outcome["phase"] = "done"
    except docker.errors.ImageNotFound as e:
        outcome["error"] = _explain(e)
    except docker.errors.APIError as e:
        outcome["error"] = _explain(e)
        outcome["status"] = getattr(getattr(e, "response", None), "status_code", None)
    except docker.errors.InvalidVersion as e:  # raised client side: API < 1.40 has no DeviceRequests
        outcome["error"] = str(e)
    except docker.errors.DockerException as e:
        raise to_host_call_error(e) from None
    except OSError as e:
        raise to_host_call_error(e) from None
    finally:
        if cid is not None:
            try:
                api.remove_container(cid, force=True)
                with _LIVE_LOCK:
                    _LIVE.discard(cid)
            except Exception:
                pass  # stays in _LIVE: removed at exit, or swept by the next run
        timings["total_s"] = time.monotonic() - started
    return outcome
