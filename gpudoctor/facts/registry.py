"""Facts: named, typed readings of the host, each computed at most once per run.

A fact is a function `fn(ctx: FactContext) -> T` registered with `@fact("name")`. `gather` runs the
requested facts concurrently, each in a daemon thread with its own deadline: a fact that hangs
becomes a `FactError` ("timed out"), never a hung run. A fact may ask for another (`ctx.get`),
which is computed once and shared.

The option `deadline_s` (the CLI's `--timeout`) bounds the whole gathering: no wait goes past it,
and long facts (the probes) read `ctx.deadline` to finish, and clean up, before it.
"""

from __future__ import annotations

import os
import sysconfig
import threading
import time
import traceback
from dataclasses import field
from typing import Any, Callable, Iterable, Mapping

from ..frozen import frozen
from .host import Host, NotRecorded


@frozen
class FactSpec:
    name: str
    fn: Callable[["FactContext"], Any]
    timeout_s: float
    doc: str


@frozen
class FactError:
    """Why a fact has no value. `kind`: error | timeout | not-recorded | bad-answer (a replayed
    answer the fact could not use) | unknown. `trace`: where a crash happened ("file:line in
    function"), never a traceback: facts JSON is read by people and sent along with bundles."""

    name: str
    kind: str
    message: str
    trace: str = ""


@frozen
class FactOptions:
    """Run-wide settings that facts may read (probe image, forms, ...). Extended by later layers."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


_REGISTRY: dict[str, FactSpec] = {}


def fact(name: str, timeout_s: float = 15.0) -> Callable[[Callable[["FactContext"], Any]], Callable[["FactContext"], Any]]:
    def register(fn: Callable[["FactContext"], Any]) -> Callable[["FactContext"], Any]:
        _REGISTRY[name] = FactSpec(name, fn, timeout_s, (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return register


def registered_facts() -> Mapping[str, FactSpec]:
    _load_builtin_facts()
    return loaded_facts()


def loaded_facts() -> Mapping[str, FactSpec]:
    """The facts registered so far: those of the fact modules imported until now (see `Gathering`'s `load_rest`)."""
    return dict(_REGISTRY)


def _load_builtin_facts() -> None:
    # Importing the modules registers their facts; listed here so that order of import is fixed.
    from . import builtin  # noqa: F401


_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LIBRARY_DIRS = tuple({sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")} - {None})


def crash_site(exc: BaseException) -> str:
    """Where `exc` was raised, as "gpudoctor/facts/nvml.py:103 in parse_snapshot": the innermost frame
    of a fact's own code (gpudoctor's or a plugin's), not of the library it called."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    ours = os.path.join(_PACKAGE_PARENT, "gpudoctor") + os.sep
    own = [f for f in frames
           if os.path.abspath(f.filename).startswith(ours) or not os.path.abspath(f.filename).startswith(_LIBRARY_DIRS)]
    frame = (own or frames)[-1]
    path = os.path.abspath(frame.filename)
    where = os.path.relpath(path, _PACKAGE_PARENT) if path.startswith(ours) else os.path.basename(path)
    return f"{where}:{frame.lineno} in {frame.name}"


class FactMissing(Exception):
    """Raised by ctx.get when a needed fact has no value."""

    def __init__(self, error: FactError) -> None:
        super().__init__(f"fact {error.name!r} unavailable: {error.message}")
        self.error = error


class _Slot:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.under_way = threading.Event()  # the fact's slow wait has begun (FactContext.mark_under_way), or it ended
        self.value: Any = None
        self.error: FactError | None = None
        self.started = False
        self.ended_at: float | None = None  # time.monotonic() when its value or error was set


class FactContext:
    """What a fact function gets: the host, the run options, and access to other facts."""

    def __init__(
        self, host: Host, options: FactOptions, specs: dict[str, FactSpec], deadline: float | None = None,
        load_rest: Callable[[], Mapping[str, FactSpec]] | None = None,
    ) -> None:
        self.host = host
        self.options = options
        self._specs = specs
        self._load_rest = load_rest
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()
        self.deadline = deadline  # time.monotonic() by which the whole gathering ends, or None

    def remaining(self) -> float | None:
        """Seconds left before the run's deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _deadline_text(self) -> str:
        return f"not finished within the run's deadline ({float(self.options.get('deadline_s')):g}s)"

    def _start(self, name: str) -> _Slot:
        with self._lock:
            slot = self._slots.setdefault(name, _Slot())
            if slot.started:
                return slot
            slot.started = True
        spec = self._specs.get(name)
        if spec is None and self._load_rest is not None:
            # A fact asked for before its module was loaded (a gathering started with the first modules only):
            # load the rest now (the import lock makes this wait for a load under way), then look again.
            self.load_rest()
            spec = self._specs.get(name)
        if spec is None:
            slot.error = FactError(name, "unknown", f"no fact named {name!r} is registered")
            slot.done.set()
            return slot
        threading.Thread(target=self._compute, args=(spec, slot), name=f"fact:{name}", daemon=True).start()
        return slot

    def load_rest(self) -> None:
        """Add the facts `load_rest` gives (importing their modules) to those this context knows."""
        if self._load_rest is not None:
            self._specs.update(self._load_rest())

    def _compute(self, spec: FactSpec, slot: _Slot) -> None:
        try:
            slot.value = spec.fn(self)
        except NotRecorded as e:
            slot.error = FactError(spec.name, "not-recorded", str(e))
        except FactMissing as e:
            slot.error = FactError(spec.name, "error", str(e))
        except Exception as e:  # a crashing fact becomes data, never a traceback
            problem = self.host.explain_failure(e)
            if problem:  # a replay whose bundle holds an answer the fact cannot use
                slot.error = FactError(spec.name, "bad-answer", problem, crash_site(e))
            else:
                slot.error = FactError(spec.name, "error", f"{type(e).__name__}: {e}", crash_site(e))
        finally:
            slot.ended_at = time.monotonic()
            slot.done.set()
            slot.under_way.set()

    def mark_under_way(self, name: str) -> None:
        """Said by a fact whose remaining time is mostly waiting on the machine (the probes, once their
        containers are created): whoever waits for it (`wait_under_way`) may use the CPU meanwhile."""
        with self._lock:
            slot = self._slots.get(name)
        if slot is not None:
            slot.under_way.set()

    def wait_under_way(self, name: str, timeout: float) -> None:
        """Wait at most `timeout` until the started fact `name` is under way or done (at once if not started)."""
        with self._lock:
            slot = self._slots.get(name)
        if slot is not None and slot.started:
            slot.under_way.wait(timeout)

    def wait(self, name: str, timeout: float | None = None) -> _Slot:
        slot = self._start(name)
        spec = self._specs.get(name)
        limit = timeout if timeout is not None else (spec.timeout_s if spec else 0)
        left = self.remaining()
        by_deadline = left is not None and left < limit
        if by_deadline:
            limit = max(left or 0.0, 0.001)
        if not slot.done.wait(limit):
            with self._lock:
                if not slot.done.is_set():
                    why = self._deadline_text() if by_deadline else f"timed out after {limit:g}s"
                    slot.error = FactError(name, "timeout", why)
                    slot.ended_at = time.monotonic()
                    slot.done.set()
                    slot.under_way.set()
        return slot

    def get(self, name: str) -> Any:
        """The value of another fact; raises FactMissing if it has none."""
        slot = self.wait(name)
        if slot.error is not None:
            raise FactMissing(slot.error)
        return slot.value


@frozen
class FactSet:
    values: Mapping[str, Any]
    errors: Mapping[str, FactError]
    durations: Mapping[str, float]

    def __contains__(self, name: str) -> bool:
        return name in self.values


class Gathering:
    """Facts being computed: started as soon as the run knows it needs them (`start`), collected when the
    run needs their values (`collect`). Lets a run start the slow facts (the daemon, NVML, the probe
    containers) before it has loaded the checks that judge them."""

    def __init__(
        self, host: Host, options: FactOptions | None = None, specs: Mapping[str, FactSpec] | None = None,
        load_rest: Callable[[], Mapping[str, FactSpec]] | None = None,
    ) -> None:
        """`specs`: the facts it knows (default: every registered one). `load_rest`: where more come from, for a
        gathering started before every fact module was loaded (`load_more`, and any fact asked for meanwhile)."""
        self.specs = dict(specs) if specs is not None else dict(registered_facts())
        self.options = options or FactOptions()
        self.started = time.monotonic()
        deadline_s = self.options.get("deadline_s")
        deadline = self.started + float(deadline_s) if deadline_s else None
        self.ctx = FactContext(host, self.options, self.specs, deadline, load_rest)  # shares `specs`

    def load_more(self) -> list[str]:
        """Load the facts `load_rest` gives (importing their modules) into this gathering; all the names it knows."""
        self.ctx.load_rest()
        return list(self.specs)

    def start(self, names: Iterable[str]) -> Gathering:
        for name in dict.fromkeys(names):
            self.ctx._start(name)
        return self

    def wait_under_way(self, name: str, timeout: float) -> None:
        self.ctx.wait_under_way(name, timeout)

    def collect(self, names: Iterable[str]) -> FactSet:
        """The named facts (started now if they were not), each waited for within its own timeout, counted
        from the start of the gathering. `durations`: when each ended, counted from then too."""
        wanted = list(dict.fromkeys(names))
        self.start(wanted)
        values: dict[str, Any] = {}
        errors: dict[str, FactError] = {}
        durations: dict[str, float] = {}
        for name in wanted:
            spec = self.specs.get(name)
            remaining = (spec.timeout_s if spec else 0) - (time.monotonic() - self.started)
            slot = self.ctx.wait(name, max(remaining, 0.001))
            durations[name] = (slot.ended_at or time.monotonic()) - self.started
            if slot.error is not None:
                errors[name] = slot.error
            else:
                values[name] = slot.value
        return FactSet(values, errors, durations)


def gather(
    host: Host,
    names: Iterable[str],
    options: FactOptions | None = None,
    specs: Mapping[str, FactSpec] | None = None,
) -> FactSet:
    """Compute the named facts concurrently, each bounded by its own timeout."""
    wanted = list(dict.fromkeys(names))
    return Gathering(host, options, specs).start(wanted).collect(wanted)
