"""Engines and the one session scope used by requests, tasks and the sweeper alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from filerelay.db.sqlite_writers import BUSY_TIMEOUT_SECONDS, TurnTakingConnection
from filerelay.db.types import attach_keyring

if TYPE_CHECKING:
    from filerelay.secrets_box import Keyring
    from filerelay.settings import Settings

READ_ONLY = "filerelay_read_only"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling breaks SAVEPOINT and defers BEGIN; we issue BEGIN ourselves
        # (the SQLAlchemy "serializable isolation / savepoints" recipe for the sqlite dialect).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, in the writer's turn, instead of failing with "database
        # is locked" when a reader upgrades. A read-only unit of work (read_scope) begins deferred: in WAL
        # mode it reads a snapshot and never waits for, or blocks, a writer.
        if conn.get_execution_options().get(READ_ONLY, False):
            conn.exec_driver_sql("BEGIN")
            return
        writer = conn.connection.driver_connection
        turns = isinstance(writer, TurnTakingConnection)  # not an in-memory database
        if turns:
            writer.begin_writing()  # queued here, not in SQLite's busy handler (filerelay.db.sqlite_writers)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if turns:
                writer.end_writing()
            raise


def make_engine(url: str, *, keyring: Keyring | None = None, **kwargs: Any) -> Engine:
    """An engine for `url`; with `keyring`, it reads and writes sealed columns (Destination.secrets).
    Without, touching one raises: migrations and tools that never need the secrets run without keys."""
    # An error's message never lists the statement's parameters: they may be a secret on its way to
    # being sealed, or a document's metadata, and such messages end up in logs.
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"factory": TurnTakingConnection, **kwargs.get("connect_args", {})}
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
    else:
        kwargs.setdefault("pool_pre_ping", True)
        engine = create_engine(url, **kwargs)
        _wait_for_the_server(engine, CONNECT_WAIT_SECONDS)
    if keyring is not None:
        attach_keyring(engine, keyring)
    return engine


def engine_for(settings: Settings, **kwargs: Any) -> Engine:
    """The process's engine: its database, with its encryption keys (filerelay.encryption_keys)."""
    from filerelay.encryption_keys import encryption_keyring

    return make_engine(settings.database_url, keyring=encryption_keyring(settings), **kwargs)


# How long a new connection waits for a database that refuses it (restarting, failing over) before the
# error reaches the caller. A PostgreSQL restart takes about a second: SAP, whose create would have got a
# 500 and been retried minutes later, gets its 201 a moment late instead.
CONNECT_WAIT_SECONDS = 15.0


def _wait_for_the_server(engine: Engine, seconds: float) -> None:
    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        deadline = time.monotonic() + seconds
        pause = 0.05
        while True:
            try:
                return dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def read_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work that only reads: on SQLite it takes no write lock, so a request's lookups never
    queue behind another request's commit. Writing in it is a bug, and SQLite refuses a write that
    races another writer's ("database is locked"); PostgreSQL treats it as any session."""
    with session_scope(factory) as session:
        session.connection(execution_options={READ_ONLY: True})
        yield session


T = TypeVar("T")

# Tries of a unit of work whose connection the database dropped (a restart ends every session): the
# second runs on a fresh connection, which waits for the server to be back (CONNECT_WAIT_SECONDS).
DISCONNECT_TRIES = 3


def dropped(exc: BaseException) -> bool:
    """Whether the database closed the connection under a statement (restart, failover, killed backend)."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def read_again_if_dropped(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """`work` in a read_scope, run again when the database dropped its connection: it wrote nothing, so
    running it twice changes nothing, and the request answers instead of failing with a 500."""
    for attempt in range(1, DISCONNECT_TRIES + 1):
        try:
            with read_scope(factory) as session:
                return work(session)
        except DBAPIError as exc:
            if not dropped(exc) or attempt == DISCONNECT_TRIES:
                raise
    raise AssertionError("unreachable")
