"""`@frozen` (gpudoctor/frozen.py) answers as `@dataclass(frozen=True)` does: each class is written twice, once
with each decorator, and every answer is compared."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any, Callable

import pytest

from gpudoctor.frozen import frozen


def _pair(make: Callable[[Callable[[type], type]], type]) -> tuple[type, type]:
    return make(dataclass(frozen=True)), make(frozen)


def _plain(deco: Callable[[type], type]) -> type:
    @deco
    class Gpu:
        index: int
        uuid: str | None = None
        tags: tuple[str, ...] = ()
        extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
        seen: int = field(default=0, hash=False)
        weight: int = field(default=1, compare=False, hash=True)

    return Gpu


def _with_repr(deco: Callable[[type], type]) -> type:
    @deco
    class Named:
        name: str

        def __repr__(self) -> str:
            return f"<{self.name}>"

    return Named


def _with_eq(deco: Callable[[type], type]) -> type:
    @deco
    class Loose:
        a: int
        b: int = 0

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Loose) and self.a == other.a

    return Loose


def _holder(deco: Callable[[type], type]) -> type:
    @deco
    class Holder:
        items: list[Any]

    return Holder


@pytest.mark.parametrize("make", [_plain])
def test_repr_eq_hash_match_the_generated_ones(make: Callable[[Callable[[type], type]], type]) -> None:
    ref, ours = _pair(make)
    cases = [
        dict(index=0),
        dict(index=1, uuid="GPU-1", tags=("a",), extra={"x": 1}, seen=3, weight=2),
        dict(index=1, uuid="GPU-1", tags=("a",), extra={"y": 2}, seen=3, weight=5),
    ]
    made = [(ref(**c), ours(**c)) for c in cases]
    for r, o in made:
        assert repr(o) == repr(r)
        assert hash(o) == hash(r)
    for (r1, o1) in made:
        for (r2, o2) in made:
            assert (o1 == o2) == (r1 == r2)
            assert (o1 != o2) == (r1 != r2)
    assert made[1][1] == made[2][1]  # `extra` and `weight` are not compared, `seen` is
    assert ours(index=1, seen=3) != ours(index=1, seen=4)
    assert hash(ours(index=1, seen=3)) == hash(ours(index=1, seen=4))  # `seen` is compared but not hashed


def test_other_classes_and_types_are_never_equal() -> None:
    ref, ours = _pair(_plain)
    assert ours(index=0) != ref(index=0)
    assert ours(index=0) != (0, None, (), 0)
    assert ours(index=0).__eq__(object()) is NotImplemented


def test_it_stays_frozen_and_a_dataclass() -> None:
    _ref, ours = _pair(_plain)
    gpu = ours(index=2, uuid="GPU-2")
    with pytest.raises(FrozenInstanceError):
        gpu.index = 3
    with pytest.raises(FrozenInstanceError):
        del gpu.uuid
    assert dataclasses.is_dataclass(gpu)
    assert [f.name for f in dataclasses.fields(gpu)] == ["index", "uuid", "tags", "extra", "seen", "weight"]
    moved = dataclasses.replace(gpu, index=3)
    assert (moved.index, moved.uuid) == (3, "GPU-2")
    assert dataclasses.asdict(gpu)["uuid"] == "GPU-2"
    assert ours.__match_args__ == ("index", "uuid", "tags", "extra", "seen", "weight")
    match gpu:
        case ours(2, uuid):  # type: ignore[misc]
            assert uuid == "GPU-2"
        case _:
            pytest.fail("no match")


def test_pickled_and_back() -> None:
    gpu = _Module.Gpu(index=1, uuid="GPU-1")
    assert pickle.loads(pickle.dumps(gpu)) == gpu


def test_subclass_sees_its_own_fields() -> None:
    for deco in (dataclass(frozen=True), frozen):
        @deco
        class Base:
            a: int

        @deco
        class Child(Base):
            b: int = 0

        assert repr(Child(1, 2)).endswith("Child(a=1, b=2)")
        assert Child(1, 2) != Child(1, 3)
        assert Child(1, 2) != Base(1)
        assert hash(Child(1, 2)) == hash((1, 2))


def test_a_body_s_own_methods_are_kept() -> None:
    ref, ours = _pair(_with_repr)
    assert repr(ours("x")) == repr(ref("x")) == "<x>"
    ref, ours = _pair(_with_eq)
    assert (ours(1, 2) == ours(1, 3)) and (ref(1, 2) == ref(1, 3))
    assert hash(ours(1, 2)) == hash(ref(1, 2))  # dataclass adds the field hash to an __eq__ of the body's own


def test_a_value_that_holds_itself_prints_as_dataclass_prints_it() -> None:
    ref, ours = _pair(_holder)
    r, o = ref([]), ours([])
    r.items.append(r)
    o.items.append(o)
    assert repr(o) == repr(r)


class _Module:
    """A class pickle can find by name."""

    @frozen
    class Gpu:
        index: int
        uuid: str | None = None


def test_a_class_without_a_docstring_gets_its_field_names() -> None:
    assert _Module.Gpu.__doc__ == "Gpu(index, uuid)"
    assert _Module.__doc__ == "A class pickle can find by name."
