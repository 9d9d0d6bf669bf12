"""Reading a document's bytes for a client: from staging while it holds them, else back from a
destination that has the current content (docs/architecture.md#staging)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, BinaryIO

from sqlalchemy.orm import Session

from filerelay.db.models import Delivery, DeliveryStatus, Document
from filerelay.delivery.paths import path_for
from filerelay.destinations.base import Clients, DestinationError, get_kind, read_verified
from filerelay.staging import CHUNK_SIZE, StagingError, StagingStore

log = logging.getLogger(__name__)


class FileRange:
    """A range of an open file as a response body. A class, not a generator, so the server's
    close() releases the file even when the body is never read (HEAD, a client gone early)."""

    def __init__(self, fp: BinaryIO, start: int, length: int) -> None:
        self._fp = fp
        self._remaining = length
        fp.seek(start)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = self._fp.read(min(CHUNK_SIZE, self._remaining)) if self._remaining > 0 else b""
        if not chunk:
            self.close()
            raise StopIteration
        self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        self._fp.close()


def open_content(
    staging: StagingStore,
    session: Session,
    document: Document,
    start: int = 0,
    length: int | None = None,
    *,
    clients: Clients,
) -> Iterator[bytes] | None:
    """The bytes (or a range of them), streamed; None when no copy can be read any more. `clients`: the
    process's destination clients, under its operator policy, for reading back a delivered copy."""
    length = document.size_bytes - start if length is None else length
    staged = open_staged(staging, document)
    if staged is not None:
        return FileRange(staged, start, length)
    return read_back(session, document, start, length, clients)


def open_staged(staging: StagingStore, document: Document) -> BinaryIO | None:
    """The staged file while staging holds it; None once it does not (purged, perhaps just now)."""
    if document.staging_key is None:
        return None
    try:
        return staging.open(document.staging_key)
    except StagingError:
        return None  # purged between reading the row and opening the file


def readable(document: Document) -> bool:
    """Whether the bytes can be read: staging holds them, or a destination that can give them back
    has the current content. SAP sees such a component `online`, whichever copy serves it."""
    return document.staging_key is not None or any(
        _current_copy(document, delivery) and get_kind(delivery.destination.kind).readable
        for delivery in document.deliveries
    )


def _current_copy(document: Document, delivery: Delivery) -> bool:
    return delivery.status == DeliveryStatus.DELIVERED and delivery.delivered_generation == document.generation


class Window:
    """A range of a document spooled to a temporary file (on disk past one chunk), read with the
    document's own offsets: what a search needs when the bytes come back from a destination."""

    def __init__(self, chunks: Iterable[bytes], start: int) -> None:
        self._start = start
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=CHUNK_SIZE)  # noqa: SIM115 - closed by close()
        for chunk in chunks:
            self._file.write(chunk)

    def seek(self, offset: int) -> None:
        if offset < self._start:
            raise ValueError(f"offset {offset} is before the spooled range, which starts at {self._start}")
        self._file.seek(offset - self._start)

    def read(self, size: int) -> bytes:
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def read_back(
    session: Session, document: Document, start: int, length: int, clients: Clients
) -> Iterator[bytes] | None:
    """The document's bytes from the first destination that delivered its current content and can
    be read (staging was purged), and still holds exactly them (its size and sha256). None when no
    destination can give them back: a copy replaced since its delivery is never served."""
    if length == 0:
        return iter(())
    for delivery in document.deliveries:
        if not _current_copy(document, delivery):
            continue
        destination = delivery.destination
        if not get_kind(destination.kind).readable:
            continue
        try:
            client = clients.get(destination.kind, destination.settings, destination.secrets)
            chunks = read_verified(
                client,
                delivery.path or path_for(document, destination),
                sha256=document.sha256,
                size=document.size_bytes,
                start=start,
                length=length,
            )
            first = next(chunks, b"")
        except (DestinationError, NotImplementedError) as exc:
            log.warning("cannot read %s back from %s: %s", document.id, destination.public_id, exc)
            continue
        return _resumed(first, chunks)
    return None


def _resumed(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """`first`, then the rest; closing it closes the destination's stream (a generator's close)."""
    try:
        yield first
        yield from rest
    finally:
        release(rest)


def release(chunks: Iterator[bytes]) -> None:
    """Let go of what a body holds (a staged file, a destination's response) when it is not read to
    the end: a search that stops at its last hit, a client that went away."""
    close = getattr(chunks, "close", None)
    if callable(close):
        close()
