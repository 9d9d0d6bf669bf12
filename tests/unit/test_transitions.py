"""The delivery state machine (filerelay.delivery.transitions) on plain rows: every (state, event) pair,
the impossible ones refused with the row untouched, and random event sequences that never reach an
inconsistent document or record one generation as delivered twice."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filerelay.db.models import AttemptOutcome, Delivery, DeliveryAttempt, DeliveryStatus, Destination, Document
from filerelay.delivery import transitions
from filerelay.delivery.rollup import rollup
from filerelay.delivery.rules import BreakerPolicy, RetryPolicy
from filerelay.delivery.transitions import AttemptResult, ExportStatus, Finished, IllegalTransition
from tests.support.clock import half

NOW = dt.datetime(2026, 4, 4, 10, 30, tzinfo=dt.UTC)
POLICY = RetryPolicy(max_retries=3, ttl_seconds=3600, backoff_base_seconds=10, backoff_max_seconds=600)
LEASE = 60
SHA = "ab" * 32
PENDING, DELIVERING, DELIVERED = DeliveryStatus.PENDING, DeliveryStatus.DELIVERING, DeliveryStatus.DELIVERED
RETRYING, FAILED = DeliveryStatus.RETRYING, DeliveryStatus.FAILED
COLUMNS = [c.key for c in Delivery.__table__.columns]


@dataclasses.dataclass(frozen=True)
class State:
    kind: str
    status: DeliveryStatus | None
    next_attempt_in: float | None = -1.0  # seconds from NOW
    lease_in: float | None = None
    cycle_attempts: int = 1


STATES = {
    "new": State("folder", None, next_attempt_in=None),
    "pending": State("folder", PENDING),
    "retrying, due": State("folder", RETRYING),
    "retrying, not due": State("folder", RETRYING, next_attempt_in=60),
    # Wired while its repository waits for the document's metadata: no attempt yet, due later.
    "pending, held for metadata": State("folder", PENDING, next_attempt_in=600, cycle_attempts=0),
    "delivering": State("folder", DELIVERING, next_attempt_in=None, lease_in=30),
    "delivering, lease ran out": State("folder", DELIVERING, next_attempt_in=None, lease_in=-1),
    "delivered": State("folder", DELIVERED, next_attempt_in=None),
    "failed": State("folder", FAILED, next_attempt_in=None),
    "pull pending": State("pull", PENDING),
    "pull exporting": State("pull", DELIVERING, next_attempt_in=None),
    "pull delivered": State("pull", DELIVERED, next_attempt_in=None),
    "pull failed": State("pull", FAILED, next_attempt_in=None),
}


def row(state: State) -> tuple[Delivery, DeliveryAttempt]:
    """A delivery in the state (one attempt made, expiring in an hour) and its latest attempt row."""
    delivery = Delivery(
        id="dlv_t",
        document_id="doc_t",
        destination_id=1,
        status=state.status,
        attempts=1,
        cycle_attempts=state.cycle_attempts,
        cycle_started_at=NOW - dt.timedelta(minutes=5),
        expires_at=NOW + dt.timedelta(hours=1),
        next_attempt_at=None if state.next_attempt_in is None else NOW + dt.timedelta(seconds=state.next_attempt_in),
        enqueued_at=None,
        lease_until=None if state.lease_in is None else NOW + dt.timedelta(seconds=state.lease_in),
        delivered_at=NOW - dt.timedelta(minutes=1) if state.status == DELIVERED else None,
        delivered_generation=1 if state.status == DELIVERED else None,
        path="/old" if state.status == DELIVERED else None,
        sha256=None,
        last_error="earlier error" if state.status in (RETRYING, FAILED) else None,
        created_at=NOW - dt.timedelta(minutes=5),
        updated_at=NOW - dt.timedelta(minutes=1),
    )
    attempt = DeliveryAttempt(
        delivery_id="dlv_t", number=1, generation=1, started_at=NOW, outcome=AttemptOutcome.RUNNING
    )
    return delivery, attempt


def snapshot(delivery: Delivery) -> dict[str, Any]:
    return {name: getattr(delivery, name) for name in COLUMNS}


def _finish(result: AttemptResult, generation: int = 1) -> Callable[[Delivery, DeliveryAttempt, str], Any]:
    def apply(delivery: Delivery, attempt: DeliveryAttempt, kind: str) -> Any:
        _, wake = transitions.finished(
            delivery,
            attempt,
            result,
            content=transitions.Delivered(1, "/Z1/DOC.pdf", SHA),
            current_generation=generation,
            kind=kind,
            policy=POLICY,
            now=NOW,
            rand=half,
        )
        return wake

    return apply


def _ttl(delivery: Delivery, attempt: DeliveryAttempt, kind: str) -> Any:
    delivery.expires_at = NOW - dt.timedelta(seconds=1)  # the event's precondition, not the state's
    transitions.ttl_expired(delivery, now=NOW)


def _export(status: ExportStatus) -> Callable[[Delivery, DeliveryAttempt, str], Any]:
    def apply(delivery: Delivery, attempt: DeliveryAttempt, kind: str) -> Any:
        transitions.export_reported(
            delivery,
            status,
            kind=kind,
            messages=["from the ERP"],
            content=transitions.Delivered(1, "/erp/DOC.pdf", SHA),
            policy=POLICY,
            now=NOW,
        )

    return apply


EVENTS: dict[str, Callable[[Delivery, DeliveryAttempt, str], Any]] = {
    "wired": lambda d, a, k: transitions.wired(d, kind=k, policy=POLICY, now=NOW),
    "wired, waiting for metadata": lambda d, a, k: transitions.wired(
        d, kind=k, policy=POLICY, now=NOW, metadata_wait=dt.timedelta(minutes=10)
    ),
    "metadata arrived": lambda d, a, k: transitions.metadata_arrived(d, kind=k, now=NOW),
    "claimed": lambda d, a, k: transitions.claimed(d, kind=k, now=NOW, lease_seconds=LEASE),
    "delivered": _finish(AttemptResult(True, size=10)),
    "found identical": _finish(AttemptResult(True, size=10, found=True)),
    "failed, retryable": _finish(AttemptResult(False, "HTTP 503", "DestinationError", retry_after=120)),
    "failed, for good": _finish(AttemptResult(False, "HTTP 403", "DestinationError", retryable=False)),
    "finished after a content change": _finish(AttemptResult(True, size=10), generation=2),
    "lease expired": lambda d, a, k: transitions.lease_expired(d, a, policy=POLICY, now=NOW, rand=half),
    "lease renewed": lambda d, a, k: transitions.lease_renewed(
        d, attempt=a.number, kind=k, now=NOW, lease_seconds=LEASE
    ),
    "TTL expired": _ttl,
    "retried": lambda d, a, k: transitions.retried(d, kind=k, policy=POLICY, now=NOW),
    "woken": lambda d, a, k: transitions.woken(d, kind=k, now=NOW),
    "export exporting": _export(ExportStatus.EXPORTING),
    "export completed": _export(ExportStatus.COMPLETED),
    "export error": _export(ExportStatus.ERROR),
    "export empty": _export(ExportStatus.EMPTY),
}

# The event names transitions.py uses in its refusals, where the table's names are more specific.
LABELS = {
    **{name: "finished" for name in EVENTS if name.startswith(("delivered", "found", "failed", "finished"))},
    **{name: "export reported" for name in EVENTS if name.startswith("export")},
    "wired, waiting for metadata": "wired",
}

WAITING_STATES = ["pending", "retrying, due", "retrying, not due", "pending, held for metadata"]
WORKER_HOLDS = ["delivering", "delivering, lease ran out"]
ALL_FOLDER = [name for name, s in STATES.items() if s.kind == "folder"]
ALL_PULL = [name for name, s in STATES.items() if s.kind == "pull"]
WAKE = [("dlv_t", "folder")]

# (event, state) -> (new status, wake-ups). Every pair not listed must be refused.
ALLOWED: dict[tuple[str, str], tuple[DeliveryStatus, list[tuple[str, str]]]] = {
    **{("wired", s): (PENDING, WAKE) for s in ["new", *WAITING_STATES, "delivered", "failed"]},
    # A running upload is left alone: its finish sees the new generation and restarts.
    **{("wired", s): (DELIVERING, []) for s in [*WORKER_HOLDS, "pull exporting"]},
    **{("wired", s): (PENDING, []) for s in ["pull pending", "pull delivered", "pull failed"]},
    # Held back for the document's metadata: nothing to wake (pull deliveries never wait).
    **{("wired, waiting for metadata", s): (PENDING, []) for s in ["new", *WAITING_STATES, "delivered", "failed"]},
    **{("wired, waiting for metadata", s): (DELIVERING, []) for s in [*WORKER_HOLDS, "pull exporting"]},
    **{("wired, waiting for metadata", s): (PENDING, []) for s in ["pull pending", "pull delivered", "pull failed"]},
    ("metadata arrived", "pending, held for metadata"): (PENDING, WAKE),
    **{("claimed", s): (DELIVERING, []) for s in ["pending", "retrying, due"]},
    **{("delivered", s): (DELIVERED, []) for s in WORKER_HOLDS},
    **{("found identical", s): (DELIVERED, []) for s in WORKER_HOLDS},
    **{("failed, retryable", s): (RETRYING, []) for s in WORKER_HOLDS},
    **{("failed, for good", s): (FAILED, []) for s in WORKER_HOLDS},
    **{("finished after a content change", s): (PENDING, WAKE) for s in WORKER_HOLDS},
    ("lease expired", "delivering, lease ran out"): (RETRYING, []),
    # A live worker keeps its lease, even one that ran out while the sweeper had not yet taken it back.
    **{("lease renewed", s): (DELIVERING, []) for s in WORKER_HOLDS},
    **{("TTL expired", s): (FAILED, []) for s in [*WAITING_STATES, "pull pending", "pull exporting"]},
    ("retried", "failed"): (RETRYING, WAKE),
    ("retried", "pull failed"): (PENDING, []),
    **{("woken", s): (RETRYING if s.startswith("retrying") else PENDING, []) for s in WAITING_STATES},
    **{("export exporting", s): (DELIVERING, []) for s in ALL_PULL},
    **{("export completed", s): (DELIVERED, []) for s in ALL_PULL},
    **{("export error", s): (FAILED, []) for s in ALL_PULL},
    **{("export empty", s): (PENDING, []) for s in ALL_PULL},
}


def check_consistent(delivery: Delivery, kind: str) -> None:
    """What must hold of any delivery the machine left behind."""
    status = delivery.status
    assert (delivery.lease_until is not None) == (status == DELIVERING and kind != "pull"), (
        "a lease iff a worker holds it"
    )
    if status in (PENDING, RETRYING):
        assert delivery.next_attempt_at is not None, "a waiting delivery says when it is due"
    if status == DELIVERED:
        assert delivery.delivered_at is not None
        assert delivery.delivered_generation is not None
    if status in (DELIVERED, FAILED, DELIVERING):
        assert delivery.next_attempt_at is None or status == DELIVERING


@pytest.mark.parametrize("event", list(EVENTS))
@pytest.mark.parametrize("state", list(STATES))
def test_every_state_and_event(state: str, event: str) -> None:
    delivery, attempt = row(STATES[state])
    kind = STATES[state].kind
    before = snapshot(delivery)
    expected = ALLOWED.get((event, state))
    if expected is None:
        with pytest.raises(IllegalTransition) as refused:
            EVENTS[event](delivery, attempt, kind)
        # The refusal names the machine's event and the delivery, for the log line that reports it.
        message = str(refused.value)
        if isinstance(refused.value, transitions.Superseded):
            assert message == "attempt 1 of dlv_t finished after its lease ran out"
        else:
            assert message.startswith(f"{LABELS.get(event, event)}: delivery dlv_t "), message
        after = snapshot(delivery)
        if event == "TTL expired":  # the event's own precondition, set by the test
            after["expires_at"] = before["expires_at"]
        assert after == before, "a refused event changes nothing"
        return
    status, wake = expected
    assert (EVENTS[event](delivery, attempt, kind) or []) == wake
    assert delivery.status == status
    check_consistent(delivery, kind)
    if wake:
        assert delivery.enqueued_at == NOW


def test_a_metadata_wait_holds_the_delivery_back_and_its_arrival_makes_it_due_now() -> None:
    delivery, _ = row(STATES["new"])
    assert (
        transitions.wired(delivery, kind="folder", policy=POLICY, now=NOW, metadata_wait=dt.timedelta(minutes=10)) == []
    )
    # Not due for the wait; the TTL counts from its end.
    assert delivery.next_attempt_at == NOW + dt.timedelta(minutes=10)
    assert delivery.expires_at == NOW + dt.timedelta(minutes=10, seconds=POLICY.ttl_seconds)
    assert transitions.held_for_metadata(delivery, kind="folder", now=NOW)
    with pytest.raises(IllegalTransition):
        transitions.claimed(delivery, kind="folder", now=NOW, lease_seconds=LEASE)
    later = NOW + dt.timedelta(minutes=4)
    assert transitions.metadata_arrived(delivery, kind="folder", now=later) == WAKE
    assert (delivery.next_attempt_at, delivery.enqueued_at) == (later, later)
    assert delivery.expires_at == later + dt.timedelta(seconds=POLICY.ttl_seconds)
    assert not transitions.held_for_metadata(delivery, kind="folder", now=later)
    # After the wait the delivery is simply due: nothing holds it any more.
    waited, _ = row(STATES["new"])
    transitions.wired(waited, kind="folder", policy=POLICY, now=NOW, metadata_wait=dt.timedelta(minutes=10))
    assert not transitions.held_for_metadata(waited, kind="folder", now=NOW + dt.timedelta(minutes=10))


@pytest.mark.parametrize("state", WAITING_STATES[:2])
def test_claimed_takes_a_lease_and_counts_the_attempt(state: str) -> None:
    delivery, _ = row(STATES[state])
    transitions.claimed(delivery, kind="folder", now=NOW, lease_seconds=LEASE)
    assert (delivery.attempts, delivery.cycle_attempts) == (2, 2)
    assert delivery.lease_until == NOW + dt.timedelta(seconds=LEASE)
    assert transitions.attempt_started(delivery, generation=3, now=NOW).number == 2


def test_delivered_records_where_and_what_and_closes_the_attempt() -> None:
    delivery, attempt = row(STATES["delivering"])
    _finish(AttemptResult(True, size=10))(delivery, attempt, "folder")
    assert (delivery.path, delivery.sha256, delivery.delivered_generation, delivery.delivered_at) == (
        "/Z1/DOC.pdf",
        SHA,
        1,
        NOW,
    )
    assert (delivery.last_error, delivery.lease_until) == (None, None)
    assert (attempt.outcome, attempt.finished_at, attempt.bytes_sent) == (AttemptOutcome.DELIVERED, NOW, 10)


def test_a_retryable_failure_waits_at_least_the_retry_after() -> None:
    delivery, attempt = row(STATES["delivering"])
    _finish(AttemptResult(False, "HTTP 503", "DestinationError", retry_after=120))(delivery, attempt, "folder")
    assert delivery.next_attempt_at == NOW + dt.timedelta(seconds=120)  # backoff alone: 7.5 s
    assert (delivery.last_error, delivery.enqueued_at) == ("HTTP 503", None)
    assert (attempt.outcome, attempt.error_message) == (AttemptOutcome.FAILED, "HTTP 503")


def test_a_failure_past_max_retries_or_the_ttl_is_final() -> None:
    for change in ({"cycle_attempts": POLICY.max_retries + 1}, {"expires_at": NOW}):
        delivery, attempt = row(STATES["delivering"])
        for name, value in change.items():
            setattr(delivery, name, value)
        _finish(AttemptResult(False, "HTTP 503", "DestinationError"))(delivery, attempt, "folder")
        assert (delivery.status, delivery.next_attempt_at) == (FAILED, None), change


@pytest.mark.parametrize(
    ("event", "state"), [("retried", "failed"), ("wired", "delivered"), ("export empty", "pull delivered")]
)
def test_a_fresh_cycle_restarts_the_count_and_the_ttl(event: str, state: str) -> None:
    delivery, attempt = row(STATES[state])
    EVENTS[event](delivery, attempt, STATES[state].kind)
    assert (delivery.cycle_attempts, delivery.attempts) == (0, 1)  # `attempts` keeps counting
    assert (delivery.cycle_started_at, delivery.next_attempt_at) == (NOW, NOW)
    assert delivery.expires_at == NOW + dt.timedelta(seconds=POLICY.ttl_seconds)


def test_a_late_finish_is_superseded_and_marks_only_its_attempt() -> None:
    delivery, attempt = row(STATES["retrying, due"])
    before = snapshot(delivery)
    with pytest.raises(transitions.Superseded):
        _finish(AttemptResult(True, size=10))(delivery, attempt, "folder")
    assert attempt.outcome == AttemptOutcome.SUPERSEDED
    assert snapshot(delivery) == before
    # A finish of an older attempt while a newer one holds the lease is superseded too.
    holder, old = row(STATES["delivering"])
    holder.attempts = 2
    with pytest.raises(transitions.Superseded):
        _finish(AttemptResult(True, size=10))(holder, old, "folder")
    assert holder.status == DELIVERING


def test_found_identical_is_delivered_with_nothing_sent() -> None:
    delivery, attempt = row(STATES["delivering"])
    _finish(AttemptResult(True, size=10, found=True))(delivery, attempt, "folder")
    assert (attempt.outcome, attempt.bytes_sent, delivery.status) == ("found", 0, DELIVERED)


def test_a_lease_taken_back_or_a_failed_attempt_leaves_the_outcome_unknown() -> None:
    expired, attempt = row(STATES["delivering, lease ran out"])
    transitions.lease_expired(expired, attempt, policy=POLICY, now=NOW, rand=half)
    assert transitions.outcome_unknown(expired)
    # A failure does not prove nothing landed: the connection may have broken after the server stored it.
    failed, attempt = row(STATES["delivering"])
    _finish(AttemptResult(False, "HTTP 503", "DestinationError"))(failed, attempt, "folder")
    assert transitions.outcome_unknown(failed)
    # New content starts clean: nothing of it was sent yet.
    transitions.wired(failed, kind="folder", policy=POLICY, now=NOW)
    assert not transitions.outcome_unknown(failed)
    assert not transitions.outcome_unknown(row(STATES["pending"])[0])


def test_a_lease_is_not_over_at_the_instant_it_ends() -> None:
    delivery, attempt = row(STATES["delivering"])
    delivery.lease_until = NOW
    with pytest.raises(IllegalTransition, match=re.escape(f"holds a lease until {NOW}")):
        transitions.lease_expired(delivery, attempt, policy=POLICY, now=NOW, rand=half)
    transitions.lease_expired(delivery, attempt, policy=POLICY, now=NOW + dt.timedelta(microseconds=1), rand=half)
    assert (attempt.outcome, attempt.error_message) == ("abandoned", transitions.LEASE_EXPIRED)


def test_the_default_words_of_an_error_report_and_an_expired_ttl() -> None:
    delivery, _ = row(STATES["pull exporting"])
    transitions.export_reported(
        delivery,
        ExportStatus.ERROR,
        kind="pull",
        messages=[],
        content=transitions.Delivered(1, "/erp/DOC.pdf", SHA),
        policy=POLICY,
        now=NOW,
    )
    assert delivery.last_error == "the integration reported an error"
    waiting, _ = row(STATES["pending"])
    waiting.last_error, waiting.expires_at = None, NOW
    transitions.ttl_expired(waiting, now=NOW)
    assert waiting.last_error == "not delivered; retry TTL expired"


def test_lease_expiry_closes_a_running_attempt_as_abandoned() -> None:
    delivery, attempt = row(STATES["delivering, lease ran out"])
    transitions.lease_expired(delivery, attempt, policy=POLICY, now=NOW, rand=half)
    assert (attempt.outcome, attempt.finished_at) == (AttemptOutcome.ABANDONED, NOW)
    assert delivery.last_error == transitions.LEASE_EXPIRED


def test_export_reports_keep_the_integration_s_words() -> None:
    delivery, attempt = row(STATES["pull exporting"])
    EVENTS["export error"](delivery, attempt, "pull")
    error = delivery.last_error
    EVENTS["export completed"](delivery, attempt, "pull")
    assert error == "from the ERP"
    assert (delivery.path, delivery.delivered_generation, delivery.last_error) == ("/erp/DOC.pdf", 1, None)


def test_claim_changes_are_the_same_for_a_row_and_for_the_statement() -> None:
    from sqlalchemy.sql.elements import ColumnElement

    values = transitions.claim_changes(
        now=NOW, lease_seconds=LEASE, attempts=Delivery.attempts, cycle_attempts=Delivery.cycle_attempts
    )
    assert isinstance(values["attempts"], ColumnElement)  # attempts + 1 in SQL, evaluated by the database
    assert str(values["attempts"]) == "deliveries.attempts + :attempts_1"
    plain = transitions.claim_changes(now=NOW, lease_seconds=LEASE, attempts=4, cycle_attempts=2)
    assert plain == {
        "status": DELIVERING,
        "lease_until": NOW + dt.timedelta(seconds=LEASE),
        "attempts": 5,
        "cycle_attempts": 3,
        "updated_at": NOW,
    }


@pytest.mark.parametrize("state", WORKER_HOLDS)
def test_a_heartbeat_moves_only_the_lease(state: str) -> None:
    delivery, _ = row(STATES[state])
    before = snapshot(delivery)
    transitions.lease_renewed(delivery, attempt=1, kind="folder", now=NOW, lease_seconds=LEASE)
    after = snapshot(delivery)
    assert after.pop("lease_until") == NOW + dt.timedelta(seconds=LEASE)
    before.pop("lease_until")
    assert after == before


def test_a_heartbeat_of_an_attempt_the_delivery_moved_on_from_is_lease_lost() -> None:
    """The sweeper took the delivery back and another worker claimed it again (attempt 2)."""
    delivery, _ = row(STATES["delivering"])
    delivery.attempts = 2
    with pytest.raises(transitions.LeaseLost, match="no longer held by attempt 1"):
        transitions.lease_renewed(delivery, attempt=1, kind="folder", now=NOW, lease_seconds=LEASE)


def test_the_heartbeat_condition_and_changes_are_the_statement_s() -> None:
    condition = " AND ".join(str(c) for c in transitions.held_by(3))
    assert condition == "deliveries.status = :status_1 AND deliveries.attempts = :attempts_1"
    assert transitions.renewal(now=NOW, lease_seconds=LEASE) == {"lease_until": NOW + dt.timedelta(seconds=LEASE)}


# --- random sequences ---------------------------------------------------------------------------------


class Model:
    """A document with a folder and a pull delivery, driven by random events through the machine."""

    def __init__(self) -> None:
        self.now = NOW
        self.generation = 1
        self.document = Document(id="doc_m", generation=1, status=None)
        self.kinds = {"dlv_f": "folder", "dlv_p": "pull"}
        self.rows = {
            d: Delivery(id=d, document=self.document, attempts=0, cycle_attempts=0, created_at=NOW) for d in self.kinds
        }
        # Attempts workers are still running (a lease may have run out under one), with their generation.
        self.running: dict[str, list[tuple[DeliveryAttempt, int]]] = {d: [] for d in self.kinds}
        self.delivered: list[tuple[str, int]] = []
        self.wire()

    def wire(self) -> None:
        for delivery_id, delivery in self.rows.items():
            transitions.wired(delivery, kind=self.kinds[delivery_id], policy=POLICY, now=self.now)

    def step(self, event: str, delivery_id: str, seconds: int) -> None:
        self.now += dt.timedelta(seconds=seconds)
        delivery, kind = self.rows[delivery_id], self.kinds[delivery_id]
        # A refused event changes nothing (test_every_state_and_event); the sequence goes on.
        with contextlib.suppress(IllegalTransition):
            self.apply(event, delivery, kind)
        transitions.rolled_up(self.document, now=self.now)

    def finish(self, delivery: Delivery, kind: str, attempt: DeliveryAttempt, generation: int, *, ok: bool) -> None:
        verdict, _ = transitions.finished(
            delivery,
            attempt,
            AttemptResult(ok, None if ok else "boom", size=1),
            content=transitions.Delivered(generation, "/p", SHA),
            current_generation=self.generation,
            kind=kind,
            policy=POLICY,
            now=self.now,
            rand=half,
        )
        # Only the attempt holding the lease has its outcome recorded; a stale one is refused above.
        assert attempt.number == delivery.attempts, "a superseded attempt's outcome was recorded"
        if verdict == Finished.DELIVERED:
            self.delivered.append((delivery.id, generation))

    def apply(self, event: str, delivery: Delivery, kind: str) -> None:
        if event == "replace":
            self.generation += 1
            self.document.generation = self.generation
            self.wire()
        elif event == "claim":
            transitions.claimed(delivery, kind=kind, now=self.now, lease_seconds=LEASE)
            attempt = transitions.attempt_started(delivery, generation=self.generation, now=self.now)
            self.running[delivery.id].append((attempt, self.generation))
        elif event in ("succeed", "fail") and self.running[delivery.id]:
            attempt, generation = self.running[delivery.id].pop(0)  # the oldest: perhaps one whose lease ran out
            self.finish(delivery, kind, attempt, generation, ok=event == "succeed")
        elif event == "renew lease" and self.running[delivery.id]:
            attempt, _generation = self.running[delivery.id][-1]  # the newest attempt's heartbeat
            transitions.lease_renewed(delivery, attempt=attempt.number, kind=kind, now=self.now, lease_seconds=LEASE)
        elif event == "expire lease":
            transitions.lease_expired(delivery, None, policy=POLICY, now=self.now, rand=half)
        elif event == "expire TTL":
            transitions.ttl_expired(delivery, now=self.now)
        elif event == "retry":
            transitions.retried(delivery, kind=kind, policy=POLICY, now=self.now)
        elif event.startswith("export "):
            content = transitions.Delivered(self.generation, "/erp", SHA)
            status = ExportStatus(event.removeprefix("export "))
            transitions.export_reported(
                delivery, status, kind=kind, messages=[], content=content, policy=POLICY, now=self.now
            )
            if status == ExportStatus.COMPLETED:
                self.delivered.append((delivery.id, self.generation))


PUSH_EVENTS = ["replace", "claim", "succeed", "fail", "renew lease", "expire lease", "expire TTL", "retry"]
PULL_EVENTS = ["replace", "expire TTL", "retry"] + [f"export {s.value}" for s in ExportStatus]
STEPS = st.tuples(
    st.one_of(
        st.tuples(st.sampled_from(PUSH_EVENTS), st.just("dlv_f")),
        st.tuples(st.sampled_from(PULL_EVENTS), st.just("dlv_p")),
    ),
    # Around the lease (60 s), the first backoff (5-10 s) and the TTL (1 h).
    st.sampled_from([0, 1, 10, 61, 5000]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(STEPS, max_size=40))
def test_random_sequences_stay_consistent(steps: list[tuple[tuple[str, str], int]]) -> None:
    model = Model()
    for (event, delivery_id), seconds in steps:
        model.step(event, delivery_id, seconds)
        assert model.document.status == rollup(d.status for d in model.rows.values())
        for delivery_id_, delivery in model.rows.items():
            check_consistent(delivery, model.kinds[delivery_id_])
        pushed = [(d, g) for d, g in model.delivered if model.kinds[d] == "folder"]
        # A worker records each generation as delivered once: duplicates and late finishes are refused.
        assert len(pushed) == len(set(pushed)), pushed
    folder = model.rows["dlv_f"]
    if folder.status == DELIVERED:
        assert folder.delivered_generation == model.generation, "delivered means the current content"


# --- destinations: pause and circuit breaker -------------------------------------------------------

BREAKER = BreakerPolicy(failures=3, cooldown_seconds=60)
DEST_STATES: dict[str, dict[str, Any]] = {
    "running": {},
    "two failures": {"consecutive_failures": 2},
    "open, cooling": {"consecutive_failures": 3, "breaker_opened_at": NOW - dt.timedelta(seconds=10)},
    "open, cooled": {"consecutive_failures": 3, "breaker_opened_at": NOW - dt.timedelta(seconds=60)},
    "probing": {
        "consecutive_failures": 3,
        "breaker_opened_at": NOW - dt.timedelta(seconds=90),
        "probe_delivery_id": "dlv_t",
    },
    "paused": {"paused_at": NOW - dt.timedelta(seconds=30)},
    "paused, open": {"paused_at": NOW - dt.timedelta(seconds=30), "breaker_opened_at": NOW - dt.timedelta(seconds=90)},
}


def destination(state: str) -> Destination:
    values = {"consecutive_failures": 0, "breaker_opened_at": None, "probe_delivery_id": None, "paused_at": None}
    values |= DEST_STATES[state]
    held = [t for t in (values["paused_at"], values["breaker_opened_at"]) if t is not None]
    return Destination(id=1, public_id="dest_t", kind="folder", held_since=min(held, default=None), **values)


def counted(ok: bool, retryable: bool = True, delivery_id: str = "dlv_other") -> Callable[[Destination], Any]:
    return lambda d: transitions.attempt_counted(
        d, delivery_id=delivery_id, ok=ok, retryable=retryable, policy=BREAKER, now=NOW
    )


def waiting_delivery() -> Delivery:
    return row(STATES["retrying, due"])[0]


DEST_EVENTS: dict[str, Callable[[Destination], Any]] = {
    "failed, retryable": counted(False),
    "failed, for good": counted(False, retryable=False),
    "delivered": counted(True),
    "probe delivered": counted(True, delivery_id="dlv_t"),
    "probe failed": counted(False, delivery_id="dlv_t"),
    "paused": lambda d: transitions.paused(d, now=NOW),
    "resumed": lambda d: transitions.resumed(d, now=NOW),
    "probe chosen": lambda d: transitions.probe_chosen(d, waiting_delivery(), policy=BREAKER, now=NOW),
}

# (event, state) -> the breaker state and whether the destination still holds its deliveries afterwards.
# Every pair not listed is refused and changes nothing.
DEST_ALLOWED: dict[tuple[str, str], tuple[transitions.BreakerState, bool]] = {
    **{
        (event, state): (transitions.BreakerState.CLOSED, state.startswith("paused"))
        for event in ("failed, for good", "delivered")
        for state in ("running", "two failures", "paused")
    },
    **{
        (event, state): (transitions.BreakerState.OPEN, True)
        for event in ("failed, retryable", "failed, for good", "delivered")
        for state in ("open, cooling", "open, cooled", "paused, open")
    },
    ("failed, retryable", "running"): (transitions.BreakerState.CLOSED, False),
    ("failed, retryable", "paused"): (transitions.BreakerState.CLOSED, True),
    ("failed, retryable", "two failures"): (transitions.BreakerState.OPEN, True),
    **{
        (event, "probing"): (transitions.BreakerState.PROBING, True)
        for event in ("failed, retryable", "failed, for good", "delivered")
    },
    ("probe delivered", "probing"): (transitions.BreakerState.CLOSED, False),
    ("probe failed", "probing"): (transitions.BreakerState.OPEN, True),
    **{("paused", s): (transitions.breaker_state(destination(s)), True) for s in DEST_STATES if "paused" not in s},
    ("resumed", "paused"): (transitions.BreakerState.CLOSED, False),
    ("resumed", "paused, open"): (transitions.BreakerState.OPEN, True),
    ("probe chosen", "open, cooled"): (transitions.BreakerState.PROBING, True),
}
# Where no probe runs, the "probe's" outcome is an ordinary attempt's.
for _state in DEST_STATES:
    if _state != "probing":
        DEST_ALLOWED[("probe delivered", _state)] = DEST_ALLOWED[("delivered", _state)]
        DEST_ALLOWED[("probe failed", _state)] = DEST_ALLOWED[("failed, retryable", _state)]
DEST_COLUMNS = ["consecutive_failures", "breaker_opened_at", "probe_delivery_id", "paused_at", "held_since"]


@pytest.mark.parametrize("event", list(DEST_EVENTS))
@pytest.mark.parametrize("state", list(DEST_STATES))
def test_every_destination_state_and_event(state: str, event: str) -> None:
    target = destination(state)
    before = {c: getattr(target, c) for c in DEST_COLUMNS}
    expected = DEST_ALLOWED.get((event, state))
    if expected is None:
        with pytest.raises(IllegalTransition, match=rf"^{event}: destination dest_t "):
            DEST_EVENTS[event](target)
        assert {c: getattr(target, c) for c in DEST_COLUMNS} == before
        return
    DEST_EVENTS[event](target)
    breaker, held = expected
    assert transitions.breaker_state(target) == breaker
    assert (target.held_since is not None) == held, "held iff paused or open"
    assert (target.held_since is not None) == (target.paused_at is not None or target.breaker_opened_at is not None)


def test_releasing_returns_how_long_the_deliveries_were_held() -> None:
    target = destination("paused, open")
    assert transitions.resumed(target, now=NOW) is None  # the breaker still holds them
    target.probe_delivery_id = "dlv_t"
    assert transitions.attempt_counted(
        target, delivery_id="dlv_t", ok=True, retryable=True, policy=BREAKER, now=NOW
    ) == dt.timedelta(seconds=90)
    held = waiting_delivery()
    expires = held.expires_at
    assert expires is not None
    transitions.hold_released(held, dt.timedelta(seconds=90), now=NOW)
    assert held.expires_at == expires + dt.timedelta(seconds=90)


@pytest.mark.parametrize("state", ["delivering", "delivered", "failed"])
def test_only_a_waiting_delivery_is_chosen_as_a_probe_or_has_its_hold_released(state: str) -> None:
    held, _ = row(STATES[state])
    with pytest.raises(IllegalTransition, match=rf"^probe chosen: delivery dlv_t is {STATES[state].status}$"):
        transitions.probe_chosen(destination("open, cooled"), held, policy=BREAKER, now=NOW)
    with pytest.raises(IllegalTransition, match=rf"^hold released: delivery dlv_t is {STATES[state].status}$"):
        transitions.hold_released(held, dt.timedelta(seconds=5), now=NOW)


def test_a_probe_is_due_now_and_its_success_clears_the_count() -> None:
    target, probe = destination("open, cooled"), waiting_delivery()
    probe.next_attempt_at = NOW + dt.timedelta(seconds=300)  # its own backoff said later
    assert transitions.probe_chosen(target, probe, policy=BREAKER, now=NOW) == ("dlv_t", "folder")
    assert (probe.next_attempt_at, probe.enqueued_at) == (NOW, NOW)
    transitions.attempt_counted(target, delivery_id="dlv_t", ok=True, retryable=True, policy=BREAKER, now=NOW)
    assert (target.consecutive_failures, target.breaker_opened_at, target.probe_delivery_id) == (0, None, None)
