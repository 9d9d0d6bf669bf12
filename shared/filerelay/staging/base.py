"""The staging store's interface: where accepted bytes wait, durably, until every delivery is final."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Protocol, Self

CHUNK_SIZE = 1024 * 1024
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


class StagingError(Exception):
    pass


class TooLarge(StagingError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the body exceeds the limit of {limit} bytes")
        self.limit = limit


class IncompleteBody(StagingError):
    """The client sent fewer bytes than it announced (it disconnected or died)."""


@dataclass(frozen=True)
class StagedObject:
    key: str
    size: int
    sha256: str


class Tally:
    """What a writer has taken so far: its size and SHA-256, refused (TooLarge) once past `limit`."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise TooLarge(self.limit)
        self._hash.update(data)

    def staged(self, key: str) -> StagedObject:
        return StagedObject(key=key, size=self.size, sha256=self._hash.hexdigest())


class AbortsOnExit:
    """A writer as a context manager: a block left without `commit` (an error, a client gone) aborts, and
    leaves nothing staged; after a commit, `abort` does nothing."""

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()


class StagingWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    def commit(self) -> StagedObject: ...
    def abort(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class StagingStore(Protocol):
    def writer(self, key: str, *, limit: int | None = None) -> StagingWriter: ...
    def open(self, key: str) -> BinaryIO: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def purge_orphans(self) -> int: ...
    def stale_keys(self, *, older_than: dt.timedelta) -> Iterator[str]:
        """Keys of committed objects not written for `older_than`: candidates for a row-less sweep."""
        ...

    def check(self) -> None: ...


def check_key(key: str) -> str:
    # Keys are ours (document ids), never SAP's: anything else reaching here is a bug, not input.
    if not key or not set(key) <= _KEY_CHARS or key.startswith("."):
        raise ValueError(f"invalid staging key {key!r}")
    return key


def copy_stream(read: Callable[[int], bytes], writer: StagingWriter, *, expected: int | None = None) -> None:
    """Pump a body into a writer chunk by chunk; never holds more than one chunk."""
    received = 0
    while True:
        chunk = read(CHUNK_SIZE)
        if not chunk:
            break
        received += len(chunk)
        writer.write(chunk)
    if expected is not None and received != expected:
        raise IncompleteBody(f"received {received} of {expected} announced bytes")
