"""How a check is declared: for built-in checks (checks/) and third-party plugins alike.

    from gpudoctor.checking import check
    from gpudoctor.model import Layer, Fix, passed, failed

    @check("kernel.module.loaded", "The nvidia kernel module is loaded",
           layer=Layer.KERNEL, needs=("kernel",), after=("pci.gpu.present",))
    def module_loaded(kernel):
        ...

A check is a pure function of the facts it names in `needs` (passed as keyword arguments of the
same name). It returns one `Result` or several; it never reads the machine.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Union

from .frozen import frozen
from .model import CheckInfo, Layer, Result

CheckReturn = Union[Result, Iterable[Result]]


@frozen
class Check:
    info: CheckInfo
    fn: Callable[..., CheckReturn]

    @property
    def id(self) -> str:
        return self.info.id

    def with_source(self, source: str) -> "Check":
        return replace(self, info=replace(self.info, source=source))


def check(
    id: str,
    title: str,
    *,
    layer: Layer,
    needs: tuple[str, ...] = (),
    after: tuple[str, ...] = (),
) -> Callable[[Callable[..., CheckReturn]], Check]:
    """Declare a check. `title` states the desired condition; `after` names checks of lower layers
    whose failure makes this one meaningless (it is then skipped as "blocked by")."""

    def wrap(fn: Callable[..., CheckReturn]) -> Check:
        doc = (fn.__doc__ or "").strip()
        return Check(CheckInfo(id, title, layer, tuple(needs), tuple(after), "builtin", doc), fn)

    return wrap


def as_results(value: Any) -> tuple[Result, ...]:
    """Normalise a check's return value; anything but Results is a programming error."""
    if isinstance(value, Result):
        return (value,)
    if value is None:
        raise TypeError("check returned None")
    results = tuple(value)
    if not results:
        raise TypeError("check returned no results")
    for r in results:
        if not isinstance(r, Result):
            raise TypeError(f"check returned {type(r).__name__}, not Result")
    return results
