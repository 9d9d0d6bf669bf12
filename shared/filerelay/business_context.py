"""A document's business context: the SAP business object it is linked to (which SAP writes into its
own link tables, never into ArchiveLink's `create`) and free keys, set through the REST API.

The rules as plain functions: what a metadata object may hold (`validated`), which documents an entry
names and whether they may take it, and what setting it changes: the metadata, its indexed copies,
and the deliveries held back for it (docs/architecture.md#business-context).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session, selectinload

from filerelay.db.models import ArchiveDocument, Delivery, Document, DocumentStatus, Repository
from filerelay.delivery import transitions
from filerelay.delivery.transitions import Wake

# The well-known keys, in SAP's formats: object type (SAP_OBJECT, e.g. BKPF or BUS2081), object key
# (OBJECT_ID), document type (AR_OBJECT) and client (MANDT).
WELL_KNOWN: dict[str, tuple[re.Pattern[str], str]] = {
    "sap_object_type": (re.compile(r"[A-Z0-9_]{1,10}"), "1 to 10 uppercase letters, digits or '_' (e.g. BKPF)"),
    "sap_object_id": (re.compile(r"[^\x00-\x1f\x7f]{1,90}"), "1 to 90 characters, no control characters"),
    "ar_object": (re.compile(r"[A-Z0-9_]{1,10}"), "1 to 10 uppercase letters, digits or '_' (e.g. ZCUSTOMINV)"),
    "client": (re.compile(r"[0-9]{3}"), "3 digits (e.g. 100)"),
}
KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
KEY_HELP = "a letter, then up to 63 letters, digits or '_'"
MAX_KEYS = 50
MAX_VALUE = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a metadata object: where (a JSON pointer within it) and what."""

    pointer: str
    message: str


class InvalidMetadata(ValueError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.pointer or '/'}: {p.message}" for p in problems))
        self.problems = list(problems)


class NotAccepted(Exception):
    """The document may not take business context (deleted, or discarded); nothing was changed."""


def validated(metadata: object) -> dict[str, str]:
    """The metadata object as stored, or InvalidMetadata listing every problem."""
    if not isinstance(metadata, Mapping):
        raise InvalidMetadata([Problem("", "metadata must be a JSON object of string values")])
    problems: list[Problem] = []
    if len(metadata) > MAX_KEYS:
        problems.append(Problem("", f"at most {MAX_KEYS} keys; this has {len(metadata)}"))
    for key, value in metadata.items():
        pointer = "/" + str(key).replace("~", "~0").replace("/", "~1")
        if not isinstance(key, str) or not KEY.fullmatch(key):
            problems.append(Problem(pointer, f"key {str(key)[:70]!r}: use {KEY_HELP}"))
            continue
        if not isinstance(value, str):
            problems.append(Problem(pointer, "must be a string"))
        elif key in WELL_KNOWN:
            pattern, help_text = WELL_KNOWN[key]
            if not pattern.fullmatch(value):
                problems.append(Problem(pointer, f"{value[:100]!r} is not valid: use {help_text}"))
        elif not value or len(value) > MAX_VALUE:
            problems.append(Problem(pointer, f"must be 1 to {MAX_VALUE} characters (leave an empty key out)"))
        elif _CONTROL.search(value):
            problems.append(Problem(pointer, "must not contain control characters"))
    if "sap_object_id" in metadata and "sap_object_type" not in metadata:
        problems.append(Problem("/sap_object_id", "an object key needs its object type (sap_object_type)"))
    if problems:
        raise InvalidMetadata(problems)
    return dict(metadata)


# --- which documents ----------------------------------------------------------------------------------


def by_id(session: Session, *, workspace_id: int, document_id: str) -> Document | None:
    """The component, deleted or not (a deleted one is refused, not unknown)."""
    return session.scalar(select(Document).where(Document.id == document_id, Document.workspace_id == workspace_id))


DocKey = tuple[str, str]  # (repo_id, SAP's doc_id)


def by_doc_ids(session: Session, *, workspace_id: int, keys: Sequence[DocKey]) -> dict[DocKey, list[Document]]:
    """The live components of each SAP document named; for one that has none left, the components of its
    latest deleted version (to be refused, not called unknown). A key never seen is absent."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    headers = session.execute(
        select(Repository.repo_id, ArchiveDocument.doc_id, ArchiveDocument.id, ArchiveDocument.deleted_at)
        .join(Repository, Repository.id == ArchiveDocument.repository_id)
        .where(
            Repository.workspace_id == workspace_id,
            tuple_(Repository.repo_id, ArchiveDocument.doc_id).in_(wanted),
        )
    ).all()
    chosen: dict[DocKey, tuple[int, bool]] = {}
    # The live header wins; else the latest deleted one (a docId may be created again after a delete).
    for repo_id, doc_id, header_id, deleted_at in sorted(headers, key=lambda h: (h[3] is None, h[2])):
        chosen[(repo_id, doc_id)] = (header_id, deleted_at is None)
    components = session.scalars(
        select(Document)
        .where(Document.archive_document_id.in_([header_id for header_id, _ in chosen.values()]))
        .order_by(Document.id)
    ).all()
    found: dict[DocKey, list[Document]] = {key: [] for key in chosen}
    owner = {header_id: key for key, (header_id, _) in chosen.items()}
    for document in components:
        key = owner[document.archive_document_id]
        if document.deleted_at is None or not chosen[key][1]:
            found[key].append(document)
    return found


def refusal(documents: Sequence[Document]) -> str | None:
    """Why these components may not take business context, or None: they are deleted, or every one was
    discarded (nothing will ever be delivered, so there is nothing to describe)."""
    if not documents or any(d.deleted_at is not None for d in documents):
        return "the document was deleted"
    if all(d.status == DocumentStatus.DISCARDED for d in documents):
        return "the document was discarded (no destination was wired to its repository when it arrived)"
    return None


def deliveries_of(session: Session, documents: Sequence[Document]) -> dict[str, list[Delivery]]:
    """Each document's deliveries with their destinations, in one read. Not locked: the ones
    `set_metadata` changes are held back (not due), so no worker claims or finishes them meanwhile."""
    found: dict[str, list[Delivery]] = {d.id: [] for d in documents}
    for delivery in session.scalars(
        select(Delivery)
        .where(Delivery.document_id.in_(list(found)))
        .options(selectinload(Delivery.destination))
        .order_by(Delivery.id)
    ):
        found[delivery.document_id].append(delivery)
    return found


# --- setting it ---------------------------------------------------------------------------------------


def business_object(metadata: Mapping[str, Any]) -> tuple[str | None, str | None]:
    return metadata.get("sap_object_type"), metadata.get("sap_object_id")


def set_metadata(
    document: Document, metadata: Mapping[str, str], deliveries: Sequence[Delivery], *, now: dt.datetime
) -> list[Wake] | None:
    """Replace the document's metadata (the caller holds its row lock, and checked `refusal`). None when
    it already is exactly this (nothing changes); else the wake-ups to send after commit: its deliveries
    held back for it (docs/architecture.md#business-context) are due now."""
    if dict(document.metadata_ or {}) == dict(metadata):
        return None
    document.metadata_ = dict(metadata)
    document.sap_object_type, document.sap_object_id = business_object(metadata)
    document.updated_at = now  # a change readers see: the Files feed brings the document again
    wake: list[Wake] = []
    if not metadata:
        return wake
    for delivery in deliveries:
        kind = delivery.destination.kind
        if transitions.held_for_metadata(delivery, kind=kind, now=now):
            wake += transitions.metadata_arrived(delivery, kind=kind, now=now)
    return wake


def waiting_for_metadata(document: Document, *, now: dt.datetime) -> bool:
    """Whether any delivery of the document is held back for its business context (the console says so)."""
    return not document.metadata_ and any(
        transitions.held_for_metadata(d, kind=d.destination.kind, now=now) for d in document.deliveries
    )
