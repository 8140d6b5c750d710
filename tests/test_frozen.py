"""`frozen.quick_init`: the records a poll builds by the thousand keep what a frozen
dataclass promises (defaults, default factories, equality, hashing, no assignment), and a
record it cannot build the same way is refused when its module is imported, not misbuilt."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from notifier.frozen import quick_init
from notifier.store import PollRecord


@quick_init
@dataclass(frozen=True, slots=True)
class _Record:
    name: str
    count: int = 3
    tags: list[str] = field(default_factory=list)


def test_a_quick_record_is_built_as_its_dataclass_would_be() -> None:
    one = _Record("a")
    assert (one.name, one.count, one.tags) == ("a", 3, [])
    assert _Record("a", 4, ["x"]) == _Record(name="a", count=4, tags=["x"])
    assert one.tags is not _Record("b").tags  # a fresh list each time
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.count = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        _Record()  # type: ignore[call-arg]


def test_a_poll_record_stays_frozen_and_comparable() -> None:
    fields = {f.name: None for f in dataclasses.fields(PollRecord)}
    record = PollRecord(**fields)  # type: ignore[arg-type]
    assert record == PollRecord(**fields)  # type: ignore[arg-type]
    assert hash(record) == hash(PollRecord(**fields))  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.feed_id = 2  # type: ignore[misc]


def test_what_it_cannot_build_the_same_way_is_refused() -> None:
    @dataclass(frozen=True, slots=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class Named:
        value: int = field(kw_only=True)

    @dataclass(frozen=True)
    class Unslotted:
        value: int

    for cls in (Checked, Named, Unslotted):
        with pytest.raises(TypeError):
            quick_init(cls)
