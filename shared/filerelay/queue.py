"""The producer side of the delivery queues: names, broker configuration, and wake-ups after commit.

A queue carries wake-ups, never deliveries: a wake-up says "deliveries of this kind are due", and the
worker that takes it claims them from the database in batches (filerelay.delivery.drain). Any wake-up
can be lost or duplicated without losing or doubling a delivery: the row is the truth, a duplicate
claims nothing, and the sweeper wakes a kind whose due work nobody took
(docs/architecture.md#how-a-delivery-is-woken-and-claimed).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filerelay.destinations import REGISTRY
from filerelay.destinations.base import is_pushed, pushed_kinds
from filerelay.settings import Settings

if TYPE_CHECKING:
    # Celery is imported where an app is made: the embedded processes send and take no message, and
    # importing it (with kombu) costs each of them about 15 MiB.
    from celery import Celery

log = logging.getLogger(__name__)

# The wake-up of one delivery, as earlier versions sent it: still taken, so an upgrade drops none.
DELIVER_TASK = "filerelay.deliver"
# Every destination kind, as registered (filerelay.destinations); those a worker pushes to have a queue and
# a worker pool each, derived from the kind's own declaration.
KINDS = tuple(REGISTRY)
PUSHED = pushed_kinds()


def queue_name(kind: str) -> str:
    return f"deliver.{kind}"


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "task_acks_late": True,
        # One wake-up in hand per drain slot: a second would sit in a busy process while another one idles.
        "worker_prefetch_multiplier": 1,
        # And none while every slot drains: a drain is acknowledged when it starts, which frees the
        # prefetch count, so a busy process took the next wake-up (its own call for help, which then waited
        # for its drain to end while the other processes idled, the kind's mark holding back any other).
        "worker_disable_prefetch": True,
        "task_ignore_result": True,
        "result_backend": None,
        "task_default_queue": queue_name("folder"),
        "task_create_missing_queues": True,
        # A delivery outliving the visibility timeout would be redelivered while running; the lease
        # makes that harmless, and the long timeout keeps it rare.
        "broker_transport_options": {"visibility_timeout": 6 * 3600},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
    }
    return config


def make_celery(settings: Settings, name: str = "filerelay") -> Celery:
    from celery import Celery

    app = Celery(name, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def make_producer(settings: Settings) -> Celery:
    """The Celery app a process sends wake-ups with: one that gives up at once when the broker is down.

    SAP waits for its 201 in a dialog or batch work process, and the wake-up is not needed for it (the
    sweeper sends any that did not go): kombu's default of retrying the connection with growing pauses
    cost every create about 6 s while Redis refused connections."""
    app = make_celery(settings, name="filerelay-producer")
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "max_retries": 0,
        # Loopback or in-cluster Redis answers in well under a millisecond: these bound one that hangs.
        "socket_connect_timeout": 0.3,
        "socket_timeout": 1.0,
    }
    return app


# A wake-up says "work of this kind is waiting"; the deliveries themselves are found in the database.
DRAIN_TASK = "filerelay.drain"
# Outstanding wake-ups are marked in Redis under this prefix (embedded: files in the broker folder), so at
# most one per kind waits in the broker however many documents arrive or how often the sweeper runs.
WAKE_KEY = "filerelay:wake:"
# A mark outlives no lost message for long: the sweeper sends again after the wake grace (see `wake`),
# and this bounds a mark whose message can never come (a Redis restored from an old snapshot).
WAKE_MARK_SECONDS = 3600


class Enqueuer:
    """Sends wake-ups, one per destination kind at a time. Failures are logged, never raised: the sweeper
    sends what did not go.

    A kind's wake-up is marked outstanding (SET NX in Redis, O_EXCL file when embedded) and sent only if
    no other is; the worker that takes it clears the mark before it claims, so work committed after the
    clearing sends a new wake-up, and work committed before it is claimed by that worker. After a failed
    send, wake-ups are skipped for `pause` seconds: a broker that hangs rather than refuses would
    otherwise cost each create its connect timeout."""

    def __init__(self, settings: Settings, *, pause: float = 5.0) -> None:
        self._pause = pause
        self._down_until = 0.0
        # Embedded, the mark is the message (the worker watches the folder): no Celery app is made.
        self._app = None if settings.embedded_broker else make_producer(settings)
        self._marks: Marks = FolderMarks(settings.broker_dir / "wake") if self._app is None else RedisMarks(settings)

    def enqueue(self, deliveries: Iterable[tuple[str, str]]) -> int:
        """Wake the kinds of these (delivery id, kind) pairs; the number of wake-ups sent."""
        return self.wake({kind for _, kind in deliveries})

    def wake(self, kinds: Iterable[str], *, repair_after: float | None = None) -> int:
        """Send a wake-up for each kind that has none outstanding. With `repair_after` (the sweeper's), a
        mark older than that whose queue is empty is taken for a lost message and sent again."""
        sent = 0
        for kind in sorted(k for k in set(kinds) if is_pushed(k)):
            if time.monotonic() < self._down_until:
                break
            try:
                if self._marks.mark(kind) or (repair_after is not None and self._lost(kind, repair_after)):
                    self._send(kind)
                    sent += 1
            except Exception as exc:
                self._down_until = time.monotonic() + self._pause
                log.warning(
                    "could not send the wake-up of %s (%s); none is sent for %.0f s, the sweeper sends what waits",
                    kind,
                    type(exc).__name__,
                    self._pause,
                )
        return sent

    def _lost(self, kind: str, older_than: float) -> bool:
        age = self._marks.age(kind)
        if age is None or age < older_than or self._marks.queued(kind):
            return False
        self._marks.renew(kind)
        return True

    def _send(self, kind: str) -> None:
        if self._app is None:
            return
        try:
            self._app.send_task(DRAIN_TASK, args=(kind,), queue=queue_name(kind), retry=False)
        except Exception:
            self._marks.clear(kind)  # not sent: the next create or sweep may try again
            raise

    def taken(self, kind: str) -> bool:
        """A worker took the kind's wake-up: the next one may be sent. False if there was none."""
        return self._marks.clear(kind)

    def outstanding(self, kind: str) -> bool:
        return self._marks.age(kind) is not None

    def ping(self) -> None:
        """Raise if the broker cannot be reached (at once: no retries)."""
        if self._app is None:
            return
        with self._app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=2)


class Marks:
    """Where outstanding wake-ups are marked, one per kind."""

    def mark(self, kind: str) -> bool:
        """Mark the kind's wake-up outstanding; False if one already is."""
        raise NotImplementedError

    def clear(self, kind: str) -> bool:
        raise NotImplementedError

    def renew(self, kind: str) -> None:
        raise NotImplementedError

    def age(self, kind: str) -> float | None:
        """Seconds since the mark was set; None when no wake-up is outstanding."""
        raise NotImplementedError

    def queued(self, kind: str) -> bool:
        """Whether a wake-up of the kind waits in the broker (not yet taken by a worker)."""
        raise NotImplementedError


class RedisMarks(Marks):
    def __init__(self, settings: Settings) -> None:
        import redis  # celery[redis] brings it

        # Loopback or in-cluster Redis answers in well under a millisecond: the timeouts bound one that hangs.
        self._redis = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=0.3, socket_timeout=1.0)

    def mark(self, kind: str) -> bool:
        return bool(self._redis.set(WAKE_KEY + kind, repr(time.time()), nx=True, ex=WAKE_MARK_SECONDS))

    def clear(self, kind: str) -> bool:
        return bool(self._redis.delete(WAKE_KEY + kind))

    def renew(self, kind: str) -> None:
        self._redis.set(WAKE_KEY + kind, repr(time.time()), ex=WAKE_MARK_SECONDS)

    def age(self, kind: str) -> float | None:
        value = self._redis.get(WAKE_KEY + kind)
        return None if value is None else time.time() - float(value)

    def queued(self, kind: str) -> bool:
        return bool(self._redis.llen(queue_name(kind)))


class FolderMarks(Marks):
    """The embedded wake-ups: an empty file per kind, created exclusively, removed by the worker taking it.
    Nothing is written into it, so no reader can find it half-written."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def mark(self, kind: str) -> bool:
        try:
            os.close(os.open(self.folder / kind, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        return True

    def clear(self, kind: str) -> bool:
        try:
            (self.folder / kind).unlink()
        except FileNotFoundError:
            return False
        return True

    def renew(self, kind: str) -> None:
        (self.folder / kind).touch()

    def age(self, kind: str) -> float | None:
        try:
            return time.time() - (self.folder / kind).stat().st_mtime
        except FileNotFoundError:
            return None

    def queued(self, kind: str) -> bool:
        return (self.folder / kind).exists()

    def waiting(self) -> list[str]:
        """The kinds with a wake-up outstanding."""
        return sorted(entry.name for entry in os.scandir(self.folder) if entry.name in KINDS)


def queue_depths(settings: Settings) -> dict[str, int]:
    """Wake-ups waiting in each delivery queue, by queue name (0 or 1 each: they are coalesced); not
    those a worker has taken. For /metrics and the worker's watchdog; the backlog itself is counted in
    the database (filerelay.delivery.backlog). Raises when the broker cannot be read."""
    names = [queue_name(kind) for kind in KINDS]
    if settings.embedded_broker:
        waiting = set(FolderMarks(settings.broker_dir / "wake").waiting())
        return {queue_name(kind): int(kind in waiting) for kind in KINDS}
    import redis  # only a Redis broker needs it; celery[redis] brings it

    if not settings.broker_url.startswith(("redis://", "rediss://")):
        scheme = settings.broker_url.partition(":")[0]  # never the whole URL: it may carry a password
        raise ValueError(f"queue depth is only known for Redis and the embedded broker, not {scheme}")
    # kombu keeps a Redis queue as a list named after it; we send no priorities, so no priority sub-lists.
    client = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(name)
            return dict(zip(names, (int(n) for n in pipe.execute()), strict=True))
    finally:
        client.close()
