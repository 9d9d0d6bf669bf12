"""Documents accepted the way the ArchiveLink `create` handler does it (staged, then one transaction),
without HTTP: for the tests of what happens to a document after SAP got its 201."""

from __future__ import annotations

from sqlalchemy import select

from filerelay import documents
from filerelay.db.models import Delivery, DeliveryAttempt, Document, new_id
from filerelay.db.session import session_scope
from filerelay.documents import NewComponent, Outcome
from filerelay.runtime import Runtime
from filerelay.staging import StagedObject

CHUNK = 1 << 20


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
