"""Documents accepted the way the ArchiveLink `create` handler does it (staged, then one transaction),
without HTTP: for the tests of what happens to a document after SAP got its 201. And documents sent over
HTTP as SAP sends them, then delivered in-process, for the tests that read them back through the API."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from filerelay import documents
from filerelay.clock import FrozenClock
from filerelay.db.models import Delivery, DeliveryAttempt, Destination, Document, Workspace, new_id
from filerelay.db.session import session_scope
from filerelay.delivery import service
from filerelay.documents import NewComponent, Outcome
from filerelay.repositories import RepositoryContext
from filerelay.runtime import Runtime
from filerelay.staging import StagedObject
from tests.support.clock import half
from tests.support.sapclient import SapClient

CHUNK = 1 << 20
# A document id as SAP makes them (32 hex digits).
DOC = "361A524A3ECB5459E0000800099245EC"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 16 + b"\n%%EOF\n"


def stage(runtime: Runtime, data: bytes) -> StagedObject:
    """The bytes in staging, written in chunks as a request body would be."""
    with runtime.staging.writer(new_id("doc")) as writer:
        for start in range(0, len(data), CHUNK):
            writer.write(data[start : start + CHUNK])
        return writer.commit()


def acme_repository(session: Session, repo_id: str = "Z1") -> RepositoryContext:
    """A content repository of acme/production, which the test's configuration must have."""
    repository = documents.find_repository(session, owner="acme", slug="production", repo_id=repo_id)
    assert repository is not None
    return repository


def accept_components(runtime: Runtime, doc_id: str, components: list[NewComponent], *, repo_id: str = "Z1") -> Outcome:
    """A document of acme/production with these (staged) components, committed; what `create` decided."""
    with session_scope(runtime.sessions) as session:
        return documents.create(
            session.connection(),
            repository=acme_repository(session, repo_id),
            doc_id=doc_id,
            doc_prot=None,
            components=components,
            now=runtime.clock.now(),
        )


def accept(runtime: Runtime, doc_id: str, data: bytes, *, repo_id: str = "Z1") -> tuple[Outcome, StagedObject]:
    """A one-component (`data`, PDF) document of acme/production, committed; what `create` decided."""
    staged = stage(runtime, data)
    component = NewComponent("data", "application/pdf", None, None, staged)
    return accept_components(runtime, doc_id, [component], repo_id=repo_id), staged


@dataclass(frozen=True)
class Created:
    """A document accepted in acme/production and its deliveries, by destination kind."""

    document_id: str
    staging_key: str
    by_kind: dict[str, str]

    @property
    def folder(self) -> str:
        return self.by_kind["folder"]

    @property
    def s3(self) -> str:
        return self.by_kind["s3"]


def create_document(runtime: Runtime, doc_id: str = "DOC", data: bytes = PDF, *, enqueue: bool = False) -> Created:
    """A document accepted in Z1 (wired to a folder and an S3 bucket); with `enqueue`, its wake-ups sent
    as the API sends them once the create committed."""
    outcome, staged = accept(runtime, doc_id, data)
    if enqueue:
        runtime.enqueuer.enqueue(outcome.enqueue)
    by_kind = {kind: delivery_id for delivery_id, kind in outcome.enqueue}
    return Created(outcome.documents[0].id, staged.key, by_kind)


def replace_content(runtime: Runtime, *, doc_id: str, data: bytes) -> Outcome:
    """New content for a document of acme/production (SAP's `update` of its one component), committed."""
    staged = stage(runtime, data)
    with session_scope(runtime.sessions) as session:
        repository = acme_repository(session)
        archive_document = documents.find_document(session, repository=repository, doc_id=doc_id)
        assert archive_document is not None
        return documents.put_component(
            session,
            repository=repository,
            archive_document=archive_document,
            new=NewComponent("data", "application/pdf", None, None, staged),
            now=runtime.clock.now(),
        )


def delivery_to(runtime: Runtime, document_id: str, destination: str) -> str:
    """The id of the document's delivery to `destination` (a destination's public id, dest_…)."""
    with session_scope(runtime.sessions) as session:
        return session.scalars(
            select(Delivery.id)
            .join(Destination, Destination.id == Delivery.destination_id)
            .where(Delivery.document_id == document_id, Destination.public_id == destination)
        ).one()


def failed_at_once(runtime: Runtime, delivery_id: str) -> str:
    """One attempt by the real delivery service ends the delivery `failed` (max_retries 3: only a
    permanent refusal ends it after one attempt); its error."""
    assert service.run(runtime, delivery_id, rand=half) is True
    row = delivery(runtime, delivery_id)
    assert row.status == "failed", (row.status, row.last_error)
    return row.last_error or ""


def delivery(runtime: Runtime, delivery_id: str) -> Delivery:
    """The delivery row as committed, read in a session of its own."""
    with session_scope(runtime.sessions) as session:
        return session.get_one(Delivery, delivery_id)


def document(runtime: Runtime, document_id: str) -> Document:
    with session_scope(runtime.sessions) as session:
        return session.get_one(Document, document_id)


def attempts(runtime: Runtime, delivery_id: str) -> list[DeliveryAttempt]:
    """The delivery's attempt log, oldest first."""
    with session_scope(runtime.sessions) as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.number)
            )
        )


def deliver_all(runtime: Runtime, status: str = "pending") -> None:
    """What the workers do, in-process (the real delivery service): one attempt for every delivery in `status`."""
    with session_scope(runtime.sessions) as session:
        ids = list(session.scalars(select(Delivery.id).where(Delivery.status == status)))
    for delivery_id in ids:
        service.run(runtime, delivery_id, rand=half)


def make_documents(
    server: str, clock: FrozenClock, *doc_ids: str, workspace: str = "acme/production"
) -> dict[str, dt.datetime]:
    """Create each document the way SAP does, a minute apart; when each was sent."""
    sap = SapClient(f"{server}/archivelink/{workspace}")
    sent: dict[str, dt.datetime] = {}
    for doc_id in doc_ids:
        sent[doc_id] = clock.now()
        assert sap.create(doc_id, "data", f"%PDF {doc_id}".encode(), "application/pdf").status == 201
        clock.advance(60)
    return sent


def statuses(runtime: Runtime, destination: str) -> list[str]:
    """The statuses of acme/production's deliveries to `destination`."""
    with session_scope(runtime.sessions) as session:
        return list(
            session.scalars(
                select(Delivery.status)
                .join(Destination, Destination.id == Delivery.destination_id)
                .join(Workspace, Workspace.id == Destination.workspace_id)
                .where(Destination.public_id == destination, Workspace.owner_slug == "acme")
                .order_by(Delivery.id)
            )
        )


def failed_document(runtime: Runtime) -> str:
    """The id of the first document whose status is failed."""
    with session_scope(runtime.sessions) as session:
        found = session.scalars(select(Document.id).where(Document.status == "failed").order_by(Document.id)).first()
    assert found is not None
    return found


def staged_files(runtime: Runtime) -> list[Path]:
    """Every file in the (local) staging store, sorted."""
    root = Path(runtime.settings.staging_url.removeprefix("file://"))
    return sorted(p for p in root.rglob("*") if p.is_file())


def count(runtime: Runtime, model: type) -> int:
    """How many rows `model`'s table holds."""
    with session_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)
