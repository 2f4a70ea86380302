"""Launches probe containers. With gpudoctor/facts/ and the probes' Docker API calls (probes/api.py), the only
code that touches the machine.

Every probe is hardened (`HARDENING`: no network, all capabilities dropped, no-new-privileges,
memory, pids and CPU limits, a capped log, never privileged; a read-only root filesystem and a
non-root user where `hardening_for` says the request allows them), labelled, and always removed:
* create, then start, then wait, then read logs, and remove *by id* in `finally` — the Docker SDK's
  `containers.run(..., detach=True)` raises when *start* fails and leaves a `Created` container
  behind, and a cleanup that relies on its return value never runs (seen on a real H100 host);
* every probe belongs to a `ProbeRun`, whose stop switch (the run's deadline, or an interruption:
  `interrupt`) is checked before create and before start, and whose `close` removes what the run
  created: the ids it knows, then every container carrying the run's label — a create the daemon
  answered to nobody, or one that was in flight when the stop came, is found that way;
* cleanup is bounded even when the daemon does not answer (frozen, overloaded): short-timeout calls,
  a fixed budget, and, when removal could not be confirmed, a detached reaper
  (`python -m gpudoctor.probes.reap`) that removes the run's containers once the daemon answers
  again — so that nothing the run created outlives it by more than the daemon's own freeze;
* leftovers of a killed run (label `io.gpudoctor.probe`, owner process gone) are swept at start.
Results are plain JSON so that support bundles record them and replays reproduce them.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Mapping

from ..facts.docker_client import open_client, to_host_call_error
from ..facts.host import HostCallError
from .api import sdk_explanation

LABEL = "io.gpudoctor.probe"
OWNER_LABEL = "io.gpudoctor.owner"
FORM_LABEL = "io.gpudoctor.form"
RUN_LABEL = "io.gpudoctor.run"
MAX_OUTPUT = 64 * 1024
# The user's own command (`check --command`, facts/workload.py; `explain --run --command`) is their program, not the
# probe script: more room, and the end of its output (where errors are) rather than the start.
WORKLOAD_MEMORY, WORKLOAD_PIDS, WORKLOAD_TAIL_LINES = "4g", 512, 20
# A probe older than this is a leftover whatever its owner says (a crashed run on another machine
# that shares the daemon cannot be asked whether it is still alive).
STALE_AFTER_S = 15 * 60

# Cleanup after a stop: each API call gets CLEANUP_CALL_TIMEOUT_S, the whole cleanup CLEANUP_BUDGET_S
# (a frozen daemon then costs seconds, not the 60 s of a probe call), creates still in flight are
# waited for at most IN_FLIGHT_WAIT_S. The reaper sweeps the run's label for at most REAPER_WAIT_S and
# ends once the daemon has shown none of the run's containers for REAPER_GRACE_S.
CLEANUP_CALL_TIMEOUT_S = 5.0
CLEANUP_BUDGET_S = 8.0
IN_FLIGHT_WAIT_S = 2.0
PING_TIMEOUT_S = 2.0
REAPER_WAIT_S = 600.0
REAPER_GRACE_S = 10.0

# Applied to every probe: none of these limits what the NVIDIA hook or runtime injects (they run on
# the host, as root, outside the container's limits). Reported in each outcome's "hardening".
PROBE_MEMORY = "256m"
PROBE_PIDS = 64
PROBE_NANO_CPUS = 1_000_000_000  # one CPU
PROBE_LOG_MAX_SIZE = "1m"  # the probe prints at most MAX_OUTPUT; a strange image cannot fill the disk
HARDENING: Mapping[str, Any] = {
    "network": "none",
    "cap_drop": "ALL",
    "no_new_privileges": True,
    "privileged": False,
    "memory": PROBE_MEMORY,
    "pids_limit": PROBE_PIDS,
    "nano_cpus": PROBE_NANO_CPUS,
    "log": f"json-file max-size={PROBE_LOG_MAX_SIZE} max-file=1",
}
# nobody:nogroup. Numeric, so that images without /etc/passwd accept it.
PROBE_USER = "65534:65534"
# Each API call of a probe (create, start, logs, remove); waiting for the container has its own limit.
# Generous: the NVIDIA hook loading NVML on many GPUs makes `start` take seconds on a healthy host.
CALL_TIMEOUT_S = 60.0
_NVIDIA_RUNTIME_NAMES = ("nvidia",)


def probe_script() -> str:
    # Read beside this module rather than through importlib.resources, whose import (pathlib, tempfile, inspect)
    # cost more than the probes' own preparation; gpudoctor is installed as files, never zipped.
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe.sh"), encoding="utf-8") as f:
        return f.read()


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _api(timeout_s: float) -> Any:
    return open_client(timeout_s).api


def _cleanup_api() -> Any:
    """The client a run's cleanup uses (probes/api.py), with the short cleanup timeout."""
    from .api import probe_api

    return probe_api(CLEANUP_CALL_TIMEOUT_S)


# -- hardening ----------------------------------------------------------------------------------
def hardening_for(
    create_args: Mapping[str, Any], default_runtime: str | None, device_nodes_open: bool
) -> dict[str, Any]:
    """Which optional hardening a probe gets: read-only rootfs and a non-root user, each with why.

    * Read-only root filesystem only for a container that no NVIDIA component touches: no device
      request and a runtime that is not nvidia (explicit or the daemon's default). The legacy hook
      (nvidia-container-cli) writes into the rootfs — it mounts driver files and runs ldconfig to
      update /etc/ld.so.cache — and the CDI hooks (update-ldcache, create-symlinks) write there too;
      a read-only rootfs is reported to break them (kserve/kserve#5711 "nvidia-cdi-hook fails ...
      read-only root filesystem"). A probe must fail only where the user's own containers would,
      so GPU probes keep a writable rootfs.
    * Non-root (`PROBE_USER`) when the host's NVIDIA device nodes are open to every user (0666, the
      driver's default; MIG caps readable): what the probe runs (ls, nvidia-smi, ldconfig -p, reading
      /proc/self/mountinfo) then works unprivileged, the hook/runtime injecting as root regardless.
      On a host with 0660 nodes (NVreg_DeviceFileMode) a non-root probe would report "Insufficient
      Permissions" where the user's root containers work: it runs as the image's user then.
    """
    runtime = create_args.get("runtime") or default_runtime
    touched = bool(create_args.get("device_requests")) or runtime in _NVIDIA_RUNTIME_NAMES
    out: dict[str, Any] = dict(HARDENING)
    if create_args.get("command"):
        # The user's own command instead of the probe script (check --command, explain --run --command): it
        # runs as the user's container would, with its own user and a writable rootfs, and more room.
        why = "not applied: the user's own command runs"
        out.update(memory=WORKLOAD_MEMORY, pids_limit=WORKLOAD_PIDS, read_only_rootfs=False, user=None,
                   read_only_rootfs_why=why, user_why=why)
        return out
    if touched:
        out["read_only_rootfs"] = False
        out["read_only_rootfs_why"] = (
            "not applied: the NVIDIA hook/runtime writes into the root filesystem (mounts, ldconfig)"
        )
    elif runtime is None:
        out["read_only_rootfs"] = False
        out["read_only_rootfs_why"] = "not applied: the daemon's default runtime is not known (it may be nvidia)"
    else:
        out["read_only_rootfs"] = True
        out["read_only_rootfs_why"] = f"applied: no GPU request and runtime {runtime!r}"
    if device_nodes_open:
        out["user"] = PROBE_USER
        out["user_why"] = "applied: the host's NVIDIA device nodes are usable by every user"
    else:
        out["user"] = None
        out["user_why"] = "not applied: the host's NVIDIA device nodes are not open to every user (mode not 0666)"
    return out


# -- runs, their stop switch and their cleanup -----------------------------------------------------
_RUNS: list["ProbeRun"] = []
_RUNS_LOCK = threading.Lock()
_INTERRUPTED: list[str] = []  # set once, by interrupt(): the process is ending


class ProbeRun:
    """The probe containers of one gpudoctor run.

    Knows what it created and has not removed yet, how many creates are in flight, and its stop
    reason (the run's deadline, an interruption). Probes check `stopped()` before create and before
    start; `close()` removes everything the run created, within a bounded time.
    """

    def __init__(self) -> None:
        self.id = os.urandom(8).hex()  # 16 hex digits, as the label's value has always had
        self._cond = threading.Condition()
        self._live: set[str] = set()
        self._creating = 0
        self._created = 0
        self._uncertain = 0  # creates that got no answer: the daemon may have made the container
        self._stop: str | None = None
        self._abandoned: set[str] = set()
        self._phases: dict[str, tuple[str, float]] = {}  # probe key → (create|start|wait|logs|done, since)
        self._closed = False
        self._reaper = False  # a reaper was started for this run's label
        self._error: str | None = None  # why close() could not confirm that nothing is left
        self._cleanup_api: Any = None
        with _RUNS_LOCK:
            _RUNS.append(self)

    @property
    def label(self) -> str:
        return f"{RUN_LABEL}={self.id}"

    def stopped(self) -> str | None:
        """Why this run's probes must not create or start containers any more (None: they may)."""
        if _INTERRUPTED:
            return _INTERRUPTED[0]
        return self._stop

    def stop(self, reason: str) -> None:
        with self._cond:
            if self._stop is None:
                self._stop = reason

    def live(self) -> list[str]:
        with self._cond:
            return sorted(self._live)

    def abandon(self, keys: "list[str] | tuple[str, ...]", reason: str) -> None:
        """Give up on these probes (the deadline passed): stop the run; their late outcomes are dropped."""
        with self._cond:
            self._abandoned.update(keys)
        self.stop(reason)

    def abandoned(self, key: str) -> bool:
        with self._cond:
            return key in self._abandoned

    def phase(self, key: str) -> tuple[str, float] | None:
        """Where the probe `key` is (create, start, wait, logs, done) and for how many seconds; None if
        it has not begun (it waits for a slot)."""
        with self._cond:
            at = self._phases.get(key)
        return (at[0], time.monotonic() - at[1]) if at else None

    def _at(self, key: str, phase: str) -> None:
        with self._cond:
            self._phases[key] = (phase, time.monotonic())

    # Called by run_probe around create.
    def _begin_create(self) -> str | None:
        with self._cond:
            why = self.stopped()
            if why is None:
                self._creating += 1
            return why

    def _end_create(self, cid: str | None, uncertain: bool) -> str | None:
        """Register the created container (or a create without an answer); returns the stop reason if
        the run stopped meanwhile."""
        with self._cond:
            self._creating -= 1
            if cid is not None:
                self._live.add(cid)
                self._created += 1
            elif uncertain:
                self._uncertain += 1
            self._cond.notify_all()
            return self.stopped()

    def _forget(self, cid: str) -> None:
        with self._cond:
            self._live.discard(cid)

    def _prepare_cleanup(self) -> None:
        """Open the short-timeout client cleanup will use while the daemon still answers (creating one
        later costs a /version round trip, which a frozen daemon never answers)."""
        if self._cleanup_api is None:
            try:
                self._cleanup_api = _cleanup_api()
            except Exception:
                pass

    def close(self, reason: str, budget_s: float = CLEANUP_BUDGET_S) -> dict[str, Any]:
        """Stop, then remove every container of this run. Bounded by `budget_s` whatever the daemon
        does; what cannot be confirmed removed is handed to a detached reaper. Safe to call twice."""
        self.stop(reason)
        end = time.monotonic() + budget_s
        with self._cond:
            ids = sorted(self._live)
            attempted = self._created > 0 or self._creating > 0 or self._uncertain > 0
            if self._reaper or (self._closed and not ids and not self._creating):
                # Closed before; a reaper, once started, owns whatever carries the run's label.
                return {"removed": [], "reaper": self._reaper, "error": self._error, "in_flight": self._creating}
        removed: list[str] = []
        error: str | None = None
        api = self._cleanup_api
        if attempted and api is None:
            try:
                api = _cleanup_api()
            except Exception as e:
                error = f"cannot reach the Docker daemon: {e}"
        if api is not None and attempted:
            # Remove what is known at once, while creates in flight end (at most IN_FLIGHT_WAIT_S); then
            # list the run's label until the daemon shows none (a create answered to nobody shows there).
            removals = self._start_removals(api, ids, removed)
            self._wait_for_creates(min(end, time.monotonic() + IN_FLIGHT_WAIT_S))
            error = self._join_removals(removals, end)
            if error is None:
                error = self._sweep(api, end, removed)
        with self._cond:
            creating = self._creating
            # Without the final listing, the run is still known clean when every container it made was
            # removed and every create got an answer.
            known_clean = not self._live and not self._uncertain and not creating
        confirmed = (error is None and creating == 0) or known_clean
        reaper = False
        if attempted and not confirmed:
            reaper = _spawn_reaper(self.label)
        with self._cond:
            self._closed = True
            self._reaper = reaper
            self._error = None if confirmed else (error or f"{creating} create(s) still unanswered")
        if confirmed:
            with _RUNS_LOCK:
                if self in _RUNS:
                    _RUNS.remove(self)
        return {"removed": removed, "reaper": reaper, "error": self._error, "in_flight": creating}

    def _wait_for_creates(self, until: float) -> None:
        with self._cond:
            while self._creating and time.monotonic() < until:
                self._cond.wait(0.05)

    def _sweep(self, api: Any, end: float, removed: list[str]) -> str | None:
        """List the run's label and remove what shows, until nothing does; None when the daemon
        confirmed that nothing of the run is left."""
        while time.monotonic() < end:
            try:
                found = api.containers(self.label)
            except Exception as e:
                return f"the Docker daemon did not answer a listing: {type(e).__name__}: {e}"
            if not found:
                return None
            error = self._join_removals(self._start_removals(api, [c["Id"] for c in found], removed), end)
            if error:
                return error
            time.sleep(0.1)
        return "out of time while removing probe containers"

    def _start_removals(self, api: Any, ids: list[str], removed: list[str]) -> tuple[list[threading.Thread], list[str]]:
        """Force-remove `ids` at once: killing and removing a running container takes the daemon a
        while (a second or more on a loaded host, more with runtime hooks); one after the other, a
        handful of them would not fit the budget."""
        from .api import CallFailed

        errors: list[str] = []

        def one(cid: str) -> None:
            try:
                api.remove(cid)
                removed.append(cid[:12])
                self._forget(cid)
            except CallFailed as e:
                if e.status == 404:  # already gone
                    self._forget(cid)
                # else e.g. 409 "removal already in progress": the listing that follows tells
            except Exception as e:  # no answer in time, connection refused: the daemon is not there
                errors.append(f"the Docker daemon did not answer a removal: {type(e).__name__}: {e}")

        threads = [threading.Thread(target=one, args=(cid,), daemon=True, name=f"remove:{cid[:12]}") for cid in ids]
        for t in threads:
            t.start()
        return threads, errors

    @staticmethod
    def _join_removals(removals: tuple[list[threading.Thread], list[str]], end: float) -> str | None:
        threads, errors = removals
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
        if any(t.is_alive() for t in threads):
            return "out of time while removing probe containers"
        return errors[0] if errors else None


def interrupt(reason: str, budget_s: float = CLEANUP_BUDGET_S) -> dict[str, Any]:
    """The process is ending (a signal, exit): stop every run and remove its containers, within
    `budget_s` in all. Safe to call more than once."""
    if not _INTERRUPTED:
        _INTERRUPTED.append(reason)
    end = time.monotonic() + budget_s
    with _RUNS_LOCK:
        runs = list(_RUNS)
    total: dict[str, Any] = {"removed": [], "reaper": False, "errors": []}
    for run in runs:
        out = run.close(reason, max(0.5, end - time.monotonic()))
        total["removed"].extend(out["removed"])
        total["reaper"] = total["reaper"] or out["reaper"]
        if out["error"]:
            total["errors"].append(out["error"])
    return total


def remove_live(timeout_s: float = CLEANUP_BUDGET_S) -> int:
    """Remove every probe this process created and has not removed yet (interpreter exit)."""
    return len(interrupt("gpudoctor exited", timeout_s)["removed"])


atexit.register(remove_live)


def _spawn_reaper(label: str) -> bool:
    """Start `python -m gpudoctor.probes.reap LABEL` in its own session (a terminal's Ctrl-C, `timeout`
    and the CI runner's process-group kill do not reach it), with this process's DOCKER_* settings."""
    try:
        subprocess.Popen(
            [sys.executable, "-m", "gpudoctor.probes.reap", label, str(REAPER_WAIT_S), str(REAPER_GRACE_S)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            cwd="/",  # so that a ./gpudoctor folder never shadows the installed package
        )
        return True
    except OSError:
        return False


def reap(label: str, wait_s: float = REAPER_WAIT_S, grace_s: float = REAPER_GRACE_S) -> int:
    """The reaper's loop: remove every container labelled `label` until the daemon has shown none for
    `grace_s` (requests it queued while frozen are served in no particular order, and a container
    whose start hangs in a stuck runtime can be removed only once the runtime lets go), or stops
    answering after it showed none, or `wait_s` have passed. Returns how many were removed."""
    started = time.monotonic()
    clean_since: float | None = None
    removed = 0
    api = None
    while time.monotonic() - started < wait_s:
        try:
            if api is None:
                api = _api(CLEANUP_CALL_TIMEOUT_S)
            found = api.containers(all=True, filters={"label": label})
            if found:
                clean_since = None
            elif clean_since is None:
                clean_since = time.monotonic()
            elif time.monotonic() - clean_since >= grace_s:
                return removed
            for c in found:
                try:
                    api.remove_container(c["Id"], force=True)
                    removed += 1
                except Exception:
                    pass
        except Exception:
            if clean_since is not None:
                return removed  # it showed nothing of the run when it last answered: gone for good or not, done
            api = None  # reconnect next time: the daemon may come back (restarted), with the run's containers
        time.sleep(1.0)
    return removed


def ping(timeout_s: float = PING_TIMEOUT_S) -> dict[str, Any]:
    """Does the daemon answer `/_ping` now? Raises HostCallError when it does not."""
    try:
        _api(timeout_s).ping()
    except Exception as e:
        raise to_host_call_error(e) from None
    return {"ok": True}


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


def _fast_get(path: str, timeout_s: float, query: dict[str, str] | None = None) -> Any:
    """A read-only GET without the Docker SDK (facts/docker_http.py), or None where the SDK must ask: its import
    would otherwise stand between the run's start and its first probe container."""
    from ..facts.docker_client import fast_socket
    from ..facts.docker_http import TimedOut, Unanswered, get_json

    sock = fast_socket()
    if sock is None:
        return None
    try:
        return get_json(sock, path, timeout_s, query)
    except (Unanswered, TimedOut):
        return None  # the SDK asks again, and says what went wrong in its words


def sweep(timeout_s: float = 10.0) -> dict[str, Any]:
    """Remove probes left behind by killed runs. Returns what was removed."""
    listed = _fast_get("/containers/json", timeout_s, {"all": "1", "filters": json.dumps({"label": [LABEL]})})
    if listed == []:  # nothing of any run is there: nothing to remove (the common case)
        return {"removed": []}
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
    images = _fast_get("/images/json", timeout_s, {"only_ids": "0", "all": "0",
                                                   "filters": json.dumps({"reference": [repository]})})
    if not isinstance(images, list):
        try:
            images = _api(timeout_s).images(name=repository)
        except Exception as e:
            raise to_host_call_error(e) from None
    return sorted({t for i in images for t in (i.get("RepoTags") or []) if t and not t.endswith("<none>")})


def ensure_image(image: str, pull: bool, timeout_s: float = 30.0) -> dict[str, Any]:
    """Is the probe image present? Pull it only when asked (hosts are often offline)."""
    info = _fast_get(f"/images/{image}/json", timeout_s)
    if isinstance(info, dict):
        return _image_answer(image, info, pulled=False)
    import docker

    api = _api(timeout_s)
    absent = {"image": image, "present": False, "pulled": False, "error": None, "env": [], "id": None}
    try:
        info = api.inspect_image(image)
        pulled = False
    except docker.errors.ImageNotFound:
        if not pull:
            return absent
        try:
            api.pull(image)
            info = api.inspect_image(image)
            pulled = True
        except Exception as e:
            return {**absent, "error": sdk_explanation(e)}
    except docker.errors.APIError as e:
        # The daemon answered, and refused the name itself ("invalid reference format: repository name
        # must be lowercase"): the image is unusable, the daemon is fine.
        return {**absent, "error": sdk_explanation(e), "invalid": True}
    except Exception as e:
        raise to_host_call_error(e) from None
    return _image_answer(image, info, pulled)


def _image_answer(image: str, info: Mapping[str, Any], pulled: bool) -> dict[str, Any]:
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


# Where a probe can hang, and what a hang there usually is (a daemon that answers nothing at all is
# found by ping(), and is the daemon's finding instead).
STUCK_HINTS = {
    "start": "a hung OCI runtime or prestart hook (nvidia-container-runtime, nvidia-container-runtime-hook / "
             "nvidia-container-cli)?",
    "wait": "a hung nvidia-smi or driver call inside?",
    "remove": "a container stuck in a hung runtime or hook?",
}
HUNG_AFTER_S = 10.0  # stuck this long in one phase is hung there, not merely late


def stuck_text(phase: str | None, seconds: float) -> str:
    """"its start had not returned after 60s: a hung OCI runtime ...?" — a probe stuck in `phase`."""
    if phase is None:
        return "it was still waiting for a free slot (more probes than the time allowed)"
    where = {
        "create": f"its create had not been answered after {seconds:.0f}s",
        "start": f"its start had not returned after {seconds:.0f}s",
        "wait": f"the container was still running after {seconds:.0f}s",
        "remove": f"its container had not been removed after {seconds:.0f}s",
    }.get(phase, f"it was at {phase} for {seconds:.0f}s")
    if seconds >= HUNG_AFTER_S and phase in STUCK_HINTS:
        where += f": {STUCK_HINTS[phase]}"
    return where


class Abandoned(Exception):
    """The run gave up on this probe (its deadline passed) before it finished: its late outcome is
    dropped, and deliberately not a HostCallError, so that a support bundle does not record it."""


_DEFAULT_RUN: ProbeRun | None = None


def _default_run() -> ProbeRun:
    global _DEFAULT_RUN
    if _DEFAULT_RUN is None:
        _DEFAULT_RUN = ProbeRun()
    return _DEFAULT_RUN


def _stopped_outcome(outcome: dict[str, Any], why: str) -> dict[str, Any]:
    # "timed_out": the comparison treats it as a probe that gave no answer (not-run), which it is.
    outcome.update(timed_out=True, stopped=why, error=f"not run: {why}")
    return outcome


def run_probe(
    key: str,
    form_id: str,
    image: str,
    create_args: Mapping[str, Any],
    timeout_s: float = 60.0,
    run: ProbeRun | None = None,
    hardening: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Create, start, wait for, read and remove one probe container. Never raises for a
    container-level failure: that is the finding. Raises HostCallError if the daemon is gone
    (connection refused or reset), Abandoned if `run` gave up on this probe meanwhile.
    `create_args["command"]`: the user's command, run (under the image's entrypoint, as `docker run IMAGE CMD`
    does) instead of the probe script, with the workload's limits, keeping the last lines of its output.

    A call the daemon takes but does not answer within `timeout_s` (a hung runtime or hook at
    start, a container that never ends) is an outcome with "timed_out"; whether the daemon itself
    stopped answering is for the caller to ask (`ping`). A stopped run's probe creates nothing.
    """
    run = run or _default_run()
    # Without a decision from the caller (which knows the daemon's default runtime and the host's device
    # nodes): the options that cannot change what the probe sees, and no others.
    hardening = dict(hardening) if hardening is not None else hardening_for(create_args, None, False)
    outcome = _run_probe(key, form_id, image, create_args, timeout_s, run, hardening)
    if run.abandoned(key):
        raise Abandoned(key)
    return outcome


def _run_probe(
    key: str, form_id: str, image: str, create_args: Mapping[str, Any], timeout_s: float,
    run: ProbeRun, hardening: Mapping[str, Any],
) -> dict[str, Any]:
    from .api import CallFailed, NoAnswer, container_config, probe_api

    started = time.monotonic()
    timings: dict[str, float] = {}
    outcome: dict[str, Any] = {
        "key": key, "ok": False, "phase": "create", "error": None, "exit_code": None,
        "output": "", "timed_out": False, "timings": timings, "hardening": dict(hardening),
    }
    why = run.stopped()
    if why:
        return _stopped_outcome(outcome, why)
    run._at(key, "create")
    api = probe_api(CALL_TIMEOUT_S)
    run._prepare_cleanup()
    cid: str | None = None
    user_command = create_args.get("command")
    try:
        config = container_config(
            image, api.version,
            # The probe script, or the user's own command (explain --run --command): never both.
            entrypoint=None if user_command else ["sh", "-c", probe_script()],
            command=list(user_command or []),
            environment=list(create_args.get("environment") or []),
            labels={LABEL: "1", OWNER_LABEL: _owner(), FORM_LABEL: form_id, RUN_LABEL: run.id},
            user=hardening.get("user") or None,
            memory=hardening.get("memory") or PROBE_MEMORY,
            pids_limit=hardening.get("pids_limit") or PROBE_PIDS,
            nano_cpus=PROBE_NANO_CPUS,
            log_max_size=PROBE_LOG_MAX_SIZE,
            read_only=bool(hardening.get("read_only_rootfs")),
            device_requests=list(create_args.get("device_requests") or []),
            runtime=create_args.get("runtime") or None,
        )
        why = run._begin_create()
        if why:
            return _stopped_outcome(outcome, why)
        uncertain = True  # until the daemon answers: a create it took but did not answer may exist
        try:
            cid = api.create(config)
            uncertain = False
        except CallFailed:
            uncertain = False  # refused: nothing was created
            raise
        except HostCallError as e:
            # No connection at all (no socket, refused): the request never reached the daemon.
            uncertain = e.kind not in ("no-socket", "connection-refused", "permission-denied")
            raise
        finally:
            why = run._end_create(cid, uncertain)
        timings["create_s"] = time.monotonic() - started
        outcome["phase"] = "start"
        if why:  # the run stopped while the create was in flight: never start it
            return _stopped_outcome(outcome, why)
        run._at(key, "start")
        api.start(cid)
        timings["start_s"] = time.monotonic() - started
        outcome["phase"] = "wait"
        run._at(key, "wait")
        try:
            status = api.wait(cid, timeout_s)
        except NoAnswer:  # the container outlived its budget
            outcome["timed_out"] = True
            outcome["error"] = f"the probe did not finish within {timeout_s:g}s"
            return outcome
        timings["wait_s"] = time.monotonic() - started
        outcome["exit_code"] = status.get("StatusCode")
        outcome["phase"] = "logs"
        run._at(key, "logs")
        logs = api.logs(cid, WORKLOAD_TAIL_LINES if user_command else "all")
        text = logs.decode("utf-8", "replace")
        outcome["output"] = text[-MAX_OUTPUT:] if user_command else text[:MAX_OUTPUT]
        timings["logs_s"] = time.monotonic() - started
        outcome["ok"] = True
        outcome["phase"] = "done"
    except CallFailed as e:  # the daemon's refusal (or one the client makes at this API version): the finding
        outcome["error"] = e.explanation
        if e.status is not None:
            outcome["status"] = e.status
    except NoAnswer:
        outcome["timed_out"] = True
        outcome["error"] = stuck_text(outcome["phase"], CALL_TIMEOUT_S)
        return outcome
    except HostCallError as e:  # the daemon could not be asked, or went away
        e.data["phase"] = outcome["phase"]
        raise
    finally:
        # A start that got no answer is stuck in the runtime or a hook: removing it would block as long
        # again, holding back this probe's finding. The run's close() removes it, or hands it on.
        stuck = outcome["timed_out"] and outcome["phase"] == "start"
        if cid is not None and not stuck:
            run._at(key, "remove")
            try:
                api.remove(cid)
                run._forget(cid)
            except Exception:
                pass  # stays in the run's list: its close() removes it, or hands it to the reaper
        timings["total_s"] = time.monotonic() - started
        run._at(key, "done")
    return outcome
