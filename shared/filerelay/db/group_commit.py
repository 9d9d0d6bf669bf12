"""Units of work of concurrent threads committed together: one transaction, one COMMIT, for all that wait.

On SQLite one transaction writes at a time (filerelay.db.sqlite_writers), so under load the creates of a
process queue for their turn and each turn costs a BEGIN, a COMMIT and its fsync, and the waits of its
thread for the GIL in between. Here the first thread to arrive leads: it writes its own work and that of
every thread waiting behind it, each in a SAVEPOINT of the one transaction, commits once, and hands each
thread its own outcome. Nobody's answer comes before the COMMIT that made its rows durable, and one work's
failure (a docId that exists, a configuration that moved) rolls back its SAVEPOINT alone. A lone thread
writes as before, in a transaction of its own, without SAVEPOINT.

PostgreSQL takes concurrent writers in parallel and groups their WAL flushes itself: there every work
runs in its own transaction, as it would without this module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from filerelay.db.session import dropped

T = TypeVar("T")

# The most works one transaction takes: it bounds how long the last of them waits for the COMMIT.
MAX_GROUP = 32


class _Work(Generic[T]):
    def __init__(self, work: Callable[[Connection], T]) -> None:
        self.work = work
        self.value: T | None = None
        self.error: BaseException | None = None
        self.finished = False
        self.leads = False  # woken to lead the next group, not with an outcome
        self.woken = threading.Event()


class GroupCommit:
    """Runs `work(connection)` in a transaction and returns its value once committed (`run`)."""

    def __init__(self, engine: Engine, *, max_group: int = MAX_GROUP) -> None:
        self._engine = engine
        self._grouped = engine.dialect.name == "sqlite"
        self._max = max_group
        self._mutex = threading.Lock()
        self._waiting: list[_Work[Any]] = []
        self._led = False  # a thread is leading: new works wait for it

    @property
    def queued(self) -> int:
        """Works waiting for a transaction (the leader's group being written is not counted)."""
        with self._mutex:
            return len(self._waiting)

    def run(self, work: Callable[[Connection], T]) -> T:
        if not self._grouped:
            with self._engine.begin() as connection:
                return work(connection)
        mine = _Work(work)
        with self._mutex:
            self._waiting.append(mine)
            leads = not self._led
            self._led = True
        if not leads:
            mine.woken.wait()
            leads = mine.leads
        if leads:
            self._lead(mine)
        if mine.error is not None:
            raise mine.error
        return mine.value  # type: ignore[return-value]  # set when there is no error

    def _lead(self, mine: _Work[Any]) -> None:
        """Write groups until `mine` is written; then hand the lead to the next waiting thread, if any."""
        try:
            while not mine.finished:
                with self._mutex:
                    group, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
                self._write(group)
        finally:
            with self._mutex:
                if self._waiting:
                    self._waiting[0].leads = True
                    self._waiting[0].woken.set()
                else:
                    self._led = False

    def _write(self, group: list[_Work[Any]]) -> None:
        try:
            with self._engine.begin() as connection:
                if len(group) == 1:
                    group[0].value = group[0].work(connection)
                else:
                    for work in group:
                        _in_savepoint(connection, work)
        except BaseException as exc:
            for work in group:
                if work.error is None:
                    work.error = exc  # its rows went with the transaction
        finally:
            for work in group:
                work.finished = True
                work.woken.set()


def _in_savepoint(connection: Connection, work: _Work[Any]) -> None:
    try:
        with connection.begin_nested():
            work.value = work.work(connection)
    except Exception as exc:
        work.error = exc
        if dropped(exc):
            raise  # the connection is gone, and the transaction with it: every work fails
