"""A database of one's own on a PostgreSQL server, for a test run or a benchmark."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# The key the tests' and benchmarks' processes seal destination secrets with (FILERELAY_ENCRYPTION_KEYS):
# with a database server it must be given, and every process sharing one database needs the same.
TEST_ENCRYPTION_KEY = "tk_4gR9xQ2mZ7vL1pW8sN3bC6yH0jD5fK2e"


@contextmanager
def scratch_database(server_url: str, prefix: str = "filerelay_test") -> Iterator[str]:
    """Create a database on the server `server_url` points at, yield its URL, drop it afterwards:
    concurrent runs against one server never see each other's rows."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    # Named after the server URL's own database, so that runs sharing a server tell their databases apart.
    owner = make_url(server_url).database or "postgres"
    name = f"{owner}_{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def own_database(sqlite_file: Path, prefix: str) -> Iterator[str]:
    """A database for one test, at no revision: a scratch database on the run's PostgreSQL server
    (FILERELAY_TEST_DATABASE_URL), dropped afterwards, or else the SQLite file `sqlite_file`."""
    server_url = os.environ.get("FILERELAY_TEST_DATABASE_URL")
    if server_url:
        with scratch_database(server_url, prefix=prefix) as url:
            yield url
    else:
        yield f"sqlite:///{sqlite_file}"
