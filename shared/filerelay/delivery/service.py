"""Running one delivery: claim it with a lease, upload from staging (the lease kept by a heartbeat),
record the outcome.

Three short transactions around the upload, so no transaction is held open while bytes move:
claim (conditional UPDATE; a duplicate message finds nothing to claim), the upload itself, and
finish (attempt row, delivery verdict and document roll-up together). Every state change is
filerelay.delivery.transitions'; this module fetches rows, moves bytes and commits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, insert, select, true, update
from sqlalchemy.orm import Session

from filerelay import metrics
from filerelay.db import rows
from filerelay.db.models import (
    Delivery,
    DeliveryAttempt,
    Destination,
    Document,
    DocumentStatus,
    Repository,
    Workspace,
    resequenced,
)
from filerelay.db.session import session_scope
from filerelay.delivery import health, transitions
from filerelay.delivery.heartbeat import Heartbeat, guarded
from filerelay.delivery.landing import recorder
from filerelay.delivery.paths import path_for
from filerelay.delivery.rules import BreakerPolicy, policy_for
from filerelay.delivery.transitions import AttemptResult, Finished, Wake
from filerelay.destinations.base import Client, Clients, DestinationError, Payload, already_holds
from filerelay.egress import scrub
from filerelay.logs import log_context
from filerelay.runtime import Runtime
from filerelay.staging import StagingStore

log = logging.getLogger(__name__)

# The attempt's result, as `perform` reports it.
Result = AttemptResult
# The circuit breaker's settings when the caller passes none (the worker passes the configured ones).
DEFAULT_BREAKER = BreakerPolicy()


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    document_id: str
    destination_id: str  # the destination's public id, as configured and shown in the API
    attempt: int
    generation: int
    kind: str
    settings: Mapping[str, Any]
    secrets: Mapping[str, Any]
    staging_key: str | None
    size: int
    sha256: str
    content_type: str
    path: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    identity: Mapping[str, str] = field(default_factory=dict)
    # The previous attempt may have landed unseen: ask the destination before sending again.
    unsure: bool = False
    # What the last attempt recorded of its upload (filerelay.delivery.landing), for that question.
    landed: str | None = None
    # When the delivery was created: the start of its created → delivered latency.
    created_at: dt.datetime | None = None


_DELIVERIES = rows.table(Delivery)
_DOCUMENTS = rows.table(Document)
_ATTEMPTS = rows.table(DeliveryAttempt)
_ALL_DELIVERY = rows.keys(Delivery)
_ALL_DOCUMENT = rows.keys(Document)
# What a claim reads of the destination, and what a finish reads of the document, the destinations of its
# deliveries (the retry policy and the breaker's counters) and the workspace (the retry policy).
_CLAIMED_DESTINATION = ("id", "public_id", "kind", "settings", "secrets", "path_template")
_FINISHED_DOCUMENT = ("id", "generation", "status", "updated_at")
_FINISHED_DESTINATION = (
    "id",
    "public_id",
    "kind",
    "max_retries",
    "retry_ttl_seconds",
    "probe_delivery_id",
    "consecutive_failures",
)
_WORKSPACE_POLICY = ("max_retries", "retry_ttl_seconds", "backoff_base_seconds", "backoff_max_seconds")
# The columns each statement reads, labelled once here rather than on every claim and finish.
_TAKEN = rows.columns(Delivery, "", _ALL_DELIVERY)
_CLAIMED = (
    *rows.columns(Document, "doc_", _ALL_DOCUMENT),
    Repository.repo_id.label("repo_id"),
    Workspace.owner_slug.label("ws_owner"),
    Workspace.slug.label("ws_slug"),
    *rows.columns(Destination, "dest_", _CLAIMED_DESTINATION),
)
_FINISHING = (
    *rows.columns(Delivery, "dlv_", _ALL_DELIVERY),
    *rows.columns(Document, "doc_", _FINISHED_DOCUMENT),
    *rows.columns(Destination, "dest_", _FINISHED_DESTINATION),
    *rows.columns(Workspace, "ws_", _WORKSPACE_POLICY),
)
# The attempt log's row as a claim starts it, and what finishing the attempt sets on it.
_ATTEMPT_START = ("delivery_id", "number", "generation", "started_at", "outcome")
_ATTEMPT_RESULT = ("finished_at", "outcome", "error_class", "error_message", "bytes_sent")


def _due(now: dt.datetime) -> Any:
    """A delivery a worker may take now: waiting, due, and its destination attemptable (enabled, pushed,
    not paused, breaker closed or this delivery its probe). A switched-off destination keeps its
    deliveries waiting (until their TTL); a pull destination's are moved by its integration."""
    return and_(
        transitions.due(_DELIVERIES.c.status, _DELIVERIES.c.next_attempt_at, now),
        _DELIVERIES.c.destination_id.in_(
            select(Destination.id).where(health.attemptable(_DELIVERIES.c.id)).correlate_except(Destination)
        ),
    )


def _taken(
    session: Session, which: Any, now: dt.datetime, lease_seconds: int, *, locked: bool = False
) -> list[Delivery]:
    """The claim in one conditional UPDATE … RETURNING of the deliveries `which` selects (among those
    due, unless `which` locked them as due itself); the rows come back with it, in no session."""
    found = session.connection().execute(
        update(_DELIVERIES)
        .where(_DELIVERIES.c.id.in_(which), true() if locked else _due(now))
        .values(
            transitions.claim_changes(
                now=now,
                lease_seconds=lease_seconds,
                attempts=_DELIVERIES.c.attempts,
                cycle_attempts=_DELIVERIES.c.cycle_attempts,
            )
        )
        .returning(*_TAKEN)
    )
    taken = [rows.detached(Delivery, rows.values(row._mapping, "", _ALL_DELIVERY)) for row in found]
    return sorted(taken, key=lambda delivery: delivery.next_attempt_at or now)  # RETURNING keeps no order


def claim(session: Session, *, delivery_id: str, now: dt.datetime, lease_seconds: int) -> Claim | None:
    """Take the delivery if it is due and nobody holds it; None means there is nothing to do."""
    taken = _taken(session, [delivery_id], now, lease_seconds)
    return _claims_of(session, taken, now)[0] if taken else None


def claim_due(
    session: Session, *, kinds: Iterable[str], now: dt.datetime, lease_seconds: int, limit: int
) -> list[Claim]:
    """Take up to `limit` due deliveries of these destination kinds, the longest-due first, skipping any
    another worker is taking at the same moment (SKIP LOCKED; SQLite has one writer at a time)."""
    if session.get_bind().dialect.name == "postgresql":
        return _claims_of(session, _taken(session, _picked(kinds, now, limit), now, lease_seconds, locked=True), now)
    which = (
        select(_DELIVERIES.c.id)
        .join(Destination, Destination.id == _DELIVERIES.c.destination_id)
        .where(Destination.kind.in_(list(kinds)), _due(now))
        .order_by(_DELIVERIES.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=_DELIVERIES)
        # Evaluated once: as a plain subquery of the UPDATE, PostgreSQL may run it again for each row it
        # looks at and so take every due delivery, whatever the limit.
        .cte("picked")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return _claims_of(session, _taken(session, select(which.c.id), now, lease_seconds), now)


def _picked(kinds: Iterable[str], now: dt.datetime, limit: int) -> Any:
    """PostgreSQL's pick: for each destination of the kinds that takes attempts, its longest-due waiting
    deliveries walked in order on the (destination_id, next_attempt_at) index of waiting ones and locked
    as they are read, skipping those another worker holds; then the longest-due of all of them. It reads
    what it takes (at most `limit` a destination), however long the backlog. The locks are the check:
    a row changed meanwhile is read again and taken only if still due, so the UPDATE needs no second one.
    The rows a destination locked beyond the `limit` taken are free again when the claim commits."""
    waiting = (
        select(_DELIVERIES.c.id, _DELIVERIES.c.next_attempt_at)
        .where(
            _DELIVERIES.c.destination_id == Destination.id,
            transitions.due(_DELIVERIES.c.status, _DELIVERIES.c.next_attempt_at, now),
            health.breaker_lets(_DELIVERIES.c.id),
        )
        .order_by(_DELIVERIES.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .lateral("waiting")
    )
    picked = (
        select(waiting.c.id)
        .select_from(Destination)
        .join(waiting, true())
        .where(Destination.kind.in_(list(kinds)), health.takes_attempts())
        .order_by(waiting.c.next_attempt_at)
        .limit(limit)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    return select(picked.c.id)


def _claims_of(session: Session, taken: Sequence[Delivery], now: dt.datetime) -> list[Claim]:
    """What the workers need of the deliveries just taken, in one joined read; their attempt rows.

    A claim of a pending delivery cannot change its document's roll-up (pending and delivering count
    alike), so only a document that is retrying is rolled up again, under its lock."""
    if not taken:
        return []
    found = {
        row.dlv_id: row._mapping
        for row in session.connection().execute(
            select(_DELIVERIES.c.id.label("dlv_id"), *_CLAIMED)
            .join_from(_DELIVERIES, _DOCUMENTS, _DOCUMENTS.c.id == _DELIVERIES.c.document_id)
            .join(Repository, Repository.id == _DOCUMENTS.c.repository_id)
            .join(Workspace, Workspace.id == _DOCUMENTS.c.workspace_id)
            .join(Destination, Destination.id == _DELIVERIES.c.destination_id)
            .where(_DELIVERIES.c.id.in_([delivery.id for delivery in taken]))
        )
    }
    retrying = {row["doc_id"] for row in found.values() if row["doc_status"] == DocumentStatus.RETRYING}
    if retrying:
        transitions.settle(session, retrying, now=now, stamp_unchanged=False)
        session.flush()
    claims, attempts = [], []
    for delivery in taken:
        row = found[delivery.id]
        document = rows.detached(Document, rows.values(row, "doc_", _ALL_DOCUMENT))
        document.repository = Repository(repo_id=row["repo_id"])
        destination = rows.detached(Destination, rows.values(row, "dest_", _CLAIMED_DESTINATION))
        attempt = transitions.attempt_started(delivery, generation=document.generation, now=now)
        attempts.append({name: getattr(attempt, name) for name in _ATTEMPT_START})
        claims.append(_claim_of(delivery, document, destination, f"{row['ws_owner']}/{row['ws_slug']}"))
    session.connection().execute(insert(_ATTEMPTS), attempts)
    return claims


def _claim_of(delivery: Delivery, document: Document, destination: Destination, workspace: str) -> Claim:
    return Claim(
        delivery_id=delivery.id,
        document_id=document.id,
        destination_id=destination.public_id,
        attempt=delivery.attempts,
        generation=document.generation,
        kind=destination.kind,
        settings=dict(destination.settings),
        secrets=dict(destination.secrets),
        staging_key=document.staging_key,
        size=document.size_bytes,
        sha256=document.sha256,
        content_type=document.content_type,
        path=path_for(document, destination),
        metadata={k: str(v) for k, v in document.metadata_.items()},
        identity={
            "doc_id": document.doc_id,
            "repo_id": document.repository.repo_id,
            "comp_id": document.comp_id,
            "document_id": document.id,
            "workspace": workspace,
        },
        unsure=transitions.outcome_unknown(delivery),
        landed=delivery.landed_version,
        created_at=delivery.created_at,
    )


def perform(
    claim: Claim,
    staging: StagingStore,
    clients: Clients,
    *,
    lost: threading.Event | None = None,
    link: Callable[[], tuple[str, dt.datetime]] | None = None,
    landing: Callable[[str], None] | None = None,
) -> Result:
    """Upload the staged bytes; every failure becomes a Result, never an exception. `clients` reuses
    the destination's client across deliveries, built under the process's operator policy. Once `lost`
    is set (the heartbeat found the lease gone) the staged bytes stop being readable: the upload stops."""
    key = claim.staging_key
    if key is None or not staging.exists(key):
        return Result(False, "the staged bytes are gone", "StagingError", retryable=False)
    payload = _payload(claim, key, staging, lost, link, landing)
    try:
        client = clients.get(claim.kind, claim.settings, claim.secrets)
        if claim.unsure and _already_there(client, claim):
            return Result(True, found=True)  # nothing sent: the attempt records 0 bytes
        landed = client.deliver(payload)
    except DestinationError as exc:
        return Result(False, str(exc), type(exc).__name__, exc.retryable, exc.retry_after)
    except Exception as exc:  # a bug or an unexpected library error: counted and retried, not lost
        log.exception("delivery %s raised unexpectedly", claim.delivery_id)
        # Recorded and shown to the workspace: no URL's user:password@ (filerelay.egress.scrub).
        return Result(False, f"{type(exc).__name__}: {scrub(str(exc))}", type(exc).__name__)
    return Result(True, size=claim.size, path=landed)


def _payload(
    claim: Claim,
    key: str,
    staging: StagingStore,
    lost: threading.Event | None,
    link: Callable[[], tuple[str, dt.datetime]] | None,
    landing: Callable[[str], None] | None = None,
) -> Payload:
    return Payload(
        open=lambda: guarded(staging.open(key), lost),
        size=claim.size,
        sha256=claim.sha256,
        content_type=claim.content_type,
        path=claim.path,
        metadata=claim.metadata,
        identity=claim.identity,
        delivery_key=f"{claim.delivery_id}.{claim.generation}",
        link=link,
        landing=landing,
    )


def _already_there(client: Client, claim: Claim) -> bool:
    """After an attempt nobody saw end: does the destination hold exactly this content already? A
    second upload would be harmless to the bytes, but not to what reacts to it (S3 events, versions)."""
    try:
        found = already_holds(client, claim.path, sha256=claim.sha256, size=claim.size, landed=claim.landed)
    except DestinationError as exc:
        log.warning("cannot tell whether %s already holds %s: %s", claim.destination_id, claim.path, exc)
        return False
    if found:
        log.info("%s already holds the identical content at %s: not sent again", claim.destination_id, claim.path)
    return found


@dataclass(frozen=True)
class Finish:
    """What `finish` decided (None: the attempt was superseded), and the deliveries to wake now."""

    verdict: Finished | None
    wake: list[Wake]


def finish(
    session: Session,
    claim: Claim,
    result: Result,
    *,
    now: dt.datetime,
    rand: Callable[[], float],
    breaker: BreakerPolicy = DEFAULT_BREAKER,
) -> Finish:
    """Record one attempt's end: `finish_all` of one."""
    return finish_all(session, [(claim, result)], now=now, rand=rand, breaker=breaker)[0]


def finish_all(
    session: Session,
    ended: Sequence[tuple[Claim, Result]],
    *,
    now: dt.datetime,
    rand: Callable[[], float],
    breaker: BreakerPolicy = DEFAULT_BREAKER,
) -> list[Finish]:
    """Record the attempts that ended together, in one transaction: each attempt and verdict, the roll-up
    of their documents, the destinations' circuit breakers. The state machine decides each attempt on
    its own, as if it finished alone; the statements are shared: the documents' locks, one joined read,
    and one UPDATE per set of changed columns for the deliveries, the documents and the attempt rows."""
    documents, workspaces = _finishing(session, {claim.document_id for claim, _ in ended})
    decided = _decide_all(documents, workspaces, ended, now=now, rand=rand)
    connection = session.connection()
    _update_all(connection, _DELIVERIES, [(d.delivery.id, d.changed) for d in decided if d.changed])
    touched = sorted({d.delivery.document_id for d in decided if d.finish.verdict is not None})
    _update_all(
        connection, _DOCUMENTS, [change for doc_id in touched if (change := _rolled_up(documents[doc_id], now))]
    )
    # The breakers after the deliveries, one destination at a time in id order (so two workers never
    # wait on each other's destinations), each attempt counted as if it finished alone.
    for d in sorted(decided, key=lambda d: d.delivery.destination_id):
        if d.finish.verdict is not None:
            d.finish.wake.extend(
                health.counted(
                    session, d.delivery.destination, delivery_id=d.delivery.id, result=d.result, policy=breaker, now=now
                )
            )
    _update_attempts(connection, [((d.delivery.id, d.attempt), d.attempt_changes) for d in decided])
    return [d.finish for d in decided]


@dataclass
class _Decided:
    delivery: Delivery
    result: Result
    finish: Finish
    changed: dict[str, Any]  # the delivery's columns the verdict changed
    attempt: int
    attempt_changes: dict[str, Any]


def _decide_all(
    documents: Mapping[str, Document],
    workspaces: Mapping[str, Workspace],
    ended: Sequence[tuple[Claim, Result]],
    *,
    now: dt.datetime,
    rand: Callable[[], float],
) -> list[_Decided]:
    """The state machine's verdict on each attempt, in turn, on the rows read for all of them."""
    deliveries = {d.id: d for document in documents.values() for d in document.deliveries}
    decided = []
    for claim, result in ended:
        delivery, document = deliveries[claim.delivery_id], documents[claim.document_id]
        before = {key: getattr(delivery, key) for key in _ALL_DELIVERY}
        # The attempt row is never read: only its number, the claim's, is needed to decide.
        attempt = DeliveryAttempt(number=claim.attempt)
        verdict, wake = _decided(
            delivery, attempt, document, workspaces[document.id], claim, result, now=now, rand=rand
        )
        changes = {name: getattr(attempt, name) for name in _ATTEMPT_RESULT}
        decided.append(
            _Decided(delivery, result, Finish(verdict, wake), rows.changes(delivery, before), claim.attempt, changes)
        )
    return decided


def _update_all(connection: Connection, table: Table, changes: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """UPDATE rows by id, one executemany per set of changed columns."""
    for names, batch in _grouped(changes).items():
        connection.execute(
            update(table).where(table.c.id == bindparam("row_id")).values({n: bindparam("set_" + n) for n in names}),
            batch,
        )


def _update_attempts(connection: Connection, changes: Sequence[tuple[tuple[str, int], dict[str, Any]]]) -> None:
    for names, batch in _grouped(changes).items():
        connection.execute(
            update(_ATTEMPTS)
            .where(_ATTEMPTS.c.delivery_id == bindparam("row_id"), _ATTEMPTS.c.number == bindparam("row_number"))
            .values({n: bindparam("set_" + n) for n in names}),
            batch,
        )


def _grouped(changes: Sequence[tuple[Any, dict[str, Any]]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Rows' changes as executemany parameters, grouped by the columns they set."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for key, changed in changes:
        ids = {"row_id": key[0], "row_number": key[1]} if isinstance(key, tuple) else {"row_id": key}
        groups.setdefault(tuple(sorted(changed)), []).append({**ids, **{"set_" + n: v for n, v in changed.items()}})
    return groups


def _rolled_up(document: Document, now: dt.datetime) -> tuple[str, dict[str, Any]] | None:
    """The document's status from its deliveries: its changes, if it changed."""
    stamped = {"status": document.status, "updated_at": document.updated_at}
    transitions.rolled_up(document, now=now, stamp_unchanged=False)
    changed = resequenced(rows.changes(document, stamped))
    return (document.id, changed) if changed else None


def _finishing(session: Session, document_ids: set[str]) -> tuple[dict[str, Document], dict[str, Workspace]]:
    """The documents, each with all its deliveries (for the roll-up), their destinations and the
    workspace, row-locked and fresh, as instances in no session. A destination is one instance for all
    its deliveries, so the breaker counts a batch's attempts in turn.

    The locks come first (in id order, so two workers never deadlock), in a statement of their own: a
    statement that waits for a lock reads the other tables as they were when it started, so a sibling
    delivery finished meanwhile would look unfinished and the roll-up would be stale (PostgreSQL, READ
    COMMITTED). The read after it sees everything committed before the locks were granted."""
    connection = session.connection()
    wanted = sorted(document_ids)
    connection.execute(
        select(_DOCUMENTS.c.id).where(_DOCUMENTS.c.id.in_(wanted)).order_by(_DOCUMENTS.c.id).with_for_update()
    ).all()
    found = connection.execute(
        select(*_FINISHING)
        .join_from(_DELIVERIES, _DOCUMENTS, _DOCUMENTS.c.id == _DELIVERIES.c.document_id)
        .join(Destination, Destination.id == _DELIVERIES.c.destination_id)
        .join(Workspace, Workspace.id == _DOCUMENTS.c.workspace_id)
        .where(_DELIVERIES.c.document_id.in_(wanted))
    ).all()
    return _assembled([r._mapping for r in found])


def _assembled(found: Sequence[Mapping[Any, Any]]) -> tuple[dict[str, Document], dict[str, Workspace]]:
    documents: dict[str, Document] = {}
    workspaces: dict[str, Workspace] = {}
    destinations: dict[int, Destination] = {}
    for row in found:
        doc_id = row["doc_id"]
        if doc_id not in documents:
            documents[doc_id] = rows.detached(Document, rows.values(row, "doc_", _FINISHED_DOCUMENT))
            documents[doc_id].deliveries = []
            workspaces[doc_id] = rows.detached(Workspace, rows.values(row, "ws_", _WORKSPACE_POLICY))
        delivery = rows.detached(Delivery, rows.values(row, "dlv_", _ALL_DELIVERY))
        if row["dest_id"] not in destinations:
            destinations[row["dest_id"]] = rows.detached(Destination, rows.values(row, "dest_", _FINISHED_DESTINATION))
        delivery.destination = destinations[row["dest_id"]]
        documents[doc_id].deliveries.append(delivery)
    return documents, workspaces


def _decided(
    delivery: Delivery,
    attempt: DeliveryAttempt,
    document: Document,
    workspace: Workspace,
    claim: Claim,
    result: Result,
    *,
    now: dt.datetime,
    rand: Callable[[], float],
) -> tuple[Finished | None, list[Wake]]:
    """The state machine's verdict on the attempt; None when it was superseded."""
    try:
        return transitions.finished(
            delivery,
            attempt,
            result,
            content=transitions.Delivered(claim.generation, result.path or claim.path, claim.sha256),
            current_generation=document.generation,
            kind=claim.kind,
            policy=policy_for(workspace, delivery.destination),
            now=now,
            rand=rand,
        )
    except transitions.Superseded:
        return None, []


def run(runtime: Runtime, delivery_id: str, *, rand: Callable[[], float] = random.random) -> bool:
    """Claim, perform and finish one delivery. False when there was nothing to claim."""
    with log_context(delivery_id=delivery_id):  # every line about this delivery carries its ids
        with session_scope(runtime.sessions) as session:
            taken = claim(
                session, delivery_id=delivery_id, now=runtime.clock.now(), lease_seconds=runtime.settings.lease_seconds
            )
        if taken is None:
            log.info("delivery %s: nothing to claim (done, held elsewhere, or not due)", delivery_id)
            return False
        with log_context(document_id=taken.document_id, attempt=taken.attempt):
            _attempt(runtime, taken, rand)
    return True


def _link(runtime: Runtime, taken: Claim) -> Callable[[], tuple[str, dt.datetime]]:
    """A signed download link to the claimed document, made (and its clock read) only if the kind asks."""

    def make() -> tuple[str, dt.datetime]:
        return runtime.links.make(
            workspace=taken.identity["workspace"], document_id=taken.document_id, now=runtime.clock.now()
        )

    return make


def attempted(runtime: Runtime, taken: Claim, heartbeat: Heartbeat | None = None) -> Result:
    """The upload of a claimed delivery, its lease kept by a heartbeat while it runs: `heartbeat`, one the
    caller started at the claim (a delivery claimed ahead and waiting for a thread keeps its lease too),
    or one of its own."""
    started = time.perf_counter()  # a duration: the monotonic clock, not the (injectable) wall clock
    with (
        log_context(delivery_id=taken.delivery_id, document_id=taken.document_id, attempt=taken.attempt),
        contextlib.nullcontext(heartbeat)
        if heartbeat
        else Heartbeat(runtime, delivery_id=taken.delivery_id, attempt=taken.attempt) as beat,
    ):
        result = perform(
            taken,
            runtime.staging,
            runtime.clients,
            lost=beat.lost,
            link=_link(runtime, taken),
            landing=recorder(runtime.sessions, taken.delivery_id),
        )
    metrics.ATTEMPT_SECONDS.labels(kind=taken.kind).observe(time.perf_counter() - started)
    return result


def finished_all(
    runtime: Runtime, ended: Sequence[tuple[Claim, Result]], rand: Callable[[], float] = random.random
) -> None:
    """Record attempts that ended together; once committed, count them and send the wake-ups they made."""
    finished_and_claimed(runtime, ended, kinds=(), limit=0, rand=rand)


def finished_and_claimed(
    runtime: Runtime,
    ended: Sequence[tuple[Claim, Result]],
    *,
    kinds: Iterable[str],
    limit: int,
    rand: Callable[[], float] = random.random,
) -> list[Claim]:
    """Record attempts that ended together and claim up to `limit` due deliveries of `kinds`, in one
    transaction (a drain's one commit for both); once committed, count the ended ones and send the
    wake-ups they made. Either both are recorded or neither is."""
    now = runtime.clock.now()
    with session_scope(runtime.sessions) as session:
        done = finish_all(session, ended, now=now, rand=rand, breaker=runtime.settings.breaker) if ended else []
        claims = (
            claim_due(session, kinds=kinds, now=now, lease_seconds=runtime.settings.lease_seconds, limit=limit)
            if limit > 0
            else []
        )
    _recorded(runtime, ended, done, now)
    return claims


def _recorded(
    runtime: Runtime, ended: Sequence[tuple[Claim, Result]], done: Sequence[Finish], now: dt.datetime
) -> None:
    wake: list[Wake] = []
    for (taken, result), finished in zip(ended, done, strict=True):
        # Counted once committed: a rolled-back verdict will be decided (and counted) again.
        if finished.verdict is not None:
            outcome = "retry" if finished.verdict == Finished.RESTARTED else finished.verdict.value
            waited = None if taken.created_at is None else (now - taken.created_at).total_seconds()
            metrics.count_delivery(taken.destination_id, taken.kind, outcome, taken.size, waited)
        wake += finished.wake
        with log_context(delivery_id=taken.delivery_id, document_id=taken.document_id, attempt=taken.attempt):
            log.info(
                "delivery %s attempt %d: %s%s",
                taken.delivery_id,
                taken.attempt,
                finished.verdict or "superseded (the lease ran out meanwhile)",
                "" if result.ok else f" ({result.error})",
            )
    runtime.enqueuer.enqueue(wake)


def _attempt(runtime: Runtime, taken: Claim, rand: Callable[[], float]) -> None:
    finished_all(runtime, [(taken, attempted(runtime, taken))], rand)
