"""Workers drain in batches: one claim takes the due deliveries of a kind that fit the free threads, one
finish records the attempts that ended together, each decided as if it ended alone.

Z1 is wired to dest_folder and dest_s3prod (which always fails: no such bucket); TTL 1h, backoff 1s..10s.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from filerelay.clock import FrozenClock
from filerelay.db.models import Delivery, Destination
from filerelay.db.session import session_scope
from filerelay.delivery import service
from filerelay.delivery.drain import MAX_BATCH, RECORD_SECONDS, Drainer, claim_batch, record_wait
from filerelay.delivery.heartbeat import Heartbeat
from filerelay.delivery.rules import BreakerPolicy
from filerelay.delivery.service import Claim, Result
from filerelay.delivery.transitions import Finished
from filerelay.runtime import Runtime
from tests.support.clock import half
from tests.support.documents import accept, attempts, delivery, document, replace_content


def create(runtime: Runtime, count: int, prefix: str = "DOC") -> list[str]:
    """Documents wired to both destinations; their folder deliveries' ids."""
    ids = []
    for n in range(count):
        outcome, _ = accept(runtime, f"{prefix}{n}", b"%PDF-1.4 " + f"{prefix}{n}".encode())
        ids.append(next(d for d, kind in outcome.enqueue if kind == "folder"))
    return ids


def drain_folder(runtime: Runtime, *, concurrency: int, **replaced: object) -> int:
    """One drain of the folder kind by a new Drainer, with the service functions named in `replaced`
    wrapped for the test; the attempts it made."""
    with pytest.MonkeyPatch.context() as patch:
        for name, wrapper in replaced.items():
            patch.setattr(service, name, wrapper)
        drainer = Drainer(runtime, concurrency=concurrency, rand=half)
        try:
            return drainer.drain(["folder"])
        finally:
            drainer.close()


def set_destination(runtime: Runtime, public_id: str, **values: object) -> None:
    with session_scope(runtime.sessions) as session:
        session.execute(update(Destination).where(Destination.public_id == public_id).values(**values))


def claim_due(runtime: Runtime, kinds: list[str], limit: int) -> list[Claim]:
    with session_scope(runtime.sessions) as session:
        return service.claim_due(
            session, kinds=kinds, now=runtime.clock.now(), lease_seconds=runtime.settings.lease_seconds, limit=limit
        )


def test_a_claim_takes_the_longest_due_of_its_kinds_up_to_the_limit(configured: Runtime, clock: FrozenClock) -> None:
    first = create(configured, 1, "FIRST")
    clock.advance(1)
    later = create(configured, 3, "LATER")

    taken = claim_due(configured, ["folder"], limit=2)

    # The longest due first; the three that fell due together in any order.
    assert taken[0].delivery_id == first[0]
    assert taken[1].delivery_id in later
    assert {c.kind for c in taken} == {"folder"}
    assert all(delivery(configured, c.delivery_id).status == "delivering" for c in taken)
    assert [a.outcome for a in attempts(configured, first[0])] == ["running"]
    # The rest of the kind in the next claim; nothing twice.
    rest = [c.delivery_id for c in claim_due(configured, ["folder"], limit=10)]
    assert sorted(rest) == sorted(set(later) - {taken[1].delivery_id})
    assert claim_due(configured, ["folder"], limit=10) == []


def test_a_claim_takes_nothing_of_a_paused_or_switched_off_destination(configured: Runtime, clock: FrozenClock) -> None:
    create(configured, 2)
    set_destination(configured, "dest_folder", paused_at=clock.now())
    assert claim_due(configured, ["folder"], limit=10) == []
    set_destination(configured, "dest_folder", paused_at=None, enabled=False)
    assert claim_due(configured, ["folder"], limit=10) == []
    set_destination(configured, "dest_folder", enabled=True)
    assert len(claim_due(configured, ["folder"], limit=10)) == 2


def test_one_grouped_finish_records_each_attempt_as_if_it_ended_alone(configured: Runtime, clock: FrozenClock) -> None:
    """Delivered, retried, failed for good, at a destination paused meanwhile, and the failures that open
    the breaker: one finish_all, each delivery, attempt, document and the breaker as the state machine says."""
    ok, retry, refused, opens = create(configured, 4)
    s3 = claim_due(configured, ["s3"], limit=1)  # DOC0's s3 delivery
    folder = {c.delivery_id: c for c in claim_due(configured, ["folder"], limit=4)}
    set_destination(configured, "dest_s3prod", paused_at=clock.now())  # paused while its attempt ran
    clock.advance(2)
    ended = [
        (folder[ok], Result(True, size=folder[ok].size)),
        (folder[retry], Result(False, "HTTP 503", "Unavailable")),
        (folder[refused], Result(False, "name refused", "Refused", retryable=False)),
        (folder[opens], Result(False, "HTTP 503", "Unavailable")),
        (s3[0], Result(False, "HTTP 503", "Unavailable")),
    ]

    with session_scope(configured.sessions) as session:
        done = service.finish_all(session, ended, now=clock.now(), rand=half, breaker=BreakerPolicy(failures=2))

    assert [d.verdict for d in done] == [
        Finished.DELIVERED,
        Finished.RETRY,
        Finished.FAILED,
        Finished.RETRY,
        Finished.RETRY,
    ]
    statuses = {d: delivery(configured, d).status for d in (ok, retry, refused, opens)}
    assert statuses == {ok: "delivered", retry: "retrying", refused: "failed", opens: "retrying"}
    assert delivery(configured, retry).next_attempt_at == clock.now() + dt.timedelta(seconds=0.75)
    assert delivery(configured, s3[0].delivery_id).status == "retrying"
    assert [a.outcome for a in attempts(configured, ok)] == ["delivered"]
    assert [(a.outcome, a.error_message) for a in attempts(configured, refused)] == [("failed", "name refused")]
    # Each document rolled up from all its deliveries: DOC0's s3 delivery retries.
    assert document(configured, s3[0].document_id).status == "retrying"
    assert document(configured, folder[refused].document_id).status == "failed"
    with session_scope(configured.sessions) as session:
        destination = session.query(Destination).filter_by(public_id="dest_folder").one()
        # The retryable failures counted in turn: the second of the batch opened the breaker.
        assert destination.consecutive_failures == 2
        assert destination.breaker_opened_at == clock.now()


def test_a_batch_attempt_superseded_by_new_content_is_restarted_and_the_rest_recorded(
    configured: Runtime, clock: FrozenClock
) -> None:
    first, second = create(configured, 2)
    taken = {c.delivery_id: c for c in claim_due(configured, ["folder"], limit=2)}
    replace_content(configured, doc_id="DOC0", data=b"%PDF-1.4 replaced")  # while it uploaded
    with session_scope(configured.sessions) as session:
        done = service.finish_all(
            session,
            [(taken[first], Result(True, size=1)), (taken[second], Result(True, size=1))],
            now=clock.now(),
            rand=half,
        )
    assert [d.verdict for d in done] == [Finished.RESTARTED, Finished.DELIVERED]
    assert (delivery(configured, first).status, delivery(configured, second).status) == ("pending", "delivered")


def test_a_drain_delivers_every_due_delivery_of_its_kind_once(configured: Runtime, tmp_path: Path) -> None:
    ids = create(configured, 25)
    made = drain_folder(configured, concurrency=4)

    assert made == 25
    assert {delivery(configured, d).status for d in ids} == {"delivered"}
    assert all(len(attempts(configured, d)) == 1 for d in ids)
    assert len(list((tmp_path / "out").rglob("*.pdf"))) == 25
    assert delivery(configured, ids[0]).path is not None


def test_a_slow_upload_does_not_hold_the_others_batch(configured: Runtime) -> None:
    """The first claimed upload blocks until the others are recorded: a drain that waited for its whole
    batch would never record them (and this test would hang until the timeout)."""
    ids = create(configured, 6)
    others_recorded = threading.Event()
    real = service.attempted

    def attempted(runtime: Runtime, taken: Claim, heartbeat: Heartbeat | None = None) -> Result:
        if taken.delivery_id == ids[0]:
            assert others_recorded.wait(30), "the others were not recorded while the slow one ran"
        return real(runtime, taken, heartbeat)

    def finished_and_claimed(
        runtime: Runtime, ended: list[tuple[Claim, Result]], *, kinds: list[str], limit: int, rand: object = half
    ) -> list[Claim]:
        claims = service_finished_and_claimed(runtime, ended, kinds=kinds, limit=limit, rand=half)
        if all(delivery(configured, d).status == "delivered" for d in ids[1:]):
            others_recorded.set()
        return claims

    service_finished_and_claimed = service.finished_and_claimed
    drain_folder(configured, concurrency=3, attempted=attempted, finished_and_claimed=finished_and_claimed)
    assert {delivery(configured, d).status for d in ids} == {"delivered"}


def test_a_batch_is_what_the_threads_start_within_half_a_second() -> None:
    assert claim_batch(2, None) == 4  # nothing measured yet: two threads' worth
    assert claim_batch(2, 0.1) == 10
    assert claim_batch(2, 0.01) == MAX_BATCH  # fast uploads: a full batch per transaction
    assert claim_batch(8, 0.06) == MAX_BATCH
    assert claim_batch(2, 10.0) == 2  # slow ones: the threads' worth, never less
    assert claim_batch(32, 0.001) == 32


def test_what_ended_waits_for_the_next_claim_only_where_a_copy_can_be_asked_about() -> None:
    """A worker killed between an upload and its record makes the next attempt ask the destination; an
    e-mail or a webhook call cannot be asked about, and sending again is a second message."""
    assert record_wait(["s3"]) == record_wait(["sharepoint", "folder"]) == RECORD_SECONDS > 0
    assert record_wait(["email"]) == record_wait(["webhook"]) == record_wait(["s3", "email"]) == 0


def test_a_slow_destination_leaves_its_deliveries_to_other_workers(configured: Runtime) -> None:
    """Uploads of 0.3 s with one thread: once the pace is known, the drain holds one delivery running and
    one waiting; the rest stay pending, for any other worker its kind's wake-up reaches."""
    ids = create(configured, 7)
    held: list[int] = []
    real = service.attempted

    def attempted(runtime: Runtime, taken: Claim, heartbeat: Heartbeat | None = None) -> Result:
        with session_scope(runtime.sessions) as session:
            held.append(
                session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "delivering")) or 0
            )
        time.sleep(0.3)
        return real(runtime, taken, heartbeat)

    drain_folder(configured, concurrency=1, attempted=attempted)
    assert {delivery(configured, d).status for d in ids} == {"delivered"}
    # Before the first upload ended: a thread's worth running, two waiting and one more (the batch and a
    # half); once the pace is known, the one running and one waiting at most (counted as each starts;
    # what ended is recorded in the transaction of the next claim, so it is never counted beside it).
    assert max(held) <= 4, held
    assert max(held[3:]) <= 2, held


def test_two_drainers_never_claim_the_same_delivery(configured: Runtime, clock: FrozenClock) -> None:
    """50 rounds of two workers claiming one kind's backlog at the same moment: every delivery taken once."""
    rounds = 50 if configured.engine.dialect.name == "postgresql" else 10
    for round_ in range(rounds):
        ids = set(create(configured, 8, f"R{round_}-"))
        start = threading.Barrier(2)
        taken: list[list[str]] = [[], []]

        def work(slot: int, start: threading.Barrier = start, taken: list[list[str]] = taken) -> None:
            start.wait()
            while claims := claim_due(configured, ["folder"], limit=3):
                taken[slot] += [c.delivery_id for c in claims]

        threads = [threading.Thread(target=work, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not set(taken[0]) & set(taken[1])
        assert sorted(taken[0] + taken[1]) == sorted(ids)
