"""`filled`: a large upload's parts or chunks read into one buffer, whatever a reader returns per call."""

from __future__ import annotations

import io
from typing import Any, BinaryIO, cast

import pytest

from filerelay.destinations.base import DestinationError, filled


class Trickle(io.RawIOBase):
    """A raw reader that hands out at most `most` bytes per call, as a GET streamed from S3 staging may."""

    def __init__(self, data: bytes, most: int) -> None:
        self._data, self._most, self._at = data, most, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        piece = self._data[self._at : self._at + min(len(buffer), self._most)]
        buffer[: len(piece)] = piece
        self._at += len(piece)
        return len(piece)


def test_each_piece_is_whole_and_overwrites_the_one_buffer() -> None:
    data = bytes(range(256)) * 41  # 10,496 bytes: four pieces of 3,000 and a last of 1,496
    buffer = bytearray(3000)
    seen = []
    for piece in filled(cast(BinaryIO, Trickle(data, 7)), len(data), buffer):
        assert piece is buffer  # no new buffer per piece
        seen.append(bytes(piece))
    assert [len(p) for p in seen] == [3000, 3000, 3000, 1496]
    assert b"".join(seen) == data


def test_staging_shorter_than_its_size_fails_for_good_with_where_it_ended() -> None:
    with pytest.raises(DestinationError) as info:
        list(filled(cast(BinaryIO, Trickle(b"x" * 2500, 1000)), 4000, bytearray(1000)))
    assert str(info.value) == "staging ended at 2500 of 4000 bytes"
    assert not info.value.retryable
