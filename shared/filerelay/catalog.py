"""Read side for admins: which documents a workspace has, filtered and paged, with deliveries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, exists, func, select, tuple_
from sqlalchemy.orm import Session, selectinload

from filerelay.db.models import Delivery, Destination, Document, Repository
from filerelay.keyset import Cursor as Cursor  # the documents listing's cursor

# Counting every match of a filter over millions of rows costs more than the page itself; past this
# many, `total` says "at least" instead (and `total_exact` is false).
COUNT_CAP = 10_000


@dataclass(frozen=True)
class DocumentFilter:
    repo_id: str | None = None
    status: str | None = None
    received_from: dt.datetime | None = None
    # Exclusive upper bound: a date-only `date_to` means "until the end of that day".
    received_before: dt.datetime | None = None
    destination_id: str | None = None
    doc_id: str | None = None
    # The SAP business object (metadata's sap_object_type, and optionally sap_object_id).
    sap_object_type: str | None = None
    sap_object_id: str | None = None


@dataclass(frozen=True)
class Page:
    documents: Sequence[Document]
    total: int
    # False when `total` is COUNT_CAP and more match.
    total_exact: bool
    # Where the next page starts; None on the last page.
    next_cursor: Cursor | None


_WITH_DELIVERIES = (
    selectinload(Document.deliveries).selectinload(Delivery.destination),
    selectinload(Document.repository),
)


def _filtered(session: Session, workspace_id: int, filters: DocumentFilter) -> Select[Document]:
    query = select(Document).where(Document.deleted_at.is_(None))
    if filters.repo_id is None:
        query = query.where(Document.workspace_id == workspace_id)
    else:
        # Resolved first, within the workspace: the repository then scopes the query by itself, and the
        # planner sees a constant it can match to the (repository, …) indexes without heap lookups.
        repository_id = session.scalar(
            select(Repository.id).where(Repository.workspace_id == workspace_id, Repository.repo_id == filters.repo_id)
        )
        query = query.where(Document.repository_id == (repository_id if repository_id is not None else -1))
    if filters.status is not None:
        query = query.where(Document.status == filters.status)
    if filters.received_from is not None:
        query = query.where(Document.received_at >= filters.received_from)
    if filters.received_before is not None:
        query = query.where(Document.received_at < filters.received_before)
    if filters.doc_id is not None:
        query = query.where(Document.doc_id == filters.doc_id)
    if filters.sap_object_type is not None:
        # The workspace too (even within a repository): the business-object indexes lead with it.
        query = query.where(Document.workspace_id == workspace_id, Document.sap_object_type == filters.sap_object_type)
        if filters.sap_object_id is not None:
            query = query.where(Document.sap_object_id == filters.sap_object_id)
    if filters.destination_id is not None:
        query = query.where(
            exists().where(
                Delivery.document_id == Document.id,
                Delivery.destination_id.in_(
                    select(Destination.id).where(
                        Destination.workspace_id == workspace_id, Destination.public_id == filters.destination_id
                    )
                ),
            )
        )
    return query


def list_documents(
    session: Session,
    *,
    workspace_id: int,
    filters: DocumentFilter,
    per_page: int,
    page: int = 1,
    after: Cursor | None = None,
    count_cap: int = COUNT_CAP,
) -> Page:
    """One page, newest first: the `page`-th, or the one right after the cursor `after` (keyset paging,
    as fast a thousand pages deep as on the first). The total counts the whole filter up to `count_cap`."""
    base = _filtered(session, workspace_id, filters)
    counted = session.scalar(
        select(func.count()).select_from(
            base.with_only_columns(Document.id).order_by(None).limit(count_cap + 1).subquery()
        )
    )
    total = int(counted or 0)
    query = base.order_by(Document.received_at.desc(), Document.id.desc()).limit(per_page + 1)
    if after is not None:
        query = query.where(tuple_(Document.received_at, Document.id) < tuple_(after.at, after.key))
    else:
        query = query.offset((page - 1) * per_page)
    rows = session.scalars(query.options(*_WITH_DELIVERIES)).all()
    documents, more = rows[:per_page], len(rows) > per_page
    last = documents[-1] if documents else None
    return Page(
        documents=documents,
        total=min(total, count_cap),
        total_exact=total <= count_cap,
        next_cursor=Cursor(last.received_at, last.id) if more and last is not None else None,
    )


def find_document(session: Session, *, workspace_id: int, document_id: str) -> Document | None:
    return session.scalars(
        select(Document)
        .where(Document.id == document_id, Document.workspace_id == workspace_id, Document.deleted_at.is_(None))
        .options(*_WITH_DELIVERIES)
    ).one_or_none()


def _failed(session: Session, workspace_id: int, filters: DocumentFilter) -> Select[Delivery]:
    # A document whose staged bytes were released has nothing left to send: not retried, not counted.
    documents = _filtered(session, workspace_id, filters).with_only_columns(Document.id)
    documents = documents.where(Document.staging_key.is_not(None))
    query = select(Delivery).where(Delivery.status == "failed", Delivery.document_id.in_(documents))
    if filters.destination_id is not None:
        query = query.where(
            Delivery.destination_id.in_(
                select(Destination.id).where(
                    Destination.workspace_id == workspace_id, Destination.public_id == filters.destination_id
                )
            )
        )
    return query


def failed_deliveries(
    session: Session, *, workspace_id: int, filters: DocumentFilter, limit: int, after: str | None = None
) -> Sequence[Delivery]:
    """Failed deliveries of documents matching the filters, in id order (for batched bulk retry)."""
    query = _failed(session, workspace_id, filters).order_by(Delivery.id).limit(limit)
    if after is not None:
        query = query.where(Delivery.id > after)
    return session.scalars(query).all()


def count_failed(
    session: Session, *, workspace_id: int, filters: DocumentFilter, cap: int | None = None
) -> tuple[int, int]:
    """How many documents, and how many of their deliveries, a bulk retry with these filters would re-queue;
    with `cap`, counting stops past `cap` deliveries (then both are lower bounds)."""
    failed = _failed(session, workspace_id, filters)
    if cap is not None:
        failed = failed.limit(cap + 1)
    rows = failed.subquery()
    documents, deliveries = session.execute(select(func.count(func.distinct(rows.c.document_id)), func.count())).one()
    return int(documents), int(deliveries)
