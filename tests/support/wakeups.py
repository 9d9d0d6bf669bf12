"""The wake-ups outstanding in the delivery queues: at most one per destination kind, whatever the number
of deliveries behind it (filerelay.queue). What tests look at instead of counting messages per delivery."""

from __future__ import annotations

import redis

from filerelay.queue import KINDS, WAKE_KEY, FolderMarks, queue_name
from filerelay.runtime import Runtime


def woken_kinds(runtime: Runtime) -> list[str]:
    """The kinds with a wake-up outstanding in the embedded broker (a file per kind), sorted."""
    return FolderMarks(runtime.settings.broker_dir / "wake").waiting()


def take_wakeups(runtime: Runtime) -> list[str]:
    """Take every outstanding wake-up as a worker does before it claims (its mark cleared), so what is
    committed afterwards has to wake its kind anew; the kinds taken."""
    return [kind for kind in woken_kinds(runtime) if runtime.enqueuer.taken(kind)]


def redis_wakeups(client: redis.Redis) -> dict[str, tuple[bool, int]]:
    """For each kind with anything in Redis: (its wake-up marked outstanding, messages in its queue)."""
    found = {kind: (bool(client.exists(WAKE_KEY + kind)), int(client.llen(queue_name(kind)))) for kind in KINDS}
    return {kind: state for kind, state in found.items() if state != (False, 0)}
