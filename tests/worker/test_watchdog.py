"""The worker's watchdog decides, from what waits in its queues, whether it is busy and when it last took a
wake-up, whether the worker is taking work (filerelay.worker.watchdog); a stopped one exits to be started
again. Its clock and its two readings are given, so each case is one sequence of checks."""

from __future__ import annotations

from dataclasses import dataclass

from filerelay.worker.watchdog import Watchdog

STALL = 60.0


@dataclass
class World:
    now: float = 1000.0
    waiting: int | None = 0
    busy: bool = False

    def watchdog(self) -> Watchdog:
        return Watchdog(lambda: self.waiting, lambda: self.busy, stall_seconds=STALL, clock=lambda: self.now)


def test_wake_ups_waiting_and_none_taken_for_the_stall_time_is_a_stopped_worker() -> None:
    world = World()
    dog = world.watchdog()
    world.now += 600  # idle for ten minutes: nothing waited, nothing to take
    assert dog.check()
    world.waiting = 5  # the sweeper sends wake-ups; an idle worker is not judged on its quiet past
    assert dog.check()
    world.now += STALL - 1
    assert dog.check()
    world.now += 2
    assert not dog.check()


def test_a_wake_up_taken_starts_the_count_again() -> None:
    world = World(waiting=5)
    dog = world.watchdog()
    assert dog.check()
    world.now += STALL - 1
    dog.taken()
    world.now += STALL - 1
    assert dog.check()
    world.now += 2
    assert not dog.check()


def test_a_busy_worker_or_an_unreadable_broker_or_an_empty_queue_is_not_judged() -> None:
    world = World(waiting=5, busy=True)
    dog = world.watchdog()
    assert dog.check()
    world.now += 10 * STALL  # every thread on a long upload: taking nothing is right
    assert dog.check()
    world.busy, world.waiting = False, None  # Redis down: Celery's reconnect, not ours to judge
    world.now += 10 * STALL
    assert dog.check()
    world.waiting = 0
    world.now += 10 * STALL
    assert dog.check()
    world.waiting = 3  # waiting again: counted from now, not from the last take long ago
    assert dog.check()
    world.now += STALL + 1
    assert not dog.check()
