"""`@frozen`: the project's frozen dataclass (facts, results, specs), quicker to define than `@dataclass(frozen=True)`.

Why: before Python 3.13, `dataclass(frozen=True)` compiles six methods for every class, each with an `exec` of its
own (`__init__`, `__repr__`, `__eq__`, `__hash__`, `__setattr__`, `__delattr__`). A `gpudoctor check` defines 65
such classes before it can answer, on the critical path of every run: 106 ms of CPU on the 2-core CI machine
(Python 3.11), about 40 ms on the GPU machine (3.12), against a plain `docker run` of about 200 ms there (issue 12).

`@frozen` lets `dataclasses` compile only what hangs on the fields' layout (`__init__`, and the frozen guards
`__setattr__`/`__delattr__`), and gives every class the same three shared methods, which read the class's field
names from tuples made once here. They answer as the generated ones do, field flags (`repr=`, `compare=`,
`hash=`) included: tests/test_frozen.py holds both side by side. A class body's own `__repr__`, `__eq__` or
`__hash__` is kept, as `dataclass` keeps it; a class without a docstring gets its field names as one, which
`dataclass` would write with `inspect.signature`. The class is still a dataclass: `fields`, `replace`, `asdict` and mypy
(through `dataclass_transform`, PEP 681) see what they saw.
"""

from __future__ import annotations

import reprlib
from dataclasses import Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

T = TypeVar("T")

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_kwargs: Any) -> Any:  # typing's is 3.11+; at run time it only marks the function
        return lambda f: f

_REPR_NAMES = "__frozen_repr_names__"
_COMPARE_NAMES = "__frozen_compare_names__"
_HASH_NAMES = "__frozen_hash_names__"


@reprlib.recursive_repr()  # what dataclass's own __repr__ is wrapped in: "..." for a value that holds itself
def _repr(self: Any) -> str:
    cls = self.__class__
    return f"{cls.__qualname__}({', '.join(f'{name}={getattr(self, name)!r}' for name in getattr(cls, _REPR_NAMES))})"


def _eq(self: Any, other: Any) -> Any:
    # As dataclass's: equal only to an instance of the very same class, field by field as one tuple.
    if other.__class__ is self.__class__:
        names = getattr(self.__class__, _COMPARE_NAMES)
        return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(tuple(getattr(self, n) for n in getattr(self.__class__, _HASH_NAMES)))


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def frozen(cls: type[T]) -> type[T]:
    """`@dataclass(frozen=True)`, with `__repr__`, `__eq__` and `__hash__` shared rather than compiled per class."""
    own = dict(cls.__dict__)
    undocumented = cls.__doc__ is None
    if undocumented:
        # dataclass would write one from inspect.signature(cls), which is slow; the field names say as much.
        cls.__doc__ = cls.__name__
    made = dataclass(frozen=True, repr=False, eq=False)(cls)
    each = fields(made)  # type: ignore[arg-type]
    if undocumented:
        made.__doc__ = f"{cls.__name__}({', '.join(f.name for f in each)})"
    setattr(made, _REPR_NAMES, tuple(f.name for f in each if f.repr))
    setattr(made, _COMPARE_NAMES, tuple(f.name for f in each if f.compare))
    # dataclass's rule: a field is hashed when its `hash` says so, else when it is compared.
    setattr(made, _HASH_NAMES, tuple(f.name for f in each if (f.compare if f.hash is None else f.hash)))
    if "__repr__" not in own:
        made.__repr__ = _repr  # type: ignore[method-assign]
    if "__eq__" not in own:
        made.__eq__ = _eq  # type: ignore[method-assign]
    if "__hash__" not in own or ("__eq__" in own and own["__hash__"] is None):
        made.__hash__ = _hash  # type: ignore[method-assign]
    return made
