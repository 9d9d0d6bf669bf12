"""The Files API's core, for pull integrations such as an ERP (docs/architecture.md#pull-deliveries): a change feed with
a cursor that lists what a pull destination's integration must process, the file view of a document, the
integration's export report, and soft delete.

Every lookup is scoped by workspace: a file of another workspace is indistinguishable from none.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, selectinload

from filerelay import documents
from filerelay.db.models import ChangeCounter, Delivery, DeliveryStatus, Destination, Document, DocumentStatus
from filerelay.delivery import transitions
from filerelay.delivery.paths import extension_for, path_for
from filerelay.delivery.rules import policy_for
from filerelay.delivery.transitions import ExportStatus
from filerelay.destinations.base import is_pushed, pushed_kinds


class FileStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    DELETED = "deleted"


# The metadata key naming SAP's document type (AR_OBJECT, e.g. ZINVOICE): the file's `type` when known.
TYPE_KEY = "ar_object"
# A component name that is a file name of its own (`scan.tif`, as GOS attachments arrive): a stem, then
# an extension with a letter in it (so `v1.2` is no file name).
_OWN_NAME = re.compile(r"^.*[^.]\.(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{1,10}$")
_NOT_IN_FILENAME = re.compile(r"[/\\]")
# `s` and the number of the last change seen. The earlier form, microseconds since the epoch and an
# id, is still accepted (a poller upgraded mid-feed resumes at that time). Every string of either shape
# is a valid position, so the OpenAPI pattern describes exactly what is accepted.
CURSOR_PATTERN = r"^(s[0-9]{1,18}|[0-9]{1,17}-[A-Za-z0-9_]{1,64})$"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
# Changes numbered per request at most: a feed nobody read for long catches up over a few polls.
SEQUENCE_BATCH = 10_000


class BadCursor(ValueError):
    pass


class UnknownDestination(LookupError):
    pass


class NotPull(ValueError):
    """The destination named is pushed to by workers: its files are in no feed."""


def pull_destinations(session: Session, *, workspace_id: int, destination_id: str | None) -> list[int]:
    """The row ids of the pull destinations whose files a feed lists: the one named (by its public id),
    else every pull destination of the workspace. Raises UnknownDestination or NotPull."""
    query = select(Destination.id, Destination.kind).where(Destination.workspace_id == workspace_id)
    if destination_id is None:
        return list(
            session.scalars(query.with_only_columns(Destination.id).where(Destination.kind.not_in(pushed_kinds())))
        )
    found = session.execute(query.where(Destination.public_id == destination_id)).one_or_none()
    if found is None:
        raise UnknownDestination(f"no destination {destination_id}")
    if is_pushed(found.kind):
        raise NotPull(
            f"destination {destination_id} is a {found.kind} destination: workers deliver to it, so it has no "
            "feed; name a pull destination"
        )
    return [found.id]


@dataclass(frozen=True)
class Cursor:
    """A position in the change feed: just past the change numbered `seq`.

    Changes are numbered in the order they became visible (committed), not by their updated_at: a
    transaction that stamps its time and commits after a later one would otherwise land behind a
    poller's cursor and never be seen. `since` is the earlier (updated_at, id) form."""

    seq: int | None = None
    since: tuple[dt.datetime, str] | None = None

    def encode(self) -> str:
        if self.seq is not None:
            return f"s{self.seq}"
        if self.since is None:
            raise ValueError("a cursor is a number or an (updated_at, id) position")
        # The earlier form, handed back as it came while nothing newer is there to move past.
        at, document_id = self.since
        return f"{(at - _EPOCH) // _MICROSECOND}-{document_id}"

    @classmethod
    def decode(cls, value: str) -> Cursor:
        if not re.fullmatch(CURSOR_PATTERN, value):
            raise BadCursor("not a cursor this API handed out; pass next_cursor back as it was returned")
        if value.startswith("s"):
            return cls(seq=int(value[1:]))
        micros, document_id = value.split("-", 1)
        return cls(since=(_EPOCH + int(micros) * _MICROSECOND, document_id))


def sequence_changes(session: Session, *, limit: int = SEQUENCE_BATCH) -> int:
    """Number the committed changes that have no number yet, oldest first; return how many.

    The counter row's lock makes numbering one transaction at a time, and the changes are looked
    for again once it is held: whatever was committed before is numbered now, whatever commits later
    gets a higher number later. Called by the feed (in its own request's transaction) and the sweeper.
    """
    waiting = select(Document.id).where(Document.change_seq.is_(None))
    if session.scalar(waiting.limit(1)) is None:
        return 0  # an idle poll or sweep writes nothing; what commits later is numbered later
    counter = update(ChangeCounter).where(ChangeCounter.id == 1)
    base = session.scalar(counter.values(value=ChangeCounter.value).returning(ChangeCounter.value))
    if base is None:  # the counter row is gone (a test emptied the tables): start past every number given
        highest = session.scalar(select(func.max(Document.change_seq))) or 0
        session.execute(insert(ChangeCounter).values(id=1, value=highest))
        base = highest
    ids = session.scalars(waiting.order_by(Document.updated_at, Document.id).limit(limit)).all()
    if not ids:
        return 0
    session.execute(counter.values(value=base + len(ids)))
    # Core on the session's connection, not the ORM: one executemany by id, and no before_update hook
    # clearing the number it sets.
    table = Document.metadata.tables["documents"]
    session.connection().execute(
        update(table)
        .where(table.c.id == bindparam("doc"), table.c.change_seq.is_(None))
        .values(change_seq=bindparam("seq")),
        [{"doc": doc, "seq": base + n} for n, doc in enumerate(ids, start=1)],
    )
    return len(ids)


@dataclass(frozen=True)
class ExportInfo:
    """What the integration last reported (`PATCH /files/{id}`): `empty`, no messages and no time until
    it reports."""

    export_status: str
    export_messages: list[str]
    export_updated_at: dt.datetime | None


@dataclass(frozen=True)
class FileInfo:
    """A document as the Files API shows a file."""

    id: str
    filename: str
    file_id: str
    type: str
    status: FileStatus
    size: int
    created_at: dt.datetime
    completed_at: dt.datetime | None
    processed_data: dict[str, Any]
    export_info: ExportInfo


_BY_DOCUMENT_STATUS = {
    DocumentStatus.PENDING: FileStatus.PENDING,
    DocumentStatus.RETRYING: FileStatus.PROCESSING,
    DocumentStatus.FAILED: FileStatus.FAILED,
    DocumentStatus.DELIVERED: FileStatus.COMPLETED,
    DocumentStatus.DISCARDED: FileStatus.COMPLETED,  # why: file_status
}


def file_status(document: Document) -> FileStatus:
    """deleted_at set → deleted; else by the document status: delivered → completed, retrying →
    processing, failed → failed, pending → pending, or processing while some delivery is under way
    (a worker uploading, or the integration having reported `exporting`).

    discarded → completed: no destination is wired to its repository, so nothing will ever happen
    to it. That is final and intended, not an error (failed would page someone for a configuration
    choice), and nothing is left to wait for (pending would keep a poller waiting for ever)."""
    if document.deleted_at is not None:
        return FileStatus.DELETED
    status = _BY_DOCUMENT_STATUS[DocumentStatus(document.status)]
    if status == FileStatus.PENDING and any(d.status == DeliveryStatus.DELIVERING for d in document.deliveries):
        return FileStatus.PROCESSING
    return status


def completed_at(document: Document) -> dt.datetime | None:
    """When the last delivery landed (a discarded document was settled on receipt); None until then."""
    if document.status == DocumentStatus.DISCARDED:
        return document.received_at
    if document.status != DocumentStatus.DELIVERED:
        return None
    return max((d.delivered_at for d in document.deliveries if d.delivered_at), default=document.updated_at)


def file_type(document: Document) -> str:
    """SAP's document type (the metadata's `ar_object`) when known, else the format ("pdf", "tif", …)."""
    value = (document.metadata_ or {}).get(TYPE_KEY)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return extension_for(document.content_type).lstrip(".") or "unknown"


def filename(document: Document) -> str:
    """The component's own name when it is a file name (`scan.tif`); else `{doc_id}_{comp_id}{ext}`, the
    extension from the content type (`4711_data.pdf`). Never a path separator in it."""
    if _OWN_NAME.match(document.comp_id):
        name = document.comp_id
    else:
        name = f"{document.doc_id}_{document.comp_id}{extension_for(document.content_type)}"
    return _NOT_IN_FILENAME.sub("_", name)


def export_info(document: Document) -> ExportInfo:
    return ExportInfo(
        export_status=document.export_status or ExportStatus.EMPTY.value,
        export_messages=list(document.export_messages or []),
        export_updated_at=document.export_updated_at,
    )


def media_type(document: Document) -> str:
    return f"{document.content_type}; charset={document.charset}" if document.charset else document.content_type


def describe(document: Document) -> FileInfo:
    """A document as the Files API's file. id: the document id (`doc_…`), the fileId of every /files URL;
    filename: see filename; file_id: `{id}_{filename}`, stable because the row id survives content
    updates (the form "1234567890_invoice.pdf" of the reference shape); type: see file_type; status: see
    file_status; size and created_at: the bytes and when SAP sent them; completed_at: see completed_at;
    processed_data: the document's metadata; export_info: see export_info."""
    name = filename(document)
    return FileInfo(
        id=document.id,
        filename=name,
        file_id=f"{document.id}_{name}",
        type=file_type(document),
        status=file_status(document),
        size=document.size_bytes,
        created_at=document.received_at,
        completed_at=completed_at(document),
        processed_data=dict(document.metadata_ or {}),
        export_info=export_info(document),
    )


def changes(
    session: Session,
    *,
    workspace_id: int,
    destinations: Sequence[int],
    updated_after: dt.datetime | None,
    after: Cursor | None,
    limit: int,
) -> tuple[list[FileInfo], Cursor | None]:
    """Documents with a delivery to one of `destinations` (pull_destinations), changed after the time and
    the cursor, in the order the changes were committed, deleted ones included (so pollers learn of
    deletions); and the cursor just past the page. A document changed again comes again, further on.

    A page that ends short moves the cursor to the last change numbered when it was read, past the
    workspace's other changes, so the next poll does not walk them again. That skips nothing: numbers
    are handed out one transaction at a time under the counter's lock (sequence_changes), so every
    number up to the highest one visible is already committed and was looked at."""
    sequence_changes(session)
    ceiling = session.scalar(
        select(func.max(Document.change_seq)).where(
            Document.workspace_id == workspace_id, Document.change_seq.is_not(None)
        )
    )
    if ceiling is None or not destinations:
        return [], after
    wired = exists().where(Delivery.document_id == Document.id, Delivery.destination_id.in_(list(destinations)))
    query = select(Document).where(
        Document.workspace_id == workspace_id,
        Document.change_seq.is_not(None),
        Document.change_seq <= ceiling,
        wired,
    )
    if updated_after is not None:
        query = query.where(Document.updated_at > updated_after)
    if after is not None and after.seq is not None:
        query = query.where(Document.change_seq > after.seq)
    elif after is not None and after.since is not None:
        at, document_id = after.since
        query = query.where(or_(Document.updated_at > at, and_(Document.updated_at == at, Document.id > document_id)))
    page = session.scalars(
        query.order_by(Document.change_seq).limit(limit).options(selectinload(Document.deliveries))
    ).all()
    if len(page) == limit:
        return [describe(d) for d in page], Cursor(seq=page[-1].change_seq)
    if after is not None and after.seq is not None and after.seq >= ceiling:
        return [describe(d) for d in page], after  # nothing numbered past it yet: the position holds
    return [describe(d) for d in page], Cursor(seq=ceiling)


def find(session: Session, *, workspace_id: int, file_id: str, lock: bool = False) -> Document | None:
    """The document, deleted or not. `lock` holds its row, so roll-ups never work from stale views."""
    query = select(Document).where(Document.id == file_id, Document.workspace_id == workspace_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).one_or_none()


def report_export(
    session: Session, document: Document, *, status: ExportStatus, messages: Sequence[str], now: dt.datetime
) -> None:
    """Store the integration's report and move every pull delivery of the document with it, rolling the
    document up in the same transaction (docs/architecture.md#pull-deliveries). `document` comes from
    `find(..., lock=True)`.

    The report is not a change of the file in the feed (the document is not stamped changed): the
    integration knows what it reported, and a work list that handed its own report back would have it
    process the file again. The file shows the report (`export_info`) wherever it is read."""
    document.export_status = status.value
    document.export_messages = list(messages)
    document.export_updated_at = now
    for delivery in document.deliveries:
        if not is_pushed(delivery.destination.kind):
            transitions.export_reported(
                delivery,
                status,
                kind=delivery.destination.kind,
                messages=messages,
                content=transitions.Delivered(
                    document.generation, path_for(document, delivery.destination), document.sha256
                ),
                policy=policy_for(document.repository.workspace, delivery.destination),
                now=now,
            )
    transitions.export_settled(document)
    session.flush()


def soft_delete(session: Session, document: Document, *, now: dt.datetime) -> None:
    """Gone from listings and from SAP's view, still known to the change feed; idempotent."""
    if document.deleted_at is None:
        documents.delete(session, archive_document=document.archive_document, comp_id=document.comp_id, now=now)
