"""A destination kind declares once what the rest of FileRelay derives from it: pushed or pulled (its queue,
its worker, the pull checks), and whether a copy can be read back."""

from __future__ import annotations

import pytest
from marshmallow import Schema

from filerelay.destinations import REGISTRY
from filerelay.destinations.base import DestinationKind, is_pushed, pushed_kinds
from filerelay.queue import KINDS, PUSHED, queue_name


def _build(*_: object) -> object:
    raise AssertionError("never built")


def test_a_kind_cannot_be_declared_without_saying_whether_it_is_pushed_and_readable() -> None:
    with pytest.raises(TypeError, match="pushed"):
        DestinationKind(name="x", schema=Schema, build=_build, readable=True)  # type: ignore[call-arg, arg-type]
    with pytest.raises(TypeError, match="readable"):
        DestinationKind(name="x", schema=Schema, build=_build, pushed=True)  # type: ignore[call-arg, arg-type]


def test_the_queues_and_the_pull_checks_derive_from_the_declarations() -> None:
    assert tuple(REGISTRY) == KINDS
    assert PUSHED == pushed_kinds() == tuple(name for name, kind in REGISTRY.items() if kind.pushed)
    assert "pull" in KINDS
    assert "pull" not in PUSHED
    assert not is_pushed("pull")
    assert is_pushed("s3")
    assert not is_pushed("no-such-kind")
    assert len({queue_name(kind) for kind in PUSHED}) == len(PUSHED)
