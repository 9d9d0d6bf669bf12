"""Bodies from SAP into staging: single PUT bodies and multipart parts, all-or-nothing."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from flask import request
from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import parse_options_header

from filerelay.api.archivelink.multipart import read_parts
from filerelay.api.archivelink.protocol import ContentType, ProtocolError, parse_content_type, validate_id
from filerelay.db.models import new_id
from filerelay.documents import NewComponent
from filerelay.staging import (
    IncompleteBody,
    StagedObject,
    StagingStore,
    StagingWriter,
    TooLarge,
    copy_stream,
)

MAX_ID_LENGTH = 128
log = logging.getLogger(__name__)


def replacement_key(document_id: str) -> str:
    """A fresh staging key for new content of an existing component (old bytes may still be read)."""
    return f"{document_id}.{secrets.token_hex(4)}"


def _announced_length() -> int | None:
    return request.content_length


def read_request(size: int) -> bytes:
    """request.stream.read, where a broken body (client gone, bad chunking: the WSGI server raises
    OSError or ValueError) is the client's incomplete request, not our internal error."""
    try:
        return bytes(request.stream.read(size))
    except (ClientDisconnected, OSError, ValueError) as exc:
        raise IncompleteBody(f"the request body could not be read: {exc}") from None


def check_length(limit: int) -> None:
    length = _announced_length()
    if length is not None and length > limit:
        raise ProtocolError(f"the body has {length} bytes; the limit is {limit}", status=413)


def stage_body(staging: StagingStore, key: str, limit: int, *, prefix: Iterable[bytes] = ()) -> StagedObject:
    """Stream the request body (after `prefix`, the old content, for append) into staging."""
    try:
        check_length(limit)
        with staging.writer(key, limit=limit) as writer:
            for chunk in prefix:
                writer.write(chunk)
            copy_stream(read_request, writer, expected=_announced_length())
            return writer.commit()
    except TooLarge as exc:
        raise ProtocolError(str(exc), status=413) from None
    except IncompleteBody as exc:
        raise ProtocolError(f"incomplete body: {exc}") from None
    finally:
        # The old content (append) may be an open file or connection: release it whatever happened.
        close = getattr(prefix, "close", None)
        if close is not None:
            close()


def new_component(comp_id: str, content_type: ContentType, staged: StagedObject) -> NewComponent:
    mime, charset, version, sent = content_type.mime, content_type.charset, content_type.version, content_type.sent
    return NewComponent(comp_id, mime, charset, version, staged, sent_type=sent)


@dataclass(frozen=True)
class _Part:
    comp_id: str
    doc_id: str | None
    content_type: ContentType
    declared: int | None


def _filename(headers: dict[str, str]) -> str | None:
    disposition = headers.get("content-disposition")
    if not disposition:
        return None
    _, options = parse_options_header(disposition)
    return options.get("filename") or None


class StagedParts:
    """Part handler that stages each multipart component; `discard()` undoes everything staged.

    A part without X-compId is named after its Content-Disposition filename when it has one (as some
    clients send GOS attachments), and otherwise skipped and logged, as SAP's own handler does.
    """

    def __init__(self, staging: StagingStore, limit: int, *, with_doc_id: bool = False) -> None:
        self.staging = staging
        self.limit = limit
        self.with_doc_id = with_doc_id
        self.total = 0
        self.components: list[tuple[str | None, NewComponent]] = []
        self._writer: StagingWriter | None = None
        self._current: _Part | None = None
        self._part_size = 0
        self._number = 0

    def start_part(self, headers: dict[str, str]) -> None:
        self._number += 1
        self._part_size = 0
        if self.with_doc_id and "x-docid" not in headers:
            raise ProtocolError(f"part {self._number} has no X-docId header")
        doc_id = validate_id("X-docId", headers["x-docid"], MAX_ID_LENGTH) if self.with_doc_id else None
        named = headers.get("x-compid") or _filename(headers)
        if named is None:
            log.warning("skipped multipart part %d: it has no X-compId and no filename", self._number)
            self._current = None
            return
        comp_id = validate_id("X-compId", named, MAX_ID_LENGTH)
        if not self.with_doc_id and any(c.comp_id == comp_id for _, c in self.components):
            raise ProtocolError(f"component {comp_id} appears twice in one request")
        declared = headers.get("content-length")
        if declared is not None and not declared.isdigit():
            raise ProtocolError(f"part {comp_id} has an invalid Content-Length {declared!r}")
        content_type = parse_content_type(headers.get("content-type"))
        self._current = _Part(comp_id, doc_id, content_type, int(declared) if declared is not None else None)
        self._writer = self.staging.writer(new_id("doc"), limit=self.limit)

    def part_data(self, data: bytes) -> None:
        self.total += len(data)
        if self.total > self.limit:
            raise ProtocolError(f"the body exceeds the limit of {self.limit} bytes", status=413)
        self._part_size += len(data)
        if self._writer is not None:
            self._writer.write(data)

    def end_part(self) -> None:
        current = self._current
        if current is None:
            return
        assert self._writer is not None
        if current.declared is not None and current.declared != self._part_size:
            raise ProtocolError(
                f"part {current.comp_id} announced {current.declared} bytes but carried {self._part_size}"
            )
        staged = self._writer.commit()
        self._writer = None
        self._current = None
        self.components.append((current.doc_id, new_component(current.comp_id, current.content_type, staged)))

    def read(self) -> None:
        try:
            read_parts(read_request, request.headers.get("Content-Type"), self)
        except BaseException as exc:
            self.discard()
            if isinstance(exc, TooLarge):
                raise ProtocolError(str(exc), status=413) from None
            if isinstance(exc, IncompleteBody):
                raise ProtocolError(f"incomplete body: {exc}") from None
            raise

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        for _, component in self.components:
            self.staging.delete(component.staged.key)
        self.components.clear()
