"""Documents accepted the way the ArchiveLink `create` handler does it (staged, then one transaction),
without HTTP: for the tests of what happens to a document after SAP got its 201."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from filerelay import documents
from filerelay.db.models import Delivery, DeliveryAttempt, Document, new_id
from filerelay.db.session import session_scope
from filerelay.documents import NewComponent, Outcome
from filerelay.runtime import Runtime
from filerelay.staging import StagedObject

CHUNK = 1 << 20
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 16 + b"\n%%EOF\n"


def stage(runtime: Runtime, data: bytes) -> StagedObject:
    """The bytes in staging, written in chunks as a request body would be."""
    with runtime.staging.writer(new_id("doc")) as writer:
        for start in range(0, len(data), CHUNK):
            writer.write(data[start : start + CHUNK])
        return writer.commit()


def accept(runtime: Runtime, doc_id: str, data: bytes, *, repo_id: str = "Z1") -> tuple[Outcome, StagedObject]:
    """A one-component (`data`, PDF) document of acme/production, committed; what `create` decided."""
    staged = stage(runtime, data)
    with session_scope(runtime.sessions) as session:
        repository = documents.find_repository(session, owner="acme", slug="production", repo_id=repo_id)
        assert repository is not None
        outcome = documents.create(
            session,
            repository=repository,
            doc_id=doc_id,
            doc_prot=None,
            components=[NewComponent("data", "application/pdf", None, None, staged)],
            now=runtime.clock.now(),
        )
    return outcome, staged


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
        repository = documents.find_repository(session, owner="acme", slug="production", repo_id="Z1")
        assert repository is not None
        archive_document = documents.find_document(session, repository=repository, doc_id=doc_id)
        assert archive_document is not None
        return documents.put_component(
            session,
            repository=repository,
            archive_document=archive_document,
            new=NewComponent("data", "application/pdf", None, None, staged),
            now=runtime.clock.now(),
        )


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
