"""Operations on deliveries and files, each with its audit entry: retry one document, retry in bulk,
pause and resume a destination, delete a file. The state rules stay in filerelay.delivery and
filerelay.files; the deliveries a change makes due are woken after its commit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from filerelay import audit, catalog, files
from filerelay.catalog import DocumentFilter
from filerelay.delivery.retry import retry_deliveries, retry_document
from filerelay.operations.transaction import Context, Transaction, UnknownItem, transaction
from filerelay.workspace_config import destinations
from filerelay.workspace_config.destinations import DestinationInfo


def retry(tx: Transaction, *, workspace_id: int, document_id: str) -> int:
    """Put every failed delivery of the document back to `retrying`, due now; how many. Raises
    UnknownItem, or delivery.retry.NothingToRetry when none failed."""
    document = catalog.find_document(tx.session, workspace_id=workspace_id, document_id=document_id)
    if document is None:
        raise UnknownItem(f"no document {document_id}")
    wake = retry_document(tx.session, document, now=tx.now)
    tx.audit(workspace_id=workspace_id, action=audit.RETRY, target=document_id, deliveries=len(wake))
    tx.wake(wake)
    return len(wake)


# Failed deliveries re-queued per transaction by a bulk retry.
BULK_BATCH = 500


@dataclass(frozen=True)
class BulkRetried:
    documents: int
    deliveries: int


def retry_matching(
    context: Context, *, workspace_id: int, filters: DocumentFilter, described: Mapping[str, str]
) -> BulkRetried:
    """Re-queue the failed deliveries the filters select, one transaction (and audit entry) per batch, woken
    after each commit: no huge transaction, and an interrupted bulk retry keeps what it did. `described`:
    the filters as the caller gave them, for the entry."""
    documents: set[str] = set()
    deliveries = 0
    after: str | None = None
    while True:
        with transaction(context) as tx:
            failed = catalog.failed_deliveries(
                tx.session, workspace_id=workspace_id, filters=filters, limit=BULK_BATCH, after=after
            )
            if not failed:
                return BulkRetried(documents=len(documents), deliveries=deliveries)
            after = failed[-1].id
            documents |= {d.document_id for d in failed}
            wake = retry_deliveries(tx.session, failed, now=tx.now)
            tx.audit(
                workspace_id=workspace_id,
                action=audit.BULK_RETRY,
                target="documents",
                filters=dict(described),
                deliveries=len(wake),
            )
            tx.wake(wake)
        deliveries += len(wake)


def pause(tx: Transaction, *, workspace_id: int, destination_id: str) -> DestinationInfo:
    """Hold the destination's deliveries until resumed (workspace_config's Conflict when already paused)."""
    info = destinations.pause_destination(
        tx.session, workspace_id=workspace_id, destination_id=destination_id, now=tx.now
    )
    _audit_switch(tx, workspace_id, destination_id, paused=True)
    return info


def resume(tx: Transaction, *, workspace_id: int, destination_id: str) -> DestinationInfo:
    """Let the deliveries go again; those due are woken after the commit."""
    info, wake = destinations.resume_destination(
        tx.session, workspace_id=workspace_id, destination_id=destination_id, now=tx.now
    )
    _audit_switch(tx, workspace_id, destination_id, paused=False, deliveries=len(wake))
    tx.wake(wake)
    return info


def _audit_switch(tx: Transaction, workspace_id: int, destination_id: str, *, paused: bool, **detail: Any) -> None:
    """A pause's or a resume's entry: the `paused` flag, before and after."""
    tx.audit(
        workspace_id=workspace_id,
        action=audit.PAUSE if paused else audit.RESUME,
        target=destination_id,
        changes=audit.diff({"paused": not paused}, {"paused": paused}),
        **detail,
    )


def delete_file(tx: Transaction, *, workspace_id: int, file_id: str) -> None:
    """Soft delete (idempotent: deleting a deleted file changes and records nothing). Raises UnknownItem."""
    document = files.find(tx.session, workspace_id=workspace_id, file_id=file_id, lock=True)
    if document is None:
        raise UnknownItem(f"no file {file_id}")
    if document.deleted_at is not None:
        return
    files.soft_delete(tx.session, document, now=tx.now)
    tx.audit(
        workspace_id=workspace_id,
        action=audit.FILE_DELETE,
        target=file_id,
        changes=audit.diff({"deleted": False}, {"deleted": True}),
        doc_id=document.doc_id,
        repo_id=document.repository.repo_id,
    )
