"""Run a few machine calls of one fact at once, in daemon threads (a hung call never holds up exit)."""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Generic, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Started(Generic[R]):
    """`fn()`, started now in a daemon thread; `result()` waits for its answer, or raises what it raised, in the
    caller's thread. Meant for a call that bounds its own time (a Host call's timeout)."""

    def __init__(self, fn: Callable[[], R], name: str = "fact-call") -> None:
        self._got: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True, name=name)
        self._thread.start()

    def _run(self, fn: Callable[[], R]) -> None:
        try:
            self._got["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            self._got["error"] = e

    def join(self) -> None:
        self._thread.join()

    def result(self) -> R:
        self._thread.join()
        if "error" in self._got:
            raise self._got["error"]
        return self._got["value"]


def map_at_once(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """[fn(item) for item in items], the calls made at once; the first exception (in item order) is raised once
    every call has ended."""
    calls = [Started(functools.partial(fn, item)) for item in items]
    for call in calls:
        call.join()
    return [call.result() for call in calls]
