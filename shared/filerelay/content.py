"""Reading a document's bytes for a client: from staging while it holds them, else back from a
destination that has the current content (ARCHITECTURE.md §3, "Staging store")."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import BinaryIO

from sqlalchemy.orm import Session

from filerelay.db.models import DeliveryStatus, Document
from filerelay.delivery.paths import path_for
from filerelay.destinations.base import DestinationError, build_client
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
    staging: StagingStore, session: Session, document: Document, start: int = 0, length: int | None = None
) -> Iterator[bytes] | None:
    """The bytes (or a range of them), streamed; None when no copy can be read any more."""
    length = document.size_bytes - start if length is None else length
    if document.staging_key is not None:
        try:
            return FileRange(staging.open(document.staging_key), start, length)
        except StagingError:
            pass  # purged between reading the row and opening the file
    return read_back(session, document, start, length)


def read_back(session: Session, document: Document, start: int, length: int) -> Iterator[bytes] | None:
    """The document's bytes from the first destination that delivered its current content and can
    be read (staging was purged). None when no destination can give them back."""
    if length == 0:
        return iter(())
    for delivery in document.deliveries:
        if delivery.status != DeliveryStatus.DELIVERED or delivery.delivered_generation != document.generation:
            continue
        destination = delivery.destination
        try:
            client = build_client(destination.kind, destination.settings, destination.secrets)
            chunks = client.read(delivery.path or path_for(document, destination), start, length)
            first = next(chunks, b"")
        except (DestinationError, NotImplementedError) as exc:
            log.warning("cannot read %s back from %s: %s", document.id, destination.public_id, exc)
            continue
        return itertools.chain([first], chunks)
    return None
