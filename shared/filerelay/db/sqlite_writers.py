"""SQLite writers take turns in a queue that hands the turn over the moment the last one commits.

SQLite lets one transaction write at a time. The others wait in its busy handler, which sleeps in steps
of 1 to 100 ms and then tries again, so a waiting writer often sleeps on long after the lock was freed,
and one that is unlucky several times in a row waits over a second (16 concurrent `create`s on the
embedded defaults: p99 1.2 s, the database idle between turns). Here a writing transaction first takes
its turn: a thread lock among the threads of its process, then an exclusive `flock` on a file beside the
database among the processes (the API's gunicorn workers, the worker, the sweeper, the CLI). Both wake a
waiter as soon as they are released, which happens right after COMMIT or ROLLBACK.

SQLite's own lock still guards the file: a process that does not take turns (the `sqlite3` shell) only
waits in the busy handler as before. Reading transactions (`read_scope`: BEGIN DEFERRED, a WAL snapshot)
take no turn and wait for no writer.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from typing import Any

from sqlalchemy.exc import OperationalError

# SQLite's busy timeout on every connection (filerelay.db.session), and how long a thread waits for its
# process's turn: either way a writer gives up with "database is locked" after this long.
BUSY_TIMEOUT_SECONDS = 30.0
LOCK_SUFFIX = "-writer.lock"

_queues: dict[tuple[int, str], _Turns] = {}
_queues_lock = threading.Lock()


class _Turns:
    """The turns to write to one database file, in one process."""

    def __init__(self, database: str) -> None:
        self._thread = threading.Lock()
        self._fd = os.open(database + LOCK_SUFFIX, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)

    def take(self) -> None:
        if not self._thread.acquire(timeout=BUSY_TIMEOUT_SECONDS):
            # What SQLite itself says after its busy timeout, as SQLAlchemy would have raised it.
            refused = sqlite3.OperationalError("database is locked")
            raise OperationalError("BEGIN IMMEDIATE", None, refused)
        try:
            # No timeout: the holder is inside a write transaction, which only COMMIT, ROLLBACK or its
            # process's end (the kernel drops its lock) finishes; this thread's process-mates wait above.
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread.release()
            raise

    def give_back(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()


def _turns(database: str) -> _Turns:
    # Keyed by process too: a forked process must not share its parent's open file (nor its lock).
    key = (os.getpid(), os.path.realpath(database))
    with _queues_lock:
        found = _queues.get(key)
        if found is None:
            found = _queues[key] = _Turns(key[1])
        return found


class TurnTakingConnection(sqlite3.Connection):
    """A pysqlite connection that writes in turns (`sqlite3.connect(..., factory=TurnTakingConnection)`):
    `begin_writing` waits for the turn, and the COMMIT, ROLLBACK or close that ends the transaction gives
    it back."""

    def __init__(self, database: str | bytes | os.PathLike[Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._turns = _turns(os.fsdecode(database))
        self._writing = False

    def begin_writing(self) -> None:
        self._turns.take()
        self._writing = True

    def end_writing(self) -> None:
        if self._writing:
            self._writing = False
            self._turns.give_back()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_writing()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_writing()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.end_writing()
