"""Read side for admins: which documents a workspace has, filtered and paged, with deliveries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from filerelay.db.models import Delivery, Destination, Document, Repository


@dataclass(frozen=True)
class DocumentFilter:
    repo_id: str | None = None
    status: str | None = None
    received_from: dt.datetime | None = None
    # Exclusive upper bound: a date-only `date_to` means "until the end of that day".
    received_before: dt.datetime | None = None
    destination_id: str | None = None


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
    return query


def list_documents(
    session: Session, *, workspace_id: int, filters: DocumentFilter, page: int, per_page: int
) -> tuple[Sequence[Document], int]:
    """One page, newest first, and the total that matches."""
    base = _filtered(session, workspace_id, filters)
    total = session.scalar(select(func.count()).select_from(base.order_by(None).subquery())) or 0
    documents = session.scalars(
        base.order_by(Document.received_at.desc(), Document.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
        .options(
            selectinload(Document.deliveries).selectinload(Delivery.destination), selectinload(Document.repository)
        )
    ).all()
    return documents, int(total)


def get_document(session: Session, *, workspace_id: int, document_id: str) -> Document | None:
    return session.scalars(
        select(Document)
        .where(Document.id == document_id, Document.workspace_id == workspace_id, Document.deleted_at.is_(None))
        .options(
            selectinload(Document.deliveries).selectinload(Delivery.destination), selectinload(Document.repository)
        )
    ).one_or_none()


def failed_deliveries(
    session: Session, *, workspace_id: int, filters: DocumentFilter, limit: int, after: str | None = None
) -> Sequence[Delivery]:
    """Failed deliveries of documents matching the filters, in id order (for batched bulk retry)."""
    documents = _filtered(session, workspace_id, filters).with_only_columns(Document.id)
    query = (
        select(Delivery)
        .where(Delivery.status == "failed", Delivery.document_id.in_(documents))
        .order_by(Delivery.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(Delivery.id > after)
    if filters.destination_id is not None:
        query = query.where(
            Delivery.destination_id.in_(
                select(Destination.id).where(
                    Destination.workspace_id == workspace_id, Destination.public_id == filters.destination_id
                )
            )
        )
    return session.scalars(query).all()
