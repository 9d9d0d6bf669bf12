"""A running attempt keeps its lease while it lives, and stops uploading once it lost it.

Without a heartbeat a lease had to outlast the slowest upload (900 s, still short for 2 GiB to a slow
SharePoint): a killed worker's delivery waited that long, and an upload that outlived its lease ran on
beside the sweeper's retry, one delivery uploading twice at once. With it the lease is short
(FILERELAY_LEASE_SECONDS, 60 s by default) and renewed every third of it while the worker lives. When a
renewal finds that the attempt no longer holds the delivery (the process stalled past its lease and the
sweeper took it back), the staged bytes stop being readable: every kind reads its payload in chunks, so
its upload fails at the next read, and the kind's own failure path (abort the multipart upload, cancel
the upload session, remove the temporary file) leaves the destination as it was.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import threading
from types import TracebackType
from typing import Any, BinaryIO, cast

from sqlalchemy import update
from sqlalchemy.orm import Session

from filerelay.db.models import Delivery
from filerelay.db.session import session_scope
from filerelay.delivery import transitions
from filerelay.delivery.transitions import LeaseLost
from filerelay.runtime import Runtime

log = logging.getLogger(__name__)

# Renewals per lease: two may fail (a database blip) before the lease runs out.
RENEWALS_PER_LEASE = 3


def renewal_interval(lease_seconds: int) -> float:
    return lease_seconds / RENEWALS_PER_LEASE


def renew(session: Session, *, delivery_id: str, attempt: int, now: dt.datetime, lease_seconds: int) -> bool:
    """Extend the lease if this attempt still holds the delivery, in one conditional UPDATE."""
    result = session.connection().execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, *transitions.held_by(attempt))
        .values(transitions.renewal(now=now, lease_seconds=lease_seconds))
    )
    return result.rowcount == 1


class Heartbeat:
    """`with Heartbeat(runtime, delivery_id=…, attempt=…) as beat:` renews the lease in a thread of its
    own until the block ends; `beat.lost` is set when a renewal finds the lease gone."""

    def __init__(self, runtime: Runtime, *, delivery_id: str, attempt: int) -> None:
        self.lost = threading.Event()
        self._runtime = runtime
        self._delivery_id = delivery_id
        self._attempt = attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{delivery_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        lease = self._runtime.settings.lease_seconds
        while not self._stop.wait(renewal_interval(lease)):
            try:
                with session_scope(self._runtime.sessions) as session:
                    held = renew(
                        session,
                        delivery_id=self._delivery_id,
                        attempt=self._attempt,
                        now=self._runtime.clock.now(),
                        lease_seconds=lease,
                    )
            except Exception as exc:  # the database is away: try again; the sweeper decides if it lasts
                log.warning("delivery %s: cannot renew its lease: %s", self._delivery_id, exc)
                continue
            if not held:
                log.warning(
                    "delivery %s attempt %d lost its lease (taken back while it ran): stopping the upload",
                    self._delivery_id,
                    self._attempt,
                )
                self.lost.set()
                return


def guarded(stream: BinaryIO, lost: threading.Event | None) -> BinaryIO:
    """`stream`, unreadable once `lost` is set (reads raise LeaseLost)."""
    return stream if lost is None else cast(BinaryIO, _Guarded(stream, lost))


class _Guarded:
    def __init__(self, stream: BinaryIO, lost: threading.Event) -> None:
        self._stream = stream
        self._lost = lost

    def _check(self) -> None:
        if self._lost.is_set():
            raise LeaseLost

    def read(self, size: int = -1) -> bytes:
        self._check()
        return self._stream.read(size)

    def readinto(self, buffer: Any) -> int:
        self._check()
        return cast(int, self._stream.readinto(buffer))  # type: ignore[attr-defined]

    def fileno(self) -> int:
        # A file descriptor would let a library read around the guard (sendfile).
        raise io.UnsupportedOperation("a guarded payload has no file descriptor")

    def __getattr__(self, name: str) -> Any:  # seek, tell, close, ...: the staged file's own
        return getattr(self._stream, name)

    def __enter__(self) -> _Guarded:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()
