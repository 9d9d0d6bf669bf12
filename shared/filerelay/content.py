"""Reading a document's bytes for a client: from staging while it holds them, else back from a
destination that has the current content (ARCHITECTURE.md §3, "Staging store")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from sqlalchemy.orm import Session

from filerelay.db.models import Document
from filerelay.delivery.service import read_back
from filerelay.staging import CHUNK_SIZE, StagingError, StagingStore


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
