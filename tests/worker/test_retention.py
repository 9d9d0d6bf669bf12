"""The data lifecycle (docs/operations.md#data-lifecycle): the sweeper releases a failed document's staged
bytes after FILERELAY_FAILED_RETENTION_DAYS with the reason on the row, removes the rows of documents
finished longer ago than FILERELAY_RECORD_RETENTION_DAYS (keeping the Files feed's promises), and audit
entries older than FILERELAY_AUDIT_RETENTION_DAYS; in small batches, through indexes, skipping rows held.

Z1 is wired to dest_folder and dest_s3prod (which always fails); Z2 to nothing. TTL 1h.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from filerelay import files
from filerelay.audit import CLI_ACTOR
from filerelay.catalog import DocumentFilter, count_failed
from filerelay.clock import FrozenClock
from filerelay.db.models import (
    ArchiveDocument,
    AuditEvent,
    Delivery,
    DeliveryAttempt,
    Destination,
    Document,
    Workspace,
)
from filerelay.db.session import session_scope
from filerelay.delivery import retention, service, sweep
from filerelay.delivery.retry import StagedBytesReleased
from filerelay.documents import NewComponent
from filerelay.operations import Context, relay, transaction
from filerelay.runtime import Runtime
from tests.support.documents import accept, accept_components, document, stage
from tests.support.sql_capture import executed, sqlite_plan

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
DAY = dt.timedelta(days=1)


def half() -> float:
    return 0.5


def keep(runtime: Runtime, **days: int | None) -> None:
    """Retention settings for this test: failed_retention_days, record_retention_days, audit_retention_days."""
    runtime.settings = dataclasses.replace(runtime.settings, **days)  # type: ignore[arg-type]


def set_destination(runtime: Runtime, public_id: str, **values: Any) -> None:
    with session_scope(runtime.sessions) as session:
        session.execute(update(Destination).where(Destination.public_id == public_id).values(**values))


def pause_folder(runtime: Runtime) -> None:
    """An admin paused the folder: its deliveries wait, their TTL clock stopped."""
    now = runtime.clock.now()
    set_destination(runtime, "dest_folder", paused_at=now, held_since=now)


def deliveries_of(runtime: Runtime, document_id: str) -> dict[str, str]:
    """Delivery id → kind."""
    with session_scope(runtime.sessions) as session:
        rows = session.execute(
            select(Delivery.id, Destination.kind)
            .join(Destination, Destination.id == Delivery.destination_id)
            .where(Delivery.document_id == document_id)
        ).all()
    return {row.id: row.kind for row in rows}


def create(runtime: Runtime, doc_id: str, *, repo_id: str = "Z1", run: tuple[str, ...] = ("folder", "s3")) -> str:
    """A document, with the deliveries of the kinds in `run` attempted once; its id."""
    outcome, _ = accept(runtime, doc_id, PDF, repo_id=repo_id)
    document_id = outcome.documents[0].id
    for delivery_id, kind in deliveries_of(runtime, document_id).items():
        if kind in run:
            assert service.run(runtime, delivery_id, rand=half)
    return document_id


def failed_document(runtime: Runtime, doc_id: str = "FAILED") -> str:
    """Delivered to the folder, failed for good on S3 (max_retries 0: one attempt)."""
    set_destination(runtime, "dest_s3prod", max_retries=0)
    document_id = create(runtime, doc_id)
    assert document(runtime, document_id).status == "failed"
    return document_id


def retry(runtime: Runtime, document_id: str) -> int:
    context = Context(sessions=runtime.sessions, actor=CLI_ACTOR, clock=runtime.clock, enqueuer=runtime.enqueuer)
    with transaction(context) as tx:
        return relay.retry(tx, workspace_id=workspace_id(runtime), document_id=document_id)


def staging_expiry(runtime: Runtime, document_id: str) -> dt.datetime | None:
    with session_scope(runtime.sessions) as session:
        return retention.staging_expires_at(session.get_one(Document, document_id), runtime.settings.retention)


def record_expiry(runtime: Runtime, document_id: str) -> dt.datetime | None:
    with session_scope(runtime.sessions) as session:
        return retention.record_expires_at(session.get_one(Document, document_id), runtime.settings.retention)


def workspace_id(runtime: Runtime) -> int:
    with session_scope(runtime.sessions) as session:
        return session.scalars(select(Workspace.id).where(Workspace.slug == "production")).one()


def count(runtime: Runtime, model: Any) -> int:
    with session_scope(runtime.sessions) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def remaining(runtime: Runtime) -> set[str]:
    """The doc_id/comp_id of every document row left."""
    with session_scope(runtime.sessions) as session:
        return {f"{r.doc_id}/{r.comp_id}" for r in session.execute(select(Document.doc_id, Document.comp_id))}


def headers(runtime: Runtime) -> set[str]:
    with session_scope(runtime.sessions) as session:
        return set(session.scalars(select(ArchiveDocument.doc_id)))


# --- a failed document's staged bytes ---------------------------------------------------------------


def test_failed_bytes_are_kept_for_the_retention_then_released_with_the_reason(
    configured: Runtime, clock: FrozenClock
) -> None:
    assert configured.settings.failed_retention_days == 30  # the default
    document_id = failed_document(configured)
    failed_at = clock.now()
    row = document(configured, document_id)
    key = row.staging_key
    assert key is not None
    assert staging_expiry(configured, document_id) == failed_at + 30 * DAY

    clock.advance((30 * DAY - dt.timedelta(seconds=1)).total_seconds())
    assert sweep.sweep(configured).released == 0
    assert configured.staging.exists(key)

    clock.advance(1)
    report = sweep.sweep(configured)

    assert report.released == 1
    assert report.busy
    assert not configured.staging.exists(key)  # deleted after the commit
    row = document(configured, document_id)
    assert row.staging_key is None
    assert row.staging_released_at == clock.now()
    assert row.staging_released_reason is not None
    assert "FILERELAY_FAILED_RETENTION_DAYS" in row.staging_released_reason
    assert row.status == "failed"
    assert row.updated_at == failed_at  # not a change the Files feed reports
    assert staging_expiry(configured, document_id) is None
    assert sweep.sweep(configured).released == 0


def test_a_retry_of_a_document_whose_bytes_were_released_fails_clearly(configured: Runtime, clock: FrozenClock) -> None:
    document_id = failed_document(configured)
    clock.advance((30 * DAY).total_seconds())
    assert sweep.sweep(configured).released == 1

    workspace = workspace_id(configured)
    with pytest.raises(StagedBytesReleased, match=r"staged bytes were released .*FILERELAY_FAILED_RETENTION_DAYS"):
        retry(configured, document_id)
    with session_scope(configured.sessions) as session:
        statuses = set(session.scalars(select(Delivery.status).where(Delivery.document_id == document_id)))
        assert statuses == {"delivered", "failed"}  # nothing moved
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "document.retry")).all() == []
        # A bulk retry neither counts it nor takes it.
        assert count_failed(session, workspace_id=workspace, filters=DocumentFilter()) == (0, 0)


def test_a_retry_before_the_release_still_works(configured: Runtime, clock: FrozenClock) -> None:
    document_id = failed_document(configured)
    clock.advance((29 * DAY).total_seconds())
    assert retry(configured, document_id) == 1
    assert document(configured, document_id).status == "retrying"


def test_failed_bytes_stay_while_another_delivery_of_the_document_waits(
    configured: Runtime, clock: FrozenClock
) -> None:
    """A document is `failed` as soon as one delivery failed; the paused folder's delivery still needs them."""
    set_destination(configured, "dest_s3prod", max_retries=0)
    pause_folder(configured)
    document_id = create(configured, "WAITING", run=("s3",))
    row = document(configured, document_id)
    assert row.status == "failed"
    assert staging_expiry(configured, document_id) is None

    clock.advance((365 * DAY).total_seconds())
    assert sweep.sweep(configured).released == 0
    assert row.staging_key is not None
    assert configured.staging.exists(row.staging_key)


def test_failed_bytes_are_kept_for_ever_when_the_retention_is_off(configured: Runtime, clock: FrozenClock) -> None:
    keep(configured, failed_retention_days=None)
    document_id = failed_document(configured)
    assert staging_expiry(configured, document_id) is None
    clock.advance((3650 * DAY).total_seconds())
    assert sweep.sweep(configured).released == 0
    assert document(configured, document_id).staging_key is not None


# --- the rows of finished documents -----------------------------------------------------------------


def two_components(runtime: Runtime, doc_id: str) -> dict[str, str]:
    """A document of two components (`a`, `b`) wired to the folder only; comp_id → document id."""
    components = [
        NewComponent(comp, "application/pdf", None, None, stage(runtime, PDF + comp.encode())) for comp in ("a", "b")
    ]
    outcome = accept_components(runtime, doc_id, components)
    return {d.comp_id: d.id for d in outcome.documents}


def run_all(runtime: Runtime, document_id: str) -> None:
    for delivery_id, kind in deliveries_of(runtime, document_id).items():
        assert service.run(runtime, delivery_id, rand=half), kind


def test_rows_of_documents_finished_longer_ago_than_the_retention_are_removed(
    configured: Runtime, clock: FrozenClock
) -> None:
    keep(configured, record_retention_days=10)
    start = clock.now()
    failed = failed_document(configured, "FAILED")  # its bytes still kept (30 days): removed with the row
    failed_key = document(configured, failed).staging_key
    assert failed_key is not None
    set_destination(configured, "dest_s3prod", enabled=False)  # what follows goes to the folder only
    delivered = create(configured, "DELIVERED")
    create(configured, "DISCARDED", repo_id="Z2")
    parts = two_components(configured, "MULTI")
    run_all(configured, parts["a"])  # `b` is delivered five days later
    with session_scope(configured.sessions) as session:  # an audit entry, which outlives the rows
        session.add(
            AuditEvent(
                workspace_id=workspace_id(configured),
                at=start,
                actor="ops",
                via="api",
                action="document.retry",
                target=failed,
            )
        )
    entries = count(configured, AuditEvent)
    assert record_expiry(configured, delivered) == (start + 10 * DAY)
    clock.advance((5 * DAY).total_seconds())
    run_all(configured, parts["b"])
    pause_folder(configured)
    waiting = create(configured, "WAITING", run=())  # waits for ever on the paused folder
    assert record_expiry(configured, waiting) is None
    assert sweep.sweep(configured).removed == 0  # numbers every change for the Files feed

    clock.advance((5 * DAY - dt.timedelta(seconds=1)).total_seconds())
    assert sweep.sweep(configured).removed == 0
    clock.advance(1)
    report = sweep.sweep(configured)

    assert report.removed == 4
    assert remaining(configured) == {"MULTI/b", "WAITING/data"}
    assert headers(configured) == {"MULTI", "WAITING"}  # MULTI still has a component
    with session_scope(configured.sessions) as session:
        left = set(session.scalars(select(Delivery.document_id)))
        assert left == {parts["b"], waiting}
        attempted = set(session.scalars(select(Delivery.document_id).join(DeliveryAttempt)))
        assert attempted == {parts["b"]}
    assert not configured.staging.exists(failed_key)
    assert count(configured, AuditEvent) == entries  # the audit log has its own retention

    clock.advance((5 * DAY).total_seconds())
    assert sweep.sweep(configured).removed == 1
    assert remaining(configured) == {"WAITING/data"}
    assert headers(configured) == {"WAITING"}


def test_no_row_is_removed_while_the_record_retention_is_off(configured: Runtime, clock: FrozenClock) -> None:
    assert configured.settings.record_retention_days is None  # the default
    set_destination(configured, "dest_s3prod", enabled=False)
    document_id = create(configured, "DELIVERED")
    assert record_expiry(configured, document_id) is None
    clock.advance((3650 * DAY).total_seconds())
    assert sweep.sweep(configured).removed == 0
    assert remaining(configured) == {"DELIVERED/data"}


def test_a_pass_removes_in_batches_each_its_own_transaction(configured: Runtime, clock: FrozenClock) -> None:
    keep(configured, record_retention_days=1)
    set_destination(configured, "dest_s3prod", enabled=False)
    for n in range(5):
        create(configured, f"DOC{n}")
    sweep.sweep(configured)
    clock.advance((2 * DAY).total_seconds())
    with session_scope(configured.sessions) as session:
        removed = retention.remove_finished(session, now=clock.now(), retention=DAY, limit=2)
    assert removed.documents == 2
    assert count(configured, Document) == 3
    assert sweep.sweep(configured, batch=2).removed == 3  # batches of 2 while they come back full
    assert count(configured, Document) == 0


# --- the Files feed ---------------------------------------------------------------------------------


def feed(runtime: Runtime, after: files.Cursor | None, limit: int = 100) -> tuple[list[str], files.Cursor | None]:
    workspace = workspace_id(runtime)
    with session_scope(runtime.sessions) as session:
        # The feed lists files with a delivery to the destinations it is given (a pull integration's); these
        # documents go to the folder, which stands in for it here: the cursors are what is tested.
        folder = session.scalars(select(Destination.id).where(Destination.public_id == "dest_folder")).one()
        page, cursor = files.changes(
            session,
            workspace_id=workspace,
            destinations=[folder],
            updated_after=None,
            after=after,
            limit=limit,
        )
    return [f.filename.split("_")[0] for f in page], cursor


def test_removing_rows_keeps_the_files_feeds_cursors_and_order(configured: Runtime, clock: FrozenClock) -> None:
    """A poller that polls within the retention has seen each document's final state before its row goes;
    its cursor keeps paging past removed rows, and what changes later comes after it."""
    keep(configured, record_retention_days=10)
    set_destination(configured, "dest_s3prod", enabled=False)
    for doc_id in ("A", "B", "C"):
        create(configured, doc_id)
        clock.advance(DAY.total_seconds())
    first, mid = feed(configured, None, limit=1)  # a poller stopped after one page
    assert first == ["A"]
    everything, end = feed(configured, None)  # one that read everything
    assert everything == ["A", "B", "C"]

    clock.advance((8 * DAY).total_seconds())  # A and B finished 10 days ago or more, C 9 days ago
    assert sweep.sweep(configured).removed == 2

    assert feed(configured, end) == ([], end)  # nothing new, and no error
    assert feed(configured, mid)[0] == ["C"]  # B's final state was in the feed for 10 days
    create(configured, "D")
    assert feed(configured, end)[0] == ["D"]
    assert feed(configured, None)[0] == ["C", "D"]


def test_a_change_not_yet_numbered_for_the_feed_is_not_removed(configured: Runtime, clock: FrozenClock) -> None:
    set_destination(configured, "dest_s3prod", enabled=False)
    document_id = create(configured, "UNSEEN")
    assert document(configured, document_id).change_seq is None
    clock.advance((30 * DAY).total_seconds())
    with session_scope(configured.sessions) as session:
        assert retention.remove_finished(session, now=clock.now(), retention=DAY, limit=10).documents == 0
    with session_scope(configured.sessions) as session:
        files.sequence_changes(session)
    with session_scope(configured.sessions) as session:
        assert retention.remove_finished(session, now=clock.now(), retention=DAY, limit=10).documents == 1


# --- the audit log ----------------------------------------------------------------------------------


def add_audit(runtime: Runtime, at: dt.datetime, n: int) -> None:
    with session_scope(runtime.sessions) as session:
        ws = session.scalars(select(Workspace.id)).first()
        assert ws is not None
        for i in range(n):
            session.add(
                AuditEvent(workspace_id=ws, at=at, actor="ops", via="api", action="document.retry", target=f"doc_{i}")
            )


def test_audit_entries_are_removed_after_their_own_retention_in_batches(
    configured: Runtime, clock: FrozenClock
) -> None:
    start = clock.now()
    configured_entries = count(configured, AuditEvent)  # `config apply` recorded its changes at the start
    add_audit(configured, start, 5)
    add_audit(configured, start + 20 * DAY, 2)
    clock.advance((40 * DAY).total_seconds())
    assert sweep.sweep(configured).audit_removed == 0  # off by default: kept for ever
    assert count(configured, AuditEvent) == configured_entries + 7

    keep(configured, audit_retention_days=30)
    with session_scope(configured.sessions) as session:
        assert retention.purge_audit(session, now=clock.now(), retention=30 * DAY, limit=2) == 2
    report = sweep.sweep(configured, batch=2)

    assert report.audit_removed == configured_entries + 5 - 2  # batches of 2 while they come back full
    with session_scope(configured.sessions) as session:
        assert set(session.scalars(select(AuditEvent.at))) == {start + 20 * DAY}
    assert sweep.sweep(configured).audit_removed == 0


# --- through indexes (SQLite's plans), skipping rows another transaction holds (PostgreSQL) -----------


def _release(session: Session, now: dt.datetime) -> object:
    return retention.release_failed_staging(session, now=now, retention=DAY, limit=10)


def _remove(session: Session, now: dt.datetime) -> object:
    return retention.remove_finished(session, now=now, retention=DAY, limit=10)


def _audit(session: Session, now: dt.datetime) -> object:
    return retention.purge_audit(session, now=now, retention=DAY, limit=10)


@pytest.mark.parametrize(
    ("call", "table", "index"),
    [
        (_release, "documents", "ix_documents_s"),  # by status and updated_at: either index does
        (_remove, "documents", "ix_documents_status_updated "),
        (_audit, "audit_events", "ix_audit_events_at "),
    ],
    ids=["release_failed_staging", "remove_finished", "purge_audit"],
)
def test_retention_queries_walk_an_index_on_sqlite(
    configured: Runtime, call: Callable[[Session, dt.datetime], object], table: str, index: str
) -> None:
    if configured.engine.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    with executed(configured.engine) as captured, session_scope(configured.sessions) as session:
        call(session, configured.clock.now())
    statement, parameters = next(
        (s, p) for s, p in captured if s.lstrip().startswith("SELECT") and f"FROM {table}" in s
    )
    plan = " | ".join(sqlite_plan(configured.engine, statement, parameters))
    assert f"INDEX {index}" in plan, plan


def test_a_second_sweeper_skips_a_document_another_transaction_holds(configured: Runtime, clock: FrozenClock) -> None:
    if configured.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no row locks: one writer at a time")
    keep(configured, record_retention_days=1)
    set_destination(configured, "dest_s3prod", enabled=False)
    held = create(configured, "HELD")
    busy = create(configured, "BUSY")
    free = create(configured, "FREE")
    sweep.sweep(configured)
    clock.advance((2 * DAY).total_seconds())
    (busy_delivery,) = deliveries_of(configured, busy)
    with configured.engine.connect() as other:
        # Another transaction holds HELD's row (an update from SAP), and one of BUSY's deliveries.
        other.execute(select(Document.id).where(Document.id == held).with_for_update())
        other.execute(select(Delivery.id).where(Delivery.id == busy_delivery).with_for_update())
        with session_scope(configured.sessions) as session:
            session.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting would be an error, not a hang
            removed = retention.remove_finished(session, now=clock.now(), retention=DAY, limit=10)
        other.rollback()
    assert removed.documents == 1
    assert remaining(configured) == {"HELD/data", "BUSY/data"}
    assert free not in {held, busy}
    assert sweep.sweep(configured).removed == 2  # once let go, they are the next pass's
