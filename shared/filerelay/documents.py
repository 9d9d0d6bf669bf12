"""ArchiveLink documents: accept, replace, append, delete; each write wires the deliveries it needs.

Every function takes the session explicitly and only flushes; the caller commits, then enqueues what
the returned `Outcome` lists (enqueue after commit), then deletes the staged keys it lists.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session, selectinload

from filerelay import document_writes, repositories
from filerelay.db.models import ArchiveDocument, Delivery, Document, DocumentStatus, Workspace, new_id
from filerelay.delivery import transitions
from filerelay.repositories import RepositoryContext, WiredDestination
from filerelay.staging import StagedObject


class DocumentExists(Exception):
    pass


class StaleConfiguration(Exception):
    """The workspace's configuration changed after the repository (its wiring, its signature mode) was
    read: nothing was written; read it again and decide again."""


@dataclass(frozen=True)
class NewComponent:
    comp_id: str
    mime: str
    charset: str | None
    version: str | None
    staged: StagedObject
    sent_type: str | None = None  # the Content-Type header as sent, when there was one


@dataclass
class Outcome:
    """What the caller must do after commit."""

    documents: list[Document] = field(default_factory=list)
    enqueue: list[tuple[str, str]] = field(default_factory=list)
    delete_staged: list[str] = field(default_factory=list)

    def merge(self, other: Outcome) -> None:
        self.documents += other.documents
        self.enqueue += other.enqueue
        self.delete_staged += other.delete_staged


def find_repository(session: Session, *, owner: str, slug: str, repo_id: str) -> RepositoryContext | None:
    return repositories.find(session, owner=owner, slug=slug, repo_id=repo_id)


def find_workspace(session: Session, *, owner: str, slug: str) -> Workspace | None:
    return session.scalar(select(Workspace).where(Workspace.owner_slug == owner, Workspace.slug == slug))


def find_document(session: Session, *, repository: RepositoryContext, doc_id: str) -> ArchiveDocument | None:
    return session.scalar(
        select(ArchiveDocument)
        .where(
            ArchiveDocument.repository_id == repository.id,
            ArchiveDocument.doc_id == doc_id,
            ArchiveDocument.deleted_at.is_(None),
        )
        .options(selectinload(ArchiveDocument.components))
    )


def existing_ids(session: Session, ids: Sequence[str]) -> set[str]:
    """Which of these component rows exist (a component's id is its first staging key)."""
    return set(session.scalars(select(Document.id).where(Document.id.in_(ids))))


def holds_identical(document: ArchiveDocument, components: Sequence[NewComponent]) -> bool:
    """Whether the stored document already is exactly this one: the same components with the same
    bytes (size and sha256). SAP repeats a `create` whose answer it never got; that is no conflict."""
    stored = {c.comp_id: (c.size_bytes, c.sha256) for c in document.components}
    sent = {c.comp_id: (c.staged.size, c.staged.sha256) for c in components}
    return len(sent) == len(components) and stored == sent


def component(document: ArchiveDocument, comp_id: str | None) -> Document | None:
    """The named component; without a name, `data`, else `data1` (docs/archivelink.md#get)."""
    by_id = {c.comp_id: c for c in document.components}
    if comp_id:
        return by_id.get(comp_id)
    return by_id.get("data") or by_id.get("data1")


def _wire(
    document: Document, destinations: Sequence[WiredDestination], now: dt.datetime, metadata_wait_seconds: int = 0
) -> Outcome:
    """Give the document a fresh retry cycle per wired destination (reusing delivery rows it has; a new
    one joins the document's, and so its session when the document is in one). Without business context
    yet, in a repository that waits for it, the deliveries are held back (docs/architecture.md#business-context)."""
    outcome = Outcome(documents=[document])
    wait = dt.timedelta(seconds=metadata_wait_seconds) if metadata_wait_seconds and not document.metadata_ else None
    existing = {d.destination_id: d for d in document.deliveries}
    for destination in destinations:
        delivery = existing.get(destination.id)
        if delivery is None:
            delivery = Delivery(
                id=new_id("dlv"),
                document=document,
                document_id=document.id,  # what the relationship sets only on flush, and create does not flush
                destination_id=destination.id,
                attempts=0,
                created_at=now,
            )
            if (session := object_session(document)) is not None:
                session.add(delivery)
        outcome.enqueue += transitions.wired(
            delivery, kind=destination.kind, policy=destination.policy, now=now, metadata_wait=wait
        )
    # The caller holds this row: new in this transaction, or locked by put_component.
    transitions.rolled_up(document, now=now)
    if document.status == DocumentStatus.DISCARDED and document.staging_key:
        # Nothing will ever read these bytes: no destination is wired (docs/architecture.md#document-status).
        outcome.delete_staged.append(document.staging_key)
        document.staging_key = None
    return outcome


def _new_document(
    repository: RepositoryContext, archive_document_id: int, doc_id: str, new: NewComponent, now: dt.datetime
) -> Document:
    return Document(
        id=new.staged.key,
        archive_document_id=archive_document_id,
        workspace_id=repository.workspace_id,
        repository_id=repository.id,
        doc_id=doc_id,
        comp_id=new.comp_id,
        content_type=new.mime,
        charset=new.charset,
        content_version=new.version,
        content_type_sent=new.sent_type,
        size_bytes=new.staged.size,
        sha256=new.staged.sha256,
        staging_key=new.staged.key,
        generation=1,
        status=DocumentStatus.PENDING,
        received_at=now,
        updated_at=now,
        metadata_={},
        export_messages=[],
    )


def create(
    connection: Connection,
    *,
    repository: RepositoryContext,
    doc_id: str,
    doc_prot: str | None,
    components: Sequence[NewComponent],
    now: dt.datetime,
) -> Outcome:
    """Accept a new SAP document with its components, atomically (the caller's transaction). An
    existing docId is found by the unique index on insert, not by reading first: DocumentExists. The
    first INSERT is made on condition that the workspace's config_version is still the one `repository`
    was read at, so a snapshot kept between requests never wires a document by an outdated
    configuration: StaleConfiguration, and nothing written.

    The rows are built in memory (the state machine wires the deliveries and rolls the document up on
    them) and written with plain INSERTs (filerelay.document_writes): this runs for every document SAP
    sends, and the ORM's unit of work (and its bulk INSERT) cost more than the database did."""
    header = {"repository_id": repository.id, "doc_id": doc_id, "doc_prot": doc_prot}
    header |= {"created_at": now, "updated_at": now}
    outcome = Outcome()
    for new in components:
        # Its archive document's id comes from the header's INSERT (set by document_writes.write).
        document = _new_document(repository, 0, doc_id, new, now)
        outcome.merge(_wire(document, repository.destinations, now, repository.metadata_wait_seconds))
    try:
        archive_id = document_writes.write(
            connection,
            header,
            workspace_id=repository.workspace_id,
            config_version=repository.config_version,
            documents=outcome.documents,
            deliveries=[d for document in outcome.documents for d in document.deliveries],
        )
    except IntegrityError as exc:
        raise DocumentExists(f"document {doc_id} already exists") from exc
    if archive_id is None:
        raise StaleConfiguration(f"the configuration of workspace {repository.workspace_id} changed")
    return outcome


def _inherit_business_context(document: Document, archive_document: ArchiveDocument) -> None:
    """SAP links a whole document (its docId) to a business object: a component added after the link
    arrived carries it too, rather than wait for it again."""
    for sibling in archive_document.components:
        if sibling.metadata_:
            document.metadata_ = dict(sibling.metadata_)
            document.sap_object_type, document.sap_object_id = sibling.sap_object_type, sibling.sap_object_id
            return


def put_component(
    session: Session,
    *,
    repository: RepositoryContext,
    archive_document: ArchiveDocument,
    new: NewComponent,
    now: dt.datetime,
) -> Outcome:
    """Create the component, or replace its content; either way it is delivered (again)."""
    destinations = repository.destinations
    existing = component(archive_document, new.comp_id)
    archive_document.updated_at = now
    if existing is None:
        document = _new_document(repository, archive_document.id, archive_document.doc_id, new, now)
        _inherit_business_context(document, archive_document)
        session.add(document)
        outcome = _wire(document, destinations, now, repository.metadata_wait_seconds)
        session.flush()
        return outcome
    # Locked before its deliveries are read: a worker finishing an attempt on the old content holds the
    # same lock, so one of the two sees the other's outcome, never a stale view.
    transitions.locked(session, [existing.id])
    outcome = Outcome()
    if existing.staging_key:
        outcome.delete_staged.append(existing.staging_key)
    existing.generation += 1
    existing.staging_key = new.staged.key
    existing.size_bytes = new.staged.size
    existing.sha256 = new.staged.sha256
    existing.content_type = new.mime
    existing.charset = new.charset
    existing.content_version = new.version
    existing.content_type_sent = new.sent_type
    existing.updated_at = now
    transitions.export_reset(existing, now=now)  # the integration has not exported this content yet
    outcome.merge(_wire(existing, destinations, now, repository.metadata_wait_seconds))
    session.flush()
    return outcome


def delete(session: Session, *, archive_document: ArchiveDocument, comp_id: str | None, now: dt.datetime) -> Outcome:
    """SAP deleted the document (or one component): it is gone from FileRelay's ArchiveLink view.

    Copies already delivered stay where they are: destinations are the customer's archive, and a
    relay does not reach into them on its own.
    """
    targets: Iterable[Document] = archive_document.components
    if comp_id is not None:
        targets = [c for c in archive_document.components if c.comp_id == comp_id]
    outcome = Outcome()
    for document in targets:
        document.deleted_at = now
        document.updated_at = now
        outcome.documents.append(document)
    if comp_id is None:
        archive_document.deleted_at = now
    archive_document.updated_at = now
    session.flush()
    return outcome


def staged_keys_in_use(session: Session, keys: Iterable[str]) -> set[str]:
    """Which of these staging keys a component row still points at."""
    wanted = list(keys)
    if not wanted:
        return set()
    return set(session.scalars(select(Document.staging_key).where(Document.staging_key.in_(wanted))))
