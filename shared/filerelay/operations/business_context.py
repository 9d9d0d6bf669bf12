"""Setting documents' business context, each change with its audit entry: one document by its id, or a
batch of SAP documents by repository and docId (what SAP's link tables say). Deliveries held back for
the metadata are woken after the commit (filerelay.business_context has the rules)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from filerelay import audit, business_context
from filerelay.business_context import InvalidMetadata, NotAccepted, Problem
from filerelay.db.models import Delivery, Document, DocumentStatus
from filerelay.delivery import transitions
from filerelay.operations.transaction import Context, Transaction, UnknownItem, transaction

# Entries a batch may carry: one transaction holds them all.
MAX_ENTRIES = 1_000


def _apply(
    tx: Transaction,
    workspace_id: int,
    document: Document,
    metadata: Mapping[str, str],
    deliveries: Sequence[Delivery],
) -> bool:
    before = dict(document.metadata_ or {})
    wake = business_context.set_metadata(document, metadata, deliveries, now=tx.now)
    if wake is None:
        return False
    tx.audit(
        workspace_id=workspace_id,
        action=audit.DOCUMENT_METADATA,
        target=document.id,
        changes=audit.diff(before, document.metadata_),
        doc_id=document.doc_id,
        comp_id=document.comp_id,
        deliveries=len(wake),
    )
    tx.wake(wake)
    return True


def set_metadata(tx: Transaction, *, workspace_id: int, document_id: str, metadata: object) -> bool:
    """Replace the component's metadata; whether anything changed. Raises InvalidMetadata, UnknownItem,
    or NotAccepted (deleted or discarded), changing nothing."""
    clean = business_context.validated(metadata)
    found = business_context.by_id(tx.session, workspace_id=workspace_id, document_id=document_id)
    if found is None:
        raise UnknownItem(f"no document {document_id}")
    [document] = transitions.locked(tx.session, [found.id])
    why = business_context.refusal([document])
    if why is not None:
        raise NotAccepted(why)
    deliveries = business_context.deliveries_of(tx.session, [document])[document.id]
    return _apply(tx, workspace_id, document, clean, deliveries)


@dataclass
class EntryResult:
    """What became of one entry of a batch: 200 (set, or already so), 400, 404 or 409."""

    repo_id: str
    doc_id: str
    status: int = 200
    changed: bool = False
    documents: list[str] = field(default_factory=list)
    detail: str | None = None
    problems: list[Problem] = field(default_factory=list)


def set_many(context: Context, *, workspace_id: int, entries: Sequence[Mapping[str, Any]]) -> list[EntryResult]:
    """Set each entry's metadata (`repo_id`, `doc_id`, `metadata`) on every live component of that SAP
    document, in one transaction; an entry refused (invalid, unknown, deleted or discarded) changes
    nothing and the others go ahead. Results in the entries' order."""
    results = [EntryResult(repo_id=e["repo_id"], doc_id=e["doc_id"]) for e in entries]
    valid: dict[int, dict[str, str]] = {}
    for i, entry in enumerate(entries):
        try:
            valid[i] = business_context.validated(entry["metadata"])
        except InvalidMetadata as exc:
            results[i].status, results[i].problems = 400, exc.problems
    with transaction(context) as tx:
        keys = [(results[i].repo_id, results[i].doc_id) for i in valid]
        found = business_context.by_doc_ids(tx.session, workspace_id=workspace_id, keys=keys)
        # Locked together in id order, as workers lock them: two writers never deadlock.
        locked = {d.id: d for d in transitions.locked(tx.session, [d.id for docs in found.values() for d in docs])}
        deliveries = business_context.deliveries_of(tx.session, list(locked.values()))
        for i, metadata in valid.items():
            result = results[i]
            key = (result.repo_id, result.doc_id)
            if key not in found:
                result.status, result.detail = 404, f"no document {result.doc_id} in repository {result.repo_id}"
                continue
            documents = [locked[d.id] for d in found[key]]
            why = business_context.refusal(documents)
            if why is not None:
                result.status, result.detail = 409, why
                continue
            for document in documents:
                if document.status == DocumentStatus.DISCARDED:
                    continue
                result.documents.append(document.id)
                if _apply(tx, workspace_id, document, metadata, deliveries[document.id]):
                    result.changed = True
    return results


__all__ = ["MAX_ENTRIES", "EntryResult", "InvalidMetadata", "NotAccepted", "set_many", "set_metadata"]
