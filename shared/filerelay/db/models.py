"""The domain model (docs/architecture.md#domain-model) as SQLAlchemy 2 tables."""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, relationship

from filerelay.db import sealed_rows
from filerelay.db.types import SealedJSON, UTCDateTime


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class DocumentStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"
    DISCARDED = "discarded"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"


class AttemptOutcome(enum.StrEnum):
    RUNNING = "running"
    DELIVERED = "delivered"
    FAILED = "failed"
    # The lease ran out while the attempt ran, and the delivery moved on without it.
    SUPERSEDED = "superseded"
    # The worker stopped mid-attempt (its lease expired); the sweeper closed the attempt.
    ABANDONED = "abandoned"
    # After an attempt whose outcome nobody saw, the destination already held the identical content:
    # recorded as delivered, nothing sent again.
    FOUND = "found"


class Role(enum.StrEnum):
    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"


class SignatureMode(enum.StrEnum):
    REQUIRED = "required"
    OPTIONAL = "optional"
    NONE = "none"


class Base(DeclarativeBase):
    # SQLAlchemy reads this as a class attribute.
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}  # noqa: RUF012


class Workspace(Base):
    __tablename__ = "workspaces"
    __table_args__ = (UniqueConstraint("owner_slug", "slug"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_slug: Mapped[str] = mapped_column(String(64))
    slug: Mapped[str] = mapped_column(String(64))
    max_retries: Mapped[int] = mapped_column(Integer, default=5)
    retry_ttl_seconds: Mapped[int] = mapped_column(Integer, default=24 * 3600)
    backoff_base_seconds: Mapped[int] = mapped_column(Integer, default=30)
    backoff_max_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    created_at: Mapped[dt.datetime]
    # Bumped in the transaction of every configuration change (filerelay.operations): a process's snapshot
    # of the configuration (filerelay.workspace_snapshot) is current while this has not moved.
    config_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    repositories: Mapped[list[Repository]] = relationship(back_populates="workspace")
    destinations: Mapped[list[Destination]] = relationship(back_populates="workspace")


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    # sha256 hex of the whole key: the key itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class Repository(Base):
    """An SAP content repository (contRep) within a workspace."""

    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("workspace_id", "repo_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    repo_id: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(255), default="")
    signature: Mapped[str] = mapped_column(String(16), default=SignatureMode.REQUIRED.value)
    # Seconds a new document's deliveries wait for its business context (PUT …/metadata) before they go
    # out without it; 0: they go out at once (docs/architecture.md#business-context).
    metadata_wait_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[dt.datetime]

    workspace: Mapped[Workspace] = relationship(back_populates="repositories")
    destinations: Mapped[list[Destination]] = relationship(secondary="routes", order_by="Destination.id")


class Destination(Base):
    __tablename__ = "destinations"
    __table_args__ = (UniqueConstraint("workspace_id", "public_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    public_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Write-only: never returned by any API. Sealed at rest (AES-GCM, FILERELAY_ENCRYPTION_KEYS): the
    # database holds ciphertext, the model a plain dict.
    secrets: Mapped[dict[str, Any]] = mapped_column(SealedJSON(sealed_rows.PURPOSE), default=dict)
    path_template: Mapped[str] = mapped_column(String(512))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    max_retries: Mapped[int | None]
    retry_ttl_seconds: Mapped[int | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    # Operational state, apart from the configuration (`config apply` never touches it); changed only by
    # filerelay.delivery.transitions. Paused by an admin, or its circuit breaker open: its deliveries are
    # not attempted (but a breaker's single probe) and their TTL clock stops.
    paused_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    breaker_opened_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # The one delivery a half-open breaker lets through; its outcome closes or re-opens the breaker.
    probe_delivery_id: Mapped[str | None] = mapped_column(String(32), default=None)
    # Since when its deliveries have been held (paused or breaker open), for the TTL shift on release.
    held_since: Mapped[dt.datetime | None] = mapped_column(default=None)

    workspace: Mapped[Workspace] = relationship(back_populates="destinations")


class Route(Base):
    """Wires a repository to a destination."""

    __tablename__ = "routes"

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id", ondelete="CASCADE"), primary_key=True)


class ArchiveDocument(Base):
    """The ArchiveLink document header: what SAP calls a document, holding 0..n components."""

    __tablename__ = "archive_documents"
    __table_args__ = (
        # A deleted docId may be created again; only live documents must be unique.
        Index(
            "uq_archive_documents_live",
            "repository_id",
            "doc_id",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    doc_id: Mapped[str] = mapped_column(String(128))
    # None: created without docProt (server default applies); "" means explicitly unprotected.
    doc_prot: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    deleted_at: Mapped[dt.datetime | None]

    components: Mapped[list[Document]] = relationship(
        back_populates="archive_document",
        primaryjoin="and_(ArchiveDocument.id == Document.archive_document_id, Document.deleted_at.is_(None))",
        order_by="Document.comp_id",
        viewonly=True,
    )


class Document(Base):
    """One ArchiveLink component: the unit that is staged, delivered and listed."""

    __tablename__ = "documents"
    __table_args__ = (
        Index(
            "uq_documents_live_component",
            "repository_id",
            "doc_id",
            "comp_id",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # The Documents API lists live documents newest first, optionally by repository or status; the
        # partial indexes also let PostgreSQL count a filter's matches with an index-only scan.
        Index(
            "ix_documents_live_received",
            "workspace_id",
            "received_at",
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "ix_documents_live_status_received",
            "workspace_id",
            "status",
            "received_at",
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "ix_documents_live_repository_received",
            "repository_id",
            "received_at",
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "ix_documents_live_repository_status_received",
            "repository_id",
            "status",
            "received_at",
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # The Documents API's `doc_id` filter, across the workspace's repositories.
        Index(
            "ix_documents_live_doc_id",
            "workspace_id",
            "doc_id",
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # The Documents API's business-object filter. Only documents with a business object are in these
        # indexes, so receiving a document (which has none yet) never writes to them.
        Index(
            "ix_documents_live_object_type_received",
            "workspace_id",
            "sap_object_type",
            "received_at",
            sqlite_where=text("deleted_at IS NULL AND sap_object_type IS NOT NULL"),
            postgresql_where=text("deleted_at IS NULL AND sap_object_type IS NOT NULL"),
        ),
        Index(
            "ix_documents_live_object_received",
            "workspace_id",
            "sap_object_type",
            "sap_object_id",
            "received_at",
            sqlite_where=text("deleted_at IS NULL AND sap_object_type IS NOT NULL"),
            postgresql_where=text("deleted_at IS NULL AND sap_object_type IS NOT NULL"),
        ),
        Index("ix_documents_workspace_updated", "workspace_id", "updated_at"),
        # The Files feed: each workspace's changes in the order they were sequenced (files.py).
        Index("ix_documents_workspace_change_seq", "workspace_id", "change_seq"),
        # Changes still to be sequenced.
        Index(
            "ix_documents_unsequenced",
            "updated_at",
            "id",
            sqlite_where=text("change_seq IS NULL"),
            postgresql_where=text("change_seq IS NULL"),
        ),
        # The sweeper's purge question: whose staged bytes are no longer needed?
        Index(
            "ix_documents_staged_status_updated",
            "status",
            "updated_at",
            sqlite_where=text("staging_key IS NOT NULL"),
            postgresql_where=text("staging_key IS NOT NULL"),
        ),
        # The sweeper's record retention: finished documents, oldest first (filerelay.delivery.retention).
        Index("ix_documents_status_updated", "status", "updated_at"),
        # A header's components; also what removing a header checks (its foreign key) without a table scan.
        Index("ix_documents_archive_document", "archive_document_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("doc"))
    archive_document_id: Mapped[int] = mapped_column(ForeignKey("archive_documents.id", ondelete="CASCADE"))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    doc_id: Mapped[str] = mapped_column(String(128))
    comp_id: Mapped[str] = mapped_column(String(128))
    content_type: Mapped[str] = mapped_column(String(255))
    charset: Mapped[str | None] = mapped_column(String(64))
    # The ArchiveLink "version" parameter of the component's content type, not a revision number.
    content_version: Mapped[str | None] = mapped_column(String(64))
    # The Content-Type header as SAP sent it, served back on get/info; content_type is its parsed
    # media type (application/octet-stream when it does not parse), for destinations and {ext}.
    content_type_sent: Mapped[str | None] = mapped_column(String(255))
    # The change's place in the Files feed, given to committed changes in commit order (files.py);
    # None while a change waits for its number. Every change of updated_at clears it.
    change_seq: Mapped[int | None] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Where the bytes sit in staging; None once purged (or never kept, when discarded).
    staging_key: Mapped[str | None] = mapped_column(String(255))
    # When and why the sweeper released the staged bytes of a document that still needed them for a retry
    # (a failed document past FILERELAY_FAILED_RETENTION_DAYS); None otherwise.
    staging_released_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    staging_released_reason: Mapped[str | None] = mapped_column(String(255), default=None)
    # Bumped whenever SAP replaces the content (update/append), so a delivery of older bytes is recognisable.
    generation: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # Copies of metadata's business object, kept with it (filerelay.business_context) for an indexed filter.
    sap_object_type: Mapped[str | None] = mapped_column(String(10), default=None)
    sap_object_id: Mapped[str | None] = mapped_column(String(90), default=None)
    export_status: Mapped[str | None] = mapped_column(String(16))
    export_messages: Mapped[list[str]] = mapped_column(default=list)
    export_updated_at: Mapped[dt.datetime | None]
    deleted_at: Mapped[dt.datetime | None]

    archive_document: Mapped[ArchiveDocument] = relationship(back_populates="components")
    repository: Mapped[Repository] = relationship()
    deliveries: Mapped[list[Delivery]] = relationship(back_populates="document", order_by="Delivery.created_at")


class ChangeCounter(Base):
    """The last number the Files feed gave a change: one row, whose lock also lets one transaction at a
    time hand out numbers, so they follow the order in which changes became visible (files.py)."""

    __tablename__ = "change_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


@event.listens_for(Document, "before_update")
def _resequence(_mapper: Mapper[Document], _connection: Any, document: Document) -> None:
    """A changed document goes to the end of the Files feed: its number is given again once this
    change is committed (files.sequence_changes), so a poller past the old number sees it."""
    if inspect(document).attrs.updated_at.history.has_changes():
        document.change_seq = None


def resequenced(document_changes: dict[str, Any]) -> dict[str, Any]:
    """`_resequence` for a document written by a plain UPDATE (which no ORM event sees)."""
    return {**document_changes, "change_seq": None} if "updated_at" in document_changes else document_changes


class Delivery(Base):
    """One document x one destination."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("document_id", "destination_id"),
        # The sweeper's questions: what is due, and whose lease ran out.
        Index("ix_deliveries_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_deliveries_status_lease", "status", "lease_until"),
        Index("ix_deliveries_status_expires", "status", "expires_at"),
        # The console's overview: each destination's last success, and deliveries per hour; and how many
        # wait (few, however many were delivered). The claim walks a destination's waiting deliveries in
        # the order they fall due, so it reads what it takes, however long the backlog.
        Index("ix_deliveries_destination_delivered", "destination_id", "delivered_at"),
        Index(
            "ix_deliveries_waiting_due",
            "destination_id",
            "next_attempt_at",
            sqlite_where=text("status IN ('pending', 'retrying')"),
            postgresql_where=text("status IN ('pending', 'retrying')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("dlv"))
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("destinations.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cycle_attempts: Mapped[int] = mapped_column(Integer, default=0)
    cycle_started_at: Mapped[dt.datetime]
    # When the retry cycle gives up (cycle start + TTL): stored so the sweeper can find it by index.
    expires_at: Mapped[dt.datetime]
    next_attempt_at: Mapped[dt.datetime | None]
    # When a wake-up message was last sent; a due delivery with no recent one gets another.
    enqueued_at: Mapped[dt.datetime | None]
    lease_until: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]
    delivered_generation: Mapped[int | None]
    path: Mapped[str | None] = mapped_column(String(1024))
    sha256: Mapped[str | None] = mapped_column(String(64))
    # What the last attempt's upload said identifies the version it put at the path (its kind's own
    # text: SharePoint's UniqueId or ETag with the sha256), recorded before that version became current
    # where the kind can: an attempt nobody saw end is then told apart without reading the copy back.
    landed_version: Mapped[str | None] = mapped_column(String(512))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    document: Mapped[Document] = relationship(back_populates="deliveries")
    destination: Mapped[Destination] = relationship()
    attempt_log: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="delivery", order_by="DeliveryAttempt.number"
    )


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "number"),
        # The console's overview: failed attempts of the last hour (few, however many succeed).
        Index(
            "ix_delivery_attempts_failed_finished",
            "finished_at",
            sqlite_where=text("outcome = 'failed'"),
            postgresql_where=text("outcome = 'failed'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    # The document generation this attempt uploads; content replaced meanwhile means deliver again.
    generation: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    outcome: Mapped[str] = mapped_column(String(16))
    error_class: Mapped[str | None] = mapped_column(String(128))
    error_message: Mapped[str | None] = mapped_column(Text)
    bytes_sent: Mapped[int | None] = mapped_column(BigInteger)

    delivery: Mapped[Delivery] = relationship(back_populates="attempt_log")


class Certificate(Base):
    """A certificate SAP sent with putCert; trusted only once an admin activates it."""

    __tablename__ = "certificates"
    __table_args__ = (UniqueConstraint("repository_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    auth_id: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(512))
    issuer: Mapped[str] = mapped_column(String(512))
    serial: Mapped[str] = mapped_column(String(128))
    not_before: Mapped[dt.datetime]
    not_after: Mapped[dt.datetime]
    der: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime]
    activated_at: Mapped[dt.datetime | None]


class AuditEvent(Base):
    """Who changed what, and when: every configuration change and every operation (shown to admins, never
    edited; removed only by the sweeper, past FILERELAY_AUDIT_RETENTION_DAYS). Written by
    filerelay.operations in the transaction of the change it records."""

    __tablename__ = "audit_events"
    __table_args__ = (
        # The listing's order (newest first, id breaking ties) and its keyset cursor, per workspace.
        Index("ix_audit_events_workspace_at_id", "workspace_id", "at", "id"),
        Index("ix_audit_events_workspace_target", "workspace_id", "target"),
        # The sweeper's audit retention: the oldest entries of every workspace at once.
        Index("ix_audit_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime]
    # The API key's name (keys are named per workspace) and its prefix, or `cli` / `config-file`; and the
    # channel it acted through: api | console | cli | config-file.
    actor: Mapped[str] = mapped_column(String(100))
    actor_prefix: Mapped[str | None] = mapped_column(String(16))
    via: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(255))
    # What the operation did beyond its target (deliveries re-queued, a bulk retry's filters).
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The settings changed: {"field": {"before": …, "after": …}}, a secret as {"field": "changed"}.
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))


class SchemaWindow(Base):
    """Which code still runs against the schema a migration left (filerelay.db.schema_window): written by
    `filerelay migrate`, read by the /readyz of code older than the schema. Read by releases that do not
    know the migrations after theirs, so its shape never changes."""

    __tablename__ = "schema_window"

    revision: Mapped[str] = mapped_column(String(32), primary_key=True)
    oldest_code_revision: Mapped[str] = mapped_column(String(32))
