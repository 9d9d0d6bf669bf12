"""A woken worker drains its kinds: it claims due deliveries a batch at a time as its threads free up,
uploads them in parallel, and records the ones that ended together with its next claim, in one
transaction, until nothing is due.

One wake-up carries as much work as is waiting, so the broker costs nothing per delivery. Each
delivery still runs through the same claim, heartbeat, upload and finish as alone (and the same
state machine decides it); only the statements are shared: one claim for a batch of deliveries, and
in its transaction the finish of all that ended meanwhile (alone when no claim comes within
RECORD_SECONDS). A slow upload holds only its own thread: the others keep claiming and finishing
around it, so a slow destination never holds a fast one's batch.

When a claim fills every free thread, more may be waiting than this process can take: it wakes the
kind again, so another worker process (or pod) joins in. Several drainers of one kind never claim
the same delivery (SKIP LOCKED on PostgreSQL; SQLite takes one writer at a time).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from filerelay.delivery import service
from filerelay.delivery.heartbeat import Heartbeat
from filerelay.delivery.service import Claim, Result
from filerelay.destinations import get_kind
from filerelay.runtime import Runtime

log = logging.getLogger(__name__)

# How long a drain may go on before it returns and wakes its kind again (when work remains): the worker
# takes its other kinds' wake-ups meanwhile, and its watchdog sees wake-ups taken.
DRAIN_SECONDS = 30.0
# How often a drain with room looks again for work that arrived while it ran (a create's wake-up finds
# the mark cleared by this drain and is sent for another drainer, which may be this one).
LOOK_AGAIN_SECONDS = 0.05
# At most this often a drain whose claims fill its threads wakes its kind for another worker to join.
HELP_SECONDS = 1.0
# How long what ended may wait to be recorded with the next claim (one transaction for both) before it
# is recorded alone. Not for kinds that keep no copy to ask about (an e-mail, a webhook call): a worker
# killed before the record makes the next attempt send again, a second message, so they are recorded
# at once.
RECORD_SECONDS = 0.05
# Deliveries claimed at a time: a claim's transaction (which records what ended, too) costs mostly per
# statement, not per row, so the more it serves the better; but what a process claims waits for its
# threads, out of reach of other workers. So a batch is what the threads will start within
# AHEAD_SECONDS at the uploads' recent pace: up to MAX_BATCH for fast uploads, the threads' worth for
# slow ones (a slow destination's deliveries spread over the workers that take its wake-ups).
AHEAD_SECONDS = 0.5
MAX_BATCH = 16
# The weight of the latest upload in the running mean of their durations.
PACE_WEIGHT = 0.2


@dataclass
class _Drain:
    """One drain's progress: what runs, what ended and is not recorded yet, and whether the last claim
    found less than it asked for."""

    kinds: list[str]
    arrived: Callable[[], bool]
    deadline: float
    running: dict[Future[Result], Claim] = field(default_factory=dict)
    ended: list[tuple[Claim, Result]] = field(default_factory=list)
    ended_since: float = 0.0
    attempts: int = 0
    exhausted: bool = False
    helped: float = 0.0


class Drainer:
    """A process's deliveries in parallel: `concurrency` upload threads shared by every drain it runs."""

    def __init__(self, runtime: Runtime, *, concurrency: int, rand: Callable[[], float] = random.random) -> None:
        self.runtime = runtime
        self.concurrency = concurrency
        self._rand = rand
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="delivery")
        self._pace: dict[str, float] = {}  # each kind's running mean of upload durations, seconds
        self._lock = threading.Lock()
        self._busy = 0  # uploads running in the pool, over every drain
        self._draining: set[frozenset[str]] = set()
        self._nudged: dict[frozenset[str], threading.Event] = {}
        # Set to stop: the drains claim nothing more, and return once what they hold has ended.
        self.stopping = threading.Event()

    def drain(
        self, kinds: Sequence[str], *, seconds: float = DRAIN_SECONDS, arrived: Callable[[], bool] | None = None
    ) -> int:
        """Deliver what is due of `kinds` until nothing is (or `seconds` passed: the kinds are then woken
        again); the number of attempts made. `arrived` says whether new work was announced meanwhile (the
        embedded worker's wake-up files); a second drain of the same kinds while this one runs says so too,
        and returns at once."""
        key = frozenset(kinds)
        with self._lock:
            if key in self._draining:
                self._nudged[key].set()
                return 0
            self._draining.add(key)
            self._nudged[key] = threading.Event()
        nudged = self._nudged[key]
        try:
            return self._drain(list(kinds), lambda: nudged.is_set() or bool(arrived and arrived()), seconds)
        finally:
            with self._lock:
                self._draining.discard(key)

    def _drain(self, kinds: list[str], arrived: Callable[[], bool], seconds: float) -> int:
        state = _Drain(kinds, arrived, deadline=time.monotonic() + seconds)
        while True:
            over = time.monotonic() >= state.deadline or self.stopping.is_set()
            if over and not state.running:
                self._record(kinds, state.ended, 0)
                if not state.exhausted and not self.stopping.is_set():
                    self.runtime.enqueuer.wake(kinds)  # what remains goes to the next wake-up
                return state.attempts
            if self._claimed_or_recorded(state, over) and not state.running:
                return state.attempts
            if not state.running:  # other drains hold every thread: wait for one
                time.sleep(LOOK_AGAIN_SECONDS)
                continue
            done, _ = wait(state.running, timeout=LOOK_AGAIN_SECONDS, return_when=FIRST_COMPLETED)
            if done and not state.ended:
                state.ended_since = time.monotonic()
            state.ended += [(state.running.pop(future), _outcome(future)) for future in done]

    def _claimed_or_recorded(self, state: _Drain, over: bool) -> bool:
        """Claim a batch and record what ended, in one transaction, when either is due; whether it did."""
        batch = self._batch(state.kinds)
        room = self._room(batch)
        # Claim while the last claim filled its batch, when new work was announced, and once more when
        # everything claimed has ended (it may have arrived unannounced meanwhile); a batch at a time
        # while uploads run.
        claim = (
            not over
            and room > 0
            and (not state.exhausted or not state.running or state.arrived())
            and (room >= batch or not state.running)
        )
        # What ended is recorded with the next claim; alone once it waited its time, or when nothing
        # else runs.
        waited = time.monotonic() - state.ended_since
        record = bool(state.ended) and (
            not state.running or waited >= record_wait([claim.kind for claim, _ in state.ended])
        )
        if not (claim or record):
            return False
        if claim:
            self._nudged[frozenset(state.kinds)].clear()
        limit = min(room, batch) if claim else 0
        claims = self._record(state.kinds, state.ended, limit)
        state.ended = []
        state.attempts += len(claims)
        for taken in claims:
            state.running[self._submit(taken)] = taken
        if claim:
            state.exhausted = len(claims) < limit
            if not state.exhausted and time.monotonic() - state.helped >= HELP_SECONDS:
                state.helped = time.monotonic()
                self.runtime.enqueuer.wake(state.kinds)  # more than this process can take: call for help
        return True

    def _batch(self, kinds: list[str]) -> int:
        """How many to claim at a time: what the threads start within AHEAD_SECONDS at the recent pace
        of the slowest of `kinds` (two threads' worth before any upload ended), at least the threads'
        worth."""
        with self._lock:
            paces = [self._pace[kind] for kind in kinds if kind in self._pace]
        return claim_batch(self.concurrency, max(paces) if paces else None)

    def _room(self, batch: int) -> int:
        """Claims this process can take now: its threads' worth running and up to a batch and a half
        waiting (a batch is claimed while half a batch still waits: the threads never wait for a claim),
        less those running or waiting."""
        with self._lock:
            return self.concurrency + batch + batch // 2 - self._busy

    def _record(self, kinds: list[str], ended: list[tuple[Claim, Result]], limit: int) -> list[Claim]:
        """Record what ended and claim up to `limit` more, in one transaction."""
        if limit <= 0:  # nothing to claim: the finish alone (once, should it fail)
            if ended:
                self._finish(ended)
            return []
        try:
            return service.finished_and_claimed(self.runtime, ended, kinds=kinds, limit=limit, rand=self._rand)
        except Exception:  # the database away, or the claim met another worker's locks: the finish alone
            log.exception("could not claim deliveries of %s", ", ".join(kinds))
        if ended:
            self._finish(ended)
        return []

    def _submit(self, taken: Claim) -> Future[Result]:
        with self._lock:
            self._busy += 1
        # The lease is kept from the claim on, also while the delivery waits for a thread.
        beat = Heartbeat(self.runtime, delivery_id=taken.delivery_id, attempt=taken.attempt).__enter__()
        future = self._pool.submit(self._timed, taken, beat)
        future.add_done_callback(lambda done: self._freed(done, beat))
        return future

    def _timed(self, taken: Claim, beat: Heartbeat) -> Result:
        started = time.monotonic()
        try:
            return service.attempted(self.runtime, taken, beat)
        finally:
            took = time.monotonic() - started
            with self._lock:
                pace = self._pace.get(taken.kind, took)
                self._pace[taken.kind] = pace + PACE_WEIGHT * (took - pace)

    def _freed(self, _: Future[Result], beat: Heartbeat) -> None:
        beat.__exit__(None, None, None)
        with self._lock:
            self._busy -= 1

    def _finish(self, ended: list[tuple[Claim, Result]]) -> None:
        try:
            service.finished_all(self.runtime, ended, self._rand)
        except Exception:
            # Not recorded: the leases run out and the sweeper takes the deliveries back; their next
            # attempt asks the destination whether the content is already there before sending again.
            log.exception("could not record %d finished deliveries; their leases will run out", len(ended))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def claim_batch(concurrency: int, pace: float | None) -> int:
    """Deliveries to claim at a time with `concurrency` threads whose uploads take `pace` seconds (None:
    not known yet): what the threads start within AHEAD_SECONDS, at most MAX_BATCH, at least the
    threads' worth; two threads' worth while the pace is unknown."""
    if pace is None:
        return 2 * concurrency
    ahead = int(concurrency * AHEAD_SECONDS / max(pace, 0.001))
    return max(concurrency, min(MAX_BATCH, ahead))


def record_wait(kinds: Sequence[str]) -> float:
    """How long attempts of `kinds` that ended may wait to be recorded with the next claim: RECORD_SECONDS,
    none when one of them keeps no copy that could be asked about (a kill before the record means a
    second message)."""
    return 0.0 if any(not get_kind(kind).readable for kind in kinds) else RECORD_SECONDS


def _outcome(future: Future[Result]) -> Result:
    try:
        return future.result()
    except Exception as exc:  # perform turns every failure into a Result; this is a bug around it
        log.exception("an attempt raised")
        return Result(False, f"{type(exc).__name__}: {exc}", type(exc).__name__)
