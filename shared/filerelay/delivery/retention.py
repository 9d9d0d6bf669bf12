"""The data lifecycle (docs/operations.md#data-lifecycle): what the sweeper releases or removes once it has
been finished long enough, and when. Each step is a function of (session, now, …) taking at most `limit`
rows with SKIP LOCKED, walking an index over due rows only; the caller commits, then deletes staged bytes.

- A failed document's staged bytes are kept `failed` long for a manual retry, then released: the row keeps
  when and why, and a retry of it is refused with that reason.
- The rows of a finished document (its deliveries, their attempts, and its ArchiveLink header once no
  component is left) are removed `records` after it finished. Only documents the Files feed has numbered
  are removed, so each one's final state was in the feed for at least that long.
- Audit entries are removed `audit` after they were written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.orm import Session

from filerelay.db.models import (
    ArchiveDocument,
    AuditEvent,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Document,
    DocumentStatus,
)

if TYPE_CHECKING:
    from filerelay.settings import Settings

# A document is finished in one of these states, once none of its deliveries waits or is under way (a
# document is `failed` as soon as one delivery failed, while another may still be pending).
FINISHED = (DocumentStatus.DELIVERED, DocumentStatus.FAILED, DocumentStatus.DISCARDED)
UNSETTLED = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.DELIVERING)
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Retention:
    """How long each kind of data is kept; None: for ever."""

    delivered_staging: dt.timedelta
    failed_staging: dt.timedelta | None = None
    records: dt.timedelta | None = None
    audit: dt.timedelta | None = None

    @classmethod
    def of(cls, settings: Settings) -> Retention:
        def days(value: int | None) -> dt.timedelta | None:
            return None if value is None else value * DAY

        return cls(
            delivered_staging=dt.timedelta(seconds=settings.staging_retention_seconds),
            failed_staging=days(settings.failed_retention_days),
            records=days(settings.record_retention_days),
            audit=days(settings.audit_retention_days),
        )


def released_reason(retention: dt.timedelta) -> str:
    return (
        f"failed for {retention.days} days (FILERELAY_FAILED_RETENTION_DAYS): the staged bytes were released;"
        " SAP must send the document again to deliver it"
    )


def settled() -> ColumnElement[bool]:
    """No delivery of the document waits or is under way (one probe of deliveries' document_id index)."""
    return ~exists().where(Delivery.document_id == Document.id, Delivery.status.in_(UNSETTLED))


def is_settled(document: Document) -> bool:
    return not any(d.status in UNSETTLED for d in document.deliveries)


def staging_expires_at(document: Document, retention: Retention) -> dt.datetime | None:
    """When the sweeper releases the document's staged bytes (at its first pass after that); None while
    they are kept (something still waits, or failed bytes are kept for ever) or already gone."""
    if document.staging_key is None or not is_settled(document):
        return None
    if document.status == DocumentStatus.DELIVERED:
        return document.updated_at + retention.delivered_staging
    if document.status == DocumentStatus.FAILED and retention.failed_staging is not None:
        return document.updated_at + retention.failed_staging
    return None


def record_expires_at(document: Document, retention: Retention) -> dt.datetime | None:
    """When the sweeper removes the document's rows; None while it is not finished, or rows are kept."""
    if retention.records is None or document.status not in FINISHED or not is_settled(document):
        return None
    return document.updated_at + retention.records


def release_failed_staging(session: Session, *, now: dt.datetime, retention: dt.timedelta, limit: int) -> list[str]:
    """Failed documents, settled for `retention`: their staged bytes are released from their rows, with
    the reason. Returns the staging keys, to delete after the commit (as the delivered purge does)."""
    documents = session.scalars(
        select(Document)
        .where(
            Document.status == DocumentStatus.FAILED,
            Document.staging_key.is_not(None),
            Document.updated_at <= now - retention,
            settled(),
        )
        .order_by(Document.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    reason = released_reason(retention)
    keys = []
    for document in documents:
        keys.append(document.staging_key)
        # updated_at is left alone: nothing a Files poller follows changed, and the records' clock runs on.
        document.staging_key = None
        document.staging_released_at = now
        document.staging_released_reason = reason
    return [k for k in keys if k]


@dataclass
class Removed:
    documents: int = 0
    archive_documents: int = 0
    staging_keys: list[str] = field(default_factory=list)


def remove_finished(session: Session, *, now: dt.datetime, retention: dt.timedelta, limit: int) -> Removed:
    """Remove the rows of documents finished more than `retention` ago: up to `limit` documents, each with
    its deliveries and their attempts, and the ArchiveLink headers left without a component. Returns the
    staged bytes they still held, to delete after the commit."""
    ids = _without_busy_deliveries(session, _finished(session, cutoff=now - retention, limit=limit))
    if not ids:
        return Removed()
    held = session.execute(select(Document.archive_document_id, Document.staging_key).where(Document.id.in_(ids))).all()
    deliveries = select(Delivery.id).where(Delivery.document_id.in_(ids))
    # Children first, so neither dialect depends on cascades (SQLite's need its foreign_keys pragma).
    plain = {"synchronize_session": False}  # no object of these rows is used after: expired below
    session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(deliveries)), execution_options=plain)
    session.execute(delete(Delivery).where(Delivery.document_id.in_(ids)), execution_options=plain)
    session.execute(delete(Document).where(Document.id.in_(ids)), execution_options=plain)
    orphaned = session.execute(
        delete(ArchiveDocument).where(
            ArchiveDocument.id.in_({row.archive_document_id for row in held}),
            ~exists().where(Document.archive_document_id == ArchiveDocument.id),
        ),
        execution_options=plain,
    )
    session.expire_all()  # objects of removed rows must not be flushed back
    return Removed(
        documents=len(ids),
        archive_documents=orphaned.rowcount or 0,  # type: ignore[attr-defined]
        staging_keys=[row.staging_key for row in held if row.staging_key],
    )


def _finished(session: Session, *, cutoff: dt.datetime, limit: int) -> list[str]:
    """Up to `limit` documents finished at or before `cutoff`, oldest first by status, row-locked."""
    ids: list[str] = []
    # One query per status, each walking ix_documents_status_updated in order: an IN list would read every
    # due row of the three to sort them, which the first pass after switching retention on cannot afford.
    for status in FINISHED:
        if len(ids) >= limit:
            break
        ids += session.scalars(
            select(Document.id)
            .where(
                Document.status == status,
                Document.updated_at <= cutoff,
                # Numbered by the Files feed: its final state was visible to pollers for the retention.
                Document.change_seq.is_not(None),
                settled(),
            )
            .order_by(Document.updated_at)
            .limit(limit - len(ids))
            .with_for_update(skip_locked=True)
        ).all()
    return ids


def _without_busy_deliveries(session: Session, ids: list[str]) -> list[str]:
    """The documents whose every delivery this transaction could lock, and found settled once locked: one
    another transaction holds (a retry between its change and its roll-up) is left for a later pass, so
    the two never wait on each other."""
    if not ids:
        return []
    locked = session.execute(
        select(Delivery.id, Delivery.document_id, Delivery.status)
        .where(Delivery.document_id.in_(ids))
        .with_for_update(skip_locked=True)
    ).all()
    every = session.execute(select(Delivery.id, Delivery.document_id).where(Delivery.document_id.in_(ids))).all()
    taken = {row.id for row in locked}
    busy = {row.document_id for row in every if row.id not in taken}
    busy |= {row.document_id for row in locked if row.status in UNSETTLED}
    return [i for i in ids if i not in busy]


def purge_audit(session: Session, *, now: dt.datetime, retention: dt.timedelta, limit: int) -> int:
    """Remove up to `limit` audit entries older than `retention`, oldest first (ix_audit_events_at)."""
    ids = session.scalars(
        select(AuditEvent.id)
        .where(AuditEvent.at < now - retention)
        .order_by(AuditEvent.at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if ids:
        session.execute(
            delete(AuditEvent).where(AuditEvent.id.in_(ids)), execution_options={"synchronize_session": False}
        )
    return len(ids)
