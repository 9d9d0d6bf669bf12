"""A destination's circuit breaker through the engine: retryable failures in a row open it, its
deliveries then wait without spending attempts or TTL, one probe goes after the cool-down, and the
probe's outcome closes it (the rest released and woken) or starts a new cool-down.

The folder destination is made to fail for real: its root is a file, so no folder can be made under it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
from pathlib import Path

import pytest

from filerelay.clock import FrozenClock
from filerelay.db.models import Destination
from filerelay.db.session import session_scope
from filerelay.delivery import health, service, sweep
from filerelay.runtime import Runtime
from filerelay.workspace_config import destinations
from tests.support.clock import half
from tests.support.documents import accept, attempts, delivery

COOLDOWN = 60


@pytest.fixture
def relay(configured: Runtime) -> Runtime:
    """Opens after 2 failures in a row, probes after 60 s."""
    settings = configured.settings.with_overrides(breaker_failures=2, breaker_cooldown_seconds=COOLDOWN)
    return dataclasses.replace(configured, settings=settings)


@pytest.fixture
def outage(tmp_path: Path) -> Path:
    """The folder destination's root becomes a file: every attempt fails, retryably."""
    root = tmp_path / "out"
    root.write_bytes(b"not a folder")
    return root


def folder_delivery(runtime: Runtime, doc_id: str) -> str:
    outcome, _ = accept(runtime, doc_id, b"%PDF-1.4 " + doc_id.encode())
    return next(delivery_id for delivery_id, kind in outcome.enqueue if kind == "folder")


def folder_destination(runtime: Runtime) -> Destination:
    with session_scope(runtime.sessions) as session:
        return session.query(Destination).filter_by(public_id="dest_folder").one()


def workspace(runtime: Runtime) -> int:
    """acme/production's row id (PostgreSQL's sequences do not restart between tests)."""
    return folder_destination(runtime).workspace_id


def switch_off_s3(runtime: Runtime) -> None:
    with session_scope(runtime.sessions) as session:
        session.query(Destination).filter_by(public_id="dest_s3prod").one().enabled = False


def sweep_pass(runtime: Runtime) -> sweep.SweepReport:
    return sweep.sweep(runtime)


def test_failures_in_a_row_open_the_breaker_and_hold_the_rest(
    relay: Runtime, outage: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second, third = (folder_delivery(relay, f"DOC{n}") for n in range(3))
    caplog.set_level(logging.WARNING, logger="filerelay.delivery.health")

    assert service.run(relay, first, rand=half)
    assert folder_destination(relay).breaker_opened_at is None  # one failure: still closed
    assert service.run(relay, second, rand=half)

    destination = folder_destination(relay)
    assert (destination.consecutive_failures, destination.breaker_opened_at) == (2, relay.clock.now())
    assert caplog.messages == ["destination dest_folder: circuit breaker opened (2 failed attempts in a row)"]
    # Held: not attempted, no attempt spent, even when its message arrives.
    assert service.run(relay, third, rand=half) is False
    assert (delivery(relay, third).status, delivery(relay, third).attempts) == ("pending", 0)


def test_a_held_delivery_outlives_its_ttl_and_the_probe_closes_the_breaker(
    relay: Runtime, clock: FrozenClock, outage: Path, caplog: pytest.LogCaptureFixture
) -> None:
    switch_off_s3(relay)  # new documents go to the folder alone
    first, second, third = (folder_delivery(relay, f"DOC{n}") for n in range(3))
    expires = delivery(relay, first).expires_at
    assert expires is not None
    for delivery_id in (first, second):
        assert service.run(relay, delivery_id, rand=half)
    opened_at = clock.now()

    clock.advance(COOLDOWN - 1)
    assert sweep_pass(relay).enqueued == 0  # cooling down: nothing woken
    clock.advance(2 * 3600)  # past every TTL (1 h), and the cool-down
    outage.unlink()  # the destination is back
    report = sweep_pass(relay)

    assert report.expired == 0  # an hour past their TTL, but held
    assert [delivery(relay, d).status for d in (first, second, third)] == ["retrying", "retrying", "pending"]
    # The longest waiting (due since it was created; the others since their backoff), and only it.
    assert folder_destination(relay).probe_delivery_id == third
    assert delivery(relay, third).next_attempt_at == clock.now()  # due now
    assert report.enqueued == 1
    assert service.run(relay, second, rand=half) is False

    with session_scope(relay.sessions) as session:
        taken = service.claim(session, delivery_id=third, now=clock.now(), lease_seconds=60)
    assert taken is not None
    result = service.perform(taken, relay.staging, relay.clients)
    caplog.set_level(logging.WARNING, logger="filerelay.delivery.health")
    caplog.clear()
    with session_scope(relay.sessions) as session:
        done = service.finish(session, taken, result, now=clock.now(), rand=half, breaker=relay.settings.breaker)
    assert caplog.messages == ["destination dest_folder: circuit breaker closed (0 failed attempts in a row)"]

    destination = folder_destination(relay)
    assert (destination.breaker_opened_at, destination.probe_delivery_id, destination.held_since) == (None, None, None)
    assert sorted(done.wake) == sorted([(first, "folder"), (second, "folder")])  # the rest, at once
    held = clock.now() - opened_at
    assert delivery(relay, first).expires_at == expires + held  # the TTL clock stood still while held
    for delivery_id in (first, second):
        assert service.run(relay, delivery_id, rand=half)
        assert delivery(relay, delivery_id).status == "delivered"
    # Two attempts each: the failure that opened the breaker, and the delivery; none while held.
    assert [a.outcome for a in attempts(relay, second)] == ["failed", "delivered"]


def test_a_failed_probe_starts_a_new_cool_down(relay: Runtime, clock: FrozenClock, outage: Path) -> None:
    first, second = folder_delivery(relay, "DOC1"), folder_delivery(relay, "DOC2")
    for delivery_id in (first, second):
        assert service.run(relay, delivery_id, rand=half)
    clock.advance(COOLDOWN)
    assert sweep_pass(relay).enqueued >= 1
    probe = folder_destination(relay).probe_delivery_id
    assert probe == first

    assert service.run(relay, first, rand=half)  # still down

    destination = folder_destination(relay)
    assert (destination.breaker_opened_at, destination.probe_delivery_id) == (clock.now(), None)
    assert destination.consecutive_failures == 3
    clock.advance(COOLDOWN - 1)
    sweep_pass(relay)
    assert folder_destination(relay).probe_delivery_id is None  # not before the new cool-down is over
    clock.advance(1)
    sweep_pass(relay)
    assert folder_destination(relay).probe_delivery_id is not None


def test_a_refusal_of_one_document_does_not_count_toward_opening(relay: Runtime) -> None:
    """Not retryable (the document's own staged bytes are gone): the destination is not to blame."""
    deliveries = [folder_delivery(relay, f"DOC{n}") for n in range(3)]
    for delivery_id in deliveries:
        with session_scope(relay.sessions) as session:
            taken = service.claim(session, delivery_id=delivery_id, now=relay.clock.now(), lease_seconds=60)
        assert taken is not None
        relay.staging.delete(taken.staging_key or "")
        assert not service.perform(taken, relay.staging, relay.clients).retryable
        result = service.perform(taken, relay.staging, relay.clients)
        with session_scope(relay.sessions) as session:
            service.finish(session, taken, result, now=relay.clock.now(), rand=half, breaker=relay.settings.breaker)
    destination = folder_destination(relay)
    assert (destination.consecutive_failures, destination.breaker_opened_at) == (0, None)


def test_a_success_resets_the_count(relay: Runtime, outage: Path) -> None:
    failed, ok = folder_delivery(relay, "DOC1"), folder_delivery(relay, "DOC2")
    assert service.run(relay, failed, rand=half)
    assert folder_destination(relay).consecutive_failures == 1
    outage.unlink()
    assert service.run(relay, ok, rand=half)
    assert folder_destination(relay).consecutive_failures == 0


def test_an_open_breaker_wakes_nothing_but_its_probe(relay: Runtime, clock: FrozenClock, outage: Path) -> None:
    first, second = folder_delivery(relay, "DOC1"), folder_delivery(relay, "DOC2")
    for delivery_id in (first, second):
        assert service.run(relay, delivery_id, rand=half)
    clock.advance(30)  # both due again (backoff 1-10 s), the breaker still cooling down
    with session_scope(relay.sessions) as session:
        due = sweep.due_kinds(session, now=clock.now())
    assert due == ["s3"]  # the folder's two are due, but held


# --- pause and release -----------------------------------------------------------------------------


def test_releasing_moves_the_ttl_of_every_held_delivery_in_batches_and_no_other_destinations(
    relay: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(health, "RELEASE_BATCH", 2)  # three deliveries: two batches
    created = [accept(relay, f"DOC{n}", b"%PDF-1.4 x")[0] for n in range(3)]
    folder = [next(d for d, kind in o.enqueue if kind == "folder") for o in created]
    s3 = [next(d for d, kind in o.enqueue if kind == "s3") for o in created]
    before = {d: delivery(relay, d).expires_at for d in folder + s3}
    with session_scope(relay.sessions) as session:
        destinations.pause_destination(
            session, workspace_id=workspace(relay), destination_id="dest_folder", now=clock.now()
        )
    clock.advance(100)
    caplog.set_level(logging.INFO, logger="filerelay.delivery.health")

    with session_scope(relay.sessions) as session:
        _, wake = destinations.resume_destination(
            session, workspace_id=workspace(relay), destination_id="dest_folder", now=clock.now()
        )

    moved = dt.timedelta(seconds=100)
    assert {d: delivery(relay, d).expires_at for d in folder} == {d: before[d] + moved for d in folder}
    assert {d: delivery(relay, d).expires_at for d in s3} == {d: before[d] for d in s3}
    assert sorted(wake) == sorted((d, "folder") for d in folder)
    assert "destination dest_folder released: 3 deliveries held for 0:01:40" in caplog.messages


def test_the_sweeper_probes_once_and_never_a_paused_destination(
    relay: Runtime, clock: FrozenClock, outage: Path, caplog: pytest.LogCaptureFixture
) -> None:
    switch_off_s3(relay)
    done, first, second = (folder_delivery(relay, f"DOC{n}") for n in range(3))
    outage.unlink()
    assert service.run(relay, done, rand=half)  # delivered: never a probe
    shutil.rmtree(outage)
    outage.write_bytes(b"not a folder")
    for delivery_id in (first, second):
        assert service.run(relay, delivery_id, rand=half)
    clock.advance(COOLDOWN)
    with session_scope(relay.sessions) as session:
        destinations.pause_destination(
            session, workspace_id=workspace(relay), destination_id="dest_folder", now=clock.now()
        )

    report = sweep_pass(relay)  # paused as well as open: no probe
    assert (report.errors, folder_destination(relay).probe_delivery_id) == ([], None)

    with session_scope(relay.sessions) as session:
        destinations.resume_destination(
            session, workspace_id=workspace(relay), destination_id="dest_folder", now=clock.now()
        )
    caplog.set_level(logging.INFO, logger="filerelay.delivery.health")
    assert sweep_pass(relay).errors == []
    assert sweep_pass(relay).errors == []  # a second pass keeps the probe it chose

    assert folder_destination(relay).probe_delivery_id == first
    probing = [m for m in caplog.messages if "half-open" in m]
    assert probing == [f"destination dest_folder: circuit breaker half-open, probing with {first}"]


def test_a_release_wakes_a_delivery_due_this_very_moment(relay: Runtime) -> None:
    """Paused and resumed at the same instant: the new document's delivery is due now, so it goes now."""
    folder = folder_delivery(relay, "DOC1")
    assert delivery(relay, folder).next_attempt_at == relay.clock.now()
    with session_scope(relay.sessions) as session:
        destinations.pause_destination(
            session, workspace_id=workspace(relay), destination_id="dest_folder", now=relay.clock.now()
        )
    with session_scope(relay.sessions) as session:
        _, wake = destinations.resume_destination(
            session, workspace_id=workspace(relay), destination_id="dest_folder", now=relay.clock.now()
        )
    assert wake == [(folder, "folder")]
