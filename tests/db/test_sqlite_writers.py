"""filerelay.db.sqlite_writers on real SQLite files: a writer waits for its turn (between threads and
between processes) instead of in SQLite's busy handler, and every way a transaction ends gives the turn
back. SQLite's busy timeout is cut to 50 ms here: a writer that waited in it would fail with "database is
locked" long before the holder lets go."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from filerelay.db.session import make_engine, make_session_factory, read_scope

BUSY_MS = 50
HOLD_SECONDS = 0.5  # ten busy timeouts


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'writers.db'}"


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute(f"PRAGMA busy_timeout={BUSY_MS}"))
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (k TEXT)")
    yield engine
    engine.dispose()


def write(engine: Engine, key: str, *, hold: float = 0.0) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (?)", (key,))
        time.sleep(hold)


def keys(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(row[0] for row in connection.exec_driver_sql("SELECT k FROM t"))


def test_threads_of_a_process_write_in_turns(engine: Engine) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            write(engine, f"t{n}", hold=0.02)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert keys(engine) == [f"t{n}" for n in range(8)]


HOLDER = """
import sys, time
from filerelay.db.session import make_engine
engine = make_engine(sys.argv[1])
with engine.begin() as connection:
    connection.exec_driver_sql("INSERT INTO t VALUES ('other process')")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
print("committed", flush=True)
"""


def test_a_writer_waits_for_another_process_to_commit(url: str, engine: Engine) -> None:
    command = [sys.executable, "-c", HOLDER, url, str(HOLD_SECONDS)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        write(engine, "this process")  # would fail after 50 ms in SQLite's busy handler
        assert holder.stdout.readline().strip() == "committed"
    assert holder.returncode == 0
    assert keys(engine) == ["other process", "this process"]


def test_a_reading_transaction_takes_no_turn(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES ('written')")
        read: list[list[str]] = []
        reader = threading.Thread(target=lambda: read.append(_read(sessions)))
        reader.start()
        reader.join(30)
        assert read == [[]]  # it read its snapshot while the writer still held its turn


def _read(sessions: sessionmaker[Session]) -> list[str]:
    with read_scope(sessions) as session:
        return [row[0] for row in session.connection().exec_driver_sql("SELECT k FROM t")]


def test_every_end_of_a_transaction_gives_the_turn_back(engine: Engine) -> None:
    # Rolled back on an error.
    with pytest.raises(RuntimeError), engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES ('rolled back')")
        raise RuntimeError("the work failed")
    # Invalidated: the connection closed under its transaction.
    connection = engine.connect()
    connection.begin()
    connection.exec_driver_sql("INSERT INTO t VALUES ('lost')")
    connection.invalidate()
    connection.close()
    # A BEGIN that failed.
    failing = engine.connect()

    def refuse(statement_conn: Connection, *args: object) -> None:
        raise OperationalError("BEGIN IMMEDIATE", None, RuntimeError("disk I/O error"))

    event.listen(failing, "before_cursor_execute", refuse)
    with pytest.raises(OperationalError):
        failing.begin()
    event.remove(failing, "before_cursor_execute", refuse)
    failing.close()
    # Another thread still gets its turn (it would wait forever for one never given back).
    other = threading.Thread(target=write, args=(engine, "after"))
    other.start()
    other.join(10)
    assert not other.is_alive()
    assert keys(engine) == ["after"]
