"""The delivery engine run as plain functions against a real database, a real folder and a refusing S3.

Z1 is wired to dest_folder (tmp_path/out) and dest_s3prod (127.0.0.1:9, every upload fails);
the workspace retries 3 times (4 attempts per cycle) with backoff 1s..10s and a TTL of 1h.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from pathlib import Path

import pytest

from filerelay import content
from filerelay.clock import FrozenClock
from filerelay.db.models import Delivery, Document
from filerelay.db.session import session_scope
from filerelay.delivery import service, sweep
from filerelay.delivery.transitions import Wake
from filerelay.runtime import Runtime
from tests.support.clock import half
from tests.support.documents import PDF, Created, attempts, create_document, delivery, document, replace_content

PDF_V2 = b"%PDF-1.7\n" + bytes(reversed(range(256))) * 9 + b"\n%%EOF\n"


def advance_to_next_attempt(runtime: Runtime, clock: FrozenClock, delivery_id: str) -> None:
    due = delivery(runtime, delivery_id).next_attempt_at
    assert due is not None
    clock.advance((due - clock.now()).total_seconds())


def delivered_file(tmp_path: Path) -> Path:
    return tmp_path / "out" / "Z1" / "DOC_data.pdf"


def claim(runtime: Runtime, delivery_id: str, *, lease_seconds: int = 900) -> service.Claim | None:
    with session_scope(runtime.sessions) as session:
        return service.claim(session, delivery_id=delivery_id, now=runtime.clock.now(), lease_seconds=lease_seconds)


# --- a successful folder delivery ---------------------------------------------------------------


def test_folder_delivery_lands_byte_identical_and_is_recorded(configured: Runtime, tmp_path: Path) -> None:
    created = create_document(configured)
    now = configured.clock.now()

    assert service.run(configured, created.folder, rand=half) is True

    row = delivery(configured, created.folder)
    assert row.status == "delivered"
    assert row.delivered_at == now
    assert row.path == "/Z1/DOC_data.pdf"
    assert row.sha256 == hashlib.sha256(PDF).hexdigest()
    assert (row.attempts, row.cycle_attempts) == (1, 1)
    assert row.delivered_generation == 1
    assert row.lease_until is None
    assert row.next_attempt_at is None
    assert row.last_error is None
    [attempt] = attempts(configured, created.folder)
    assert (attempt.number, attempt.outcome, attempt.generation) == (1, "delivered", 1)
    assert attempt.bytes_sent == len(PDF)
    assert attempt.finished_at == now
    assert attempt.error_message is None
    target = delivered_file(tmp_path)
    assert target.read_bytes() == PDF
    # Written through a temporary file renamed into place: nothing half-written is left behind.
    assert sorted(p.name for p in target.parent.iterdir()) == ["DOC_data.pdf"]


def test_document_stays_pending_until_every_delivery_is_final_and_rolls_up(
    configured: Runtime, clock: FrozenClock
) -> None:
    created = create_document(configured)
    assert document(configured, created.document_id).status == "pending"

    assert service.run(configured, created.folder, rand=half)
    assert delivery(configured, created.folder).status == "delivered"
    # The S3 delivery has not run yet: the document is not delivered.
    assert document(configured, created.document_id).status == "pending"

    assert service.run(configured, created.s3, rand=half)
    s3 = delivery(configured, created.s3)
    assert s3.status == "retrying"
    assert s3.last_error is not None
    assert "127.0.0.1:9" in s3.last_error
    assert document(configured, created.document_id).status == "retrying"

    for attempt_number in (2, 3, 4):  # max_retries 3: one attempt plus three retries
        advance_to_next_attempt(configured, clock, created.s3)
        assert service.run(configured, created.s3, rand=half)
        expected = "failed" if attempt_number == 4 else "retrying"
        assert delivery(configured, created.s3).status == expected
        assert document(configured, created.document_id).status == expected

    s3 = delivery(configured, created.s3)
    assert (s3.attempts, s3.cycle_attempts) == (4, 4)
    assert s3.next_attempt_at is None
    assert [a.outcome for a in attempts(configured, created.s3)] == ["failed"] * 4
    assert {a.error_class for a in attempts(configured, created.s3)} == {"DestinationError"}
    # A failed delivery is not claimed again, however much time passes.
    clock.advance(60)
    assert service.run(configured, created.s3, rand=half) is False
    # Only the failing destination was retried: the folder copy was sent once.
    folder = delivery(configured, created.folder)
    assert (folder.status, folder.attempts) == ("delivered", 1)
    assert len(attempts(configured, created.folder)) == 1


def test_next_attempt_at_grows_between_consecutive_failures(configured: Runtime, clock: FrozenClock) -> None:
    created = create_document(configured)
    delays: list[float] = []
    for _ in range(3):
        assert service.run(configured, created.s3, rand=half)
        row = delivery(configured, created.s3)
        assert row.status == "retrying"
        assert row.next_attempt_at is not None
        delays.append((row.next_attempt_at - clock.now()).total_seconds())
        advance_to_next_attempt(configured, clock, created.s3)
    # Equal jitter at rand 0.5 on ceilings 1s, 2s, 4s.
    assert delays == [0.75, 1.5, 3.0]


def test_a_duplicate_message_is_a_no_op(configured: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    created = create_document(configured)
    assert service.run(configured, created.folder, rand=half) is True
    first = delivery(configured, created.folder)
    caplog.set_level(logging.INFO, logger="filerelay.delivery.service")
    caplog.clear()  # the first run's lines, if an earlier test left the logger at INFO

    assert service.run(configured, created.folder, rand=half) is False

    assert caplog.messages == [f"delivery {created.folder}: nothing to claim (done, held elsewhere, or not due)"]

    again = delivery(configured, created.folder)
    assert (again.status, again.attempts, again.delivered_at) == ("delivered", 1, first.delivered_at)
    assert len(attempts(configured, created.folder)) == 1
    assert delivered_file(tmp_path).read_bytes() == PDF


def test_finishing_one_delivery_leaves_its_siblings_attempt_running(configured: Runtime) -> None:
    """Both deliveries of the document are on their first attempt: the finish of one must close its own
    attempt row, not every attempt 1."""
    created = create_document(configured)
    folder, s3 = claim(configured, created.folder), claim(configured, created.s3)
    assert folder is not None
    assert s3 is not None
    result = service.perform(folder, configured.staging, configured.clients)
    with session_scope(configured.sessions) as session:
        service.finish(session, folder, result, now=configured.clock.now(), rand=half)

    assert [a.outcome for a in attempts(configured, created.folder)] == ["delivered"]
    [running] = attempts(configured, created.s3)
    assert (running.number, running.outcome, running.finished_at, running.bytes_sent) == (1, "running", None, None)


def test_a_delivery_held_under_a_lease_is_not_claimed_twice(configured: Runtime) -> None:
    created = create_document(configured)
    assert claim(configured, created.folder) is not None

    assert service.run(configured, created.folder, rand=half) is False

    row = delivery(configured, created.folder)
    assert (row.status, row.attempts) == ("delivering", 1)
    assert [a.outcome for a in attempts(configured, created.folder)] == ["running"]


def test_a_retrying_delivery_is_not_claimed_before_next_attempt_at(configured: Runtime, clock: FrozenClock) -> None:
    created = create_document(configured)
    assert service.run(configured, created.s3, rand=half)
    due = delivery(configured, created.s3).next_attempt_at
    assert due == clock.now() + dt.timedelta(seconds=0.75)

    clock.advance(0.5)
    assert service.run(configured, created.s3, rand=half) is False
    row = delivery(configured, created.s3)
    assert (row.status, row.attempts, row.next_attempt_at) == ("retrying", 1, due)
    assert len(attempts(configured, created.s3)) == 1

    clock.advance(0.25)  # exactly next_attempt_at: due
    assert service.run(configured, created.s3, rand=half) is True
    assert delivery(configured, created.s3).attempts == 2


def test_a_delivery_whose_staged_bytes_are_gone_fails_without_retry(configured: Runtime) -> None:
    created = create_document(configured)
    configured.staging.delete(created.staging_key)

    assert service.run(configured, created.folder, rand=half) is True

    row = delivery(configured, created.folder)
    assert row.status == "failed"
    assert row.last_error == "the staged bytes are gone"
    assert row.next_attempt_at is None
    assert row.attempts == 1
    [attempt] = attempts(configured, created.folder)
    assert (attempt.outcome, attempt.error_class) == ("failed", "StagingError")
    assert document(configured, created.document_id).status == "failed"
    assert service.run(configured, created.folder, rand=half) is False


def corrupt_staged(runtime: Runtime, key: str) -> None:
    """Flip one byte of the staged object in place: same size, another sha256 (a disk or copy error)."""
    with runtime.staging.open(key) as fp:
        path = Path(fp.name)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_staged_bytes_not_matching_their_sha256_fail_and_write_nothing(configured: Runtime, tmp_path: Path) -> None:
    created = create_document(configured)
    corrupt_staged(configured, created.staging_key)

    assert service.run(configured, created.folder, rand=half) is True

    row = delivery(configured, created.folder)
    # Not retryable: the staged copy is all there is, and retrying would send the same bad bytes.
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 1, None)
    assert row.last_error == "staged bytes do not match their sha256"
    assert row.delivered_at is None
    assert not (tmp_path / "out" / "Z1").exists() or list((tmp_path / "out" / "Z1").iterdir()) == []


def test_staged_bytes_not_matching_their_sha256_leave_a_good_copy_intact(
    configured: Runtime, clock: FrozenClock, tmp_path: Path
) -> None:
    created = create_document(configured)
    assert service.run(configured, created.folder, rand=half)
    assert delivered_file(tmp_path).read_bytes() == PDF
    # SAP replaces the content; its staged copy is damaged before the worker reads it.
    outcome = replace_content(configured, doc_id="DOC", data=PDF_V2)
    assert (created.folder, "folder") in outcome.enqueue
    with session_scope(configured.sessions) as session:
        new_key = session.get_one(Document, created.document_id).staging_key
    assert new_key is not None
    corrupt_staged(configured, new_key)

    assert service.run(configured, created.folder, rand=half) is True

    row = delivery(configured, created.folder)
    assert (row.status, row.attempts) == ("failed", 2)
    assert row.last_error == "staged bytes do not match their sha256"
    # The earlier good copy is still there, whole, and nothing half-written sits beside it.
    assert delivered_file(tmp_path).read_bytes() == PDF
    assert sorted(p.name for p in delivered_file(tmp_path).parent.iterdir()) == ["DOC_data.pdf"]


# --- content replaced while a delivery is running ---------------------------------------------------


def created_and_claimed(runtime: Runtime) -> tuple[Created, service.Claim]:
    """A document whose folder delivery a worker has claimed and not yet run."""
    created = create_document(runtime)
    taken = claim(runtime, created.folder)
    assert taken is not None
    return created, taken


def run_to_the_end(runtime: Runtime, taken: service.Claim) -> tuple[service.Result, list[Wake]]:
    """The claimed attempt uploads, then finishes: its result, and the wake-ups its finish sends."""
    result = service.perform(taken, runtime.staging, runtime.clients)
    with session_scope(runtime.sessions) as session:
        return result, service.finish(session, taken, result, now=runtime.clock.now(), rand=half).wake


def test_content_replaced_while_delivering_is_sent_again_after_the_old_upload(
    configured: Runtime, tmp_path: Path
) -> None:
    created, taken = created_and_claimed(configured)
    assert taken.generation == 1

    outcome = replace_content(configured, doc_id="DOC", data=PDF_V2)
    # The running delivery is left alone (its finish notices); the idle one gets a fresh cycle.
    assert outcome.enqueue == [(created.s3, "s3")]
    assert delivery(configured, created.folder).status == "delivering"

    result, wake = run_to_the_end(configured, taken)
    assert result.ok

    assert wake == [(created.folder, "folder")]
    row = delivery(configured, created.folder)
    assert row.status == "pending"
    assert row.delivered_at is None
    assert row.delivered_generation is None
    assert document(configured, created.document_id).status == "pending"
    assert [(a.generation, a.outcome) for a in attempts(configured, created.folder)] == [(1, "delivered")]

    assert service.run(configured, created.folder, rand=half) is True

    row = delivery(configured, created.folder)
    assert (row.status, row.attempts, row.delivered_generation) == ("delivered", 2, 2)
    assert row.sha256 == hashlib.sha256(PDF_V2).hexdigest()
    assert delivered_file(tmp_path).read_bytes() == PDF_V2
    assert [(a.generation, a.outcome) for a in attempts(configured, created.folder)] == [
        (1, "delivered"),
        (2, "delivered"),
    ]


def test_content_replaced_while_delivering_survives_the_old_bytes_being_released(
    configured: Runtime, tmp_path: Path
) -> None:
    created, taken = created_and_claimed(configured)

    outcome = replace_content(configured, doc_id="DOC", data=PDF_V2)
    assert outcome.delete_staged == [created.staging_key]
    for key in outcome.delete_staged:  # what the ArchiveLink handler does after commit
        configured.staging.delete(key)

    _, wake = run_to_the_end(configured, taken)

    assert wake == [(created.folder, "folder")]
    assert delivery(configured, created.folder).status == "pending"
    assert service.run(configured, created.folder, rand=half) is True
    assert delivery(configured, created.folder).status == "delivered"
    assert delivered_file(tmp_path).read_bytes() == PDF_V2


# --- read_back ----------------------------------------------------------------------------------


def test_read_back_serves_the_delivered_bytes_once_staging_is_released(configured: Runtime) -> None:
    created = create_document(configured)
    assert service.run(configured, created.folder, rand=half)
    with session_scope(configured.sessions) as session:
        session.get_one(Document, created.document_id).staging_key = None
    configured.staging.delete(created.staging_key)

    with session_scope(configured.sessions) as session:
        row = session.get_one(Document, created.document_id)
        whole = content.read_back(session, row, 0, len(PDF), configured.clients)
        assert whole is not None
        assert b"".join(whole) == PDF
        part = content.read_back(session, row, 100, 50, configured.clients)
        assert part is not None
        assert b"".join(part) == PDF[100:150]
        empty = content.read_back(session, row, 10, 0, configured.clients)
        assert empty is not None
        assert b"".join(empty) == b""


def test_read_back_is_none_when_nothing_was_delivered(configured: Runtime) -> None:
    created = create_document(configured)
    assert service.run(configured, created.s3, rand=half)  # fails: nothing delivered anywhere

    with session_scope(configured.sessions) as session:
        row = session.get_one(Document, created.document_id)
        assert content.read_back(session, row, 0, len(PDF), configured.clients) is None


def test_read_back_does_not_serve_a_copy_of_replaced_content(configured: Runtime) -> None:
    created = create_document(configured)
    assert service.run(configured, created.folder, rand=half)
    replace_content(configured, doc_id="DOC", data=PDF_V2)

    with session_scope(configured.sessions) as session:
        row = session.get_one(Document, created.document_id)
        assert content.read_back(session, row, 0, len(PDF), configured.clients) is None


# --- an attempt nobody saw end: ask the destination before sending again ------------------------------


def worker_dies_after_upload(runtime: Runtime, clock: FrozenClock, delivery_id: str) -> None:
    """The upload lands, then the worker dies before recording it; the sweeper takes the lease back."""
    taken = claim(runtime, delivery_id, lease_seconds=60)
    assert taken is not None
    assert not taken.unsure
    assert service.perform(taken, runtime.staging, runtime.clients).ok
    clock.advance(61)
    with session_scope(runtime.sessions) as session:
        assert sweep.recover_expired_leases(session, now=clock.now(), limit=10) == 1
    advance_to_next_attempt(runtime, clock, delivery_id)


def test_a_copy_that_landed_unseen_is_recorded_not_sent_again(
    configured: Runtime, clock: FrozenClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    created = create_document(configured)
    worker_dies_after_upload(configured, clock, created.folder)
    landed = delivered_file(tmp_path).stat()
    caplog.set_level(logging.INFO, logger="filerelay.delivery.service")

    assert service.run(configured, created.folder, rand=half)

    row = delivery(configured, created.folder)
    assert (row.status, row.path, row.sha256, row.last_error) == (
        "delivered",
        "/Z1/DOC_data.pdf",
        created_sha(PDF),
        None,
    )
    assert [(a.outcome, a.bytes_sent) for a in attempts(configured, created.folder)] == [
        ("abandoned", None),
        ("found", 0),
    ]
    again = delivered_file(tmp_path).stat()
    assert (again.st_ino, again.st_mtime_ns) == (landed.st_ino, landed.st_mtime_ns)  # not written twice
    assert "dest_folder already holds the identical content at /Z1/DOC_data.pdf: not sent again" in caplog.messages


def test_a_different_or_partial_copy_is_sent_again(configured: Runtime, clock: FrozenClock, tmp_path: Path) -> None:
    created = create_document(configured)
    worker_dies_after_upload(configured, clock, created.folder)
    delivered_file(tmp_path).write_bytes(PDF[:100])  # what a crash mid-write elsewhere could leave

    assert service.run(configured, created.folder, rand=half)

    assert delivery(configured, created.folder).status == "delivered"
    assert [a.outcome for a in attempts(configured, created.folder)] == ["abandoned", "delivered"]
    assert delivered_file(tmp_path).read_bytes() == PDF


def test_a_destination_that_cannot_be_asked_is_sent_to_and_the_failure_logged(
    configured: Runtime, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker died mid-upload and the S3 endpoint does not answer: whether the copy landed cannot be
    told, so the attempt sends (and fails like any other), and the log says both."""
    created = create_document(configured)
    assert claim(configured, created.s3, lease_seconds=60) is not None  # ... and the worker dies
    clock.advance(61)
    with session_scope(configured.sessions) as session:
        assert sweep.recover_expired_leases(session, now=clock.now(), limit=10) == 1
    advance_to_next_attempt(configured, clock, created.s3)
    caplog.set_level(logging.INFO, logger="filerelay.delivery.service")

    assert service.run(configured, created.s3, rand=half)

    row = delivery(configured, created.s3)
    assert row.status == "retrying"
    assert row.last_error is not None
    assert [a.outcome for a in attempts(configured, created.s3)] == ["abandoned", "failed"]
    [asked] = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "filerelay.delivery.service"]
    assert asked.getMessage().startswith(
        "cannot tell whether dest_s3prod already holds /2026/04/04/DOC.pdf: cannot look at s3://archive/2026/04/04/DOC.pdf"
    )
    assert f"delivery {created.s3} attempt 2: retry ({row.last_error})" in caplog.messages


def test_an_unexpected_error_is_a_retryable_result_named_after_it_and_logged_with_its_trace(
    configured: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a DestinationError (here: stored settings the folder kind cannot build from): `perform`
    still returns a result, which retries (a bug fixed by a deploy must not have lost the document)."""
    created = create_document(configured)
    taken = claim(configured, created.folder)
    assert taken is not None

    result = service.perform(dataclasses.replace(taken, settings={}), configured.staging, configured.clients)

    assert (result.ok, result.error, result.error_class, result.retryable) == (
        False,
        "KeyError: 'root'",
        "KeyError",
        True,
    )
    [logged] = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "filerelay.delivery.service"]
    assert logged.getMessage() == f"delivery {created.folder} raised unexpectedly"
    assert logged.exc_info is not None


def test_a_retry_after_a_failure_asks_first(configured: Runtime, clock: FrozenClock) -> None:
    """A failure does not prove nothing landed (the chaos run's S3 outage: a PUT stored, its answer cut off,
    sent again as a second version): the next attempt asks the destination first. New content does not."""
    created = create_document(configured)
    taken = claim(configured, created.s3)
    assert taken is not None
    with session_scope(configured.sessions) as session:
        service.finish(session, taken, service.Result(False, "HTTP 503", retry_after=1), now=clock.now(), rand=half)
    advance_to_next_attempt(configured, clock, created.s3)
    again = claim(configured, created.s3)
    assert again is not None
    assert again.unsure
    with session_scope(configured.sessions) as session:
        service.finish(session, again, service.Result(False, "HTTP 503", retry_after=1), now=clock.now(), rand=half)
    replace_content(configured, doc_id="DOC", data=b"%PDF-1.4 new content")
    fresh = claim(configured, created.s3)
    assert fresh is not None
    assert not fresh.unsure


def created_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_claiming_a_pending_delivery_leaves_the_document_alone_and_a_retry_rolls_it_up(
    configured: Runtime, clock: FrozenClock
) -> None:
    """pending and delivering roll up alike: the first claim need not lock or write the document (the
    Files feed sees no change); a retrying one may move the document from retrying to pending."""
    created = create_document(configured)
    stamped = document(configured, created.document_id).updated_at
    clock.advance(5)
    taken = claim(configured, created.folder)
    assert taken is not None
    assert (document(configured, created.document_id).status, document(configured, created.document_id).updated_at) == (
        "pending",
        stamped,
    )
    # Its finish leaves the document pending too (the S3 delivery waits): no change to stamp either.
    with session_scope(configured.sessions) as session:
        service.finish(
            session, taken, service.perform(taken, configured.staging, configured.clients), now=clock.now(), rand=half
        )
    assert delivery(configured, created.folder).status == "delivered"
    assert document(configured, created.document_id).updated_at == stamped

    assert service.run(configured, created.s3, rand=half)  # nothing listens there: retrying
    assert document(configured, created.document_id).status == "retrying"
    advance_to_next_attempt(configured, clock, created.s3)
    assert claim(configured, created.s3) is not None
    assert document(configured, created.document_id).status == "pending"
    assert document(configured, created.document_id).updated_at == clock.now()


def test_claiming_a_retry_that_leaves_the_document_retrying_does_not_stamp_it(
    configured: Runtime, clock: FrozenClock
) -> None:
    """Both deliveries retrying: claiming one leaves the document retrying (the other still is), which is
    no change a reader or the Files feed could see."""
    created = create_document(configured)
    with session_scope(configured.sessions) as session:
        for delivery_id in (created.folder, created.s3):
            session.get_one(Delivery, delivery_id).status = "retrying"
        row = session.get_one(Document, created.document_id)
        row.status = "retrying"
    stamped = document(configured, created.document_id).updated_at
    clock.advance(5)

    assert claim(configured, created.folder) is not None

    after = document(configured, created.document_id)
    assert (after.status, after.updated_at) == ("retrying", stamped)
