"""Run a few machine calls of one fact at once, in daemon threads (a hung call never holds up exit)."""

from __future__ import annotations

import threading
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_at_once(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """[fn(item) for item in items], the calls made at once; the first exception (in item order) is raised once
    every call has ended. Meant for calls that each bound their own time (a Host call's timeout)."""
    todo = list(items)
    results: list[R | None] = [None] * len(todo)
    errors: list[BaseException | None] = [None] * len(todo)

    def one(i: int) -> None:
        try:
            results[i] = fn(todo[i])
        except BaseException as e:  # re-raised in the caller's thread
            errors[i] = e

    threads = [threading.Thread(target=one, args=(i,), daemon=True, name="fact-call") for i in range(len(todo))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors:
        if e is not None:
            raise e
    return results  # type: ignore[return-value]  # every slot was filled: no call raised
