"""The least work an ArchiveLink `create` needs, as plain WSGI handlers (no framework): bench.ingest's yardstick.

Run under gunicorn with FileRelay's own server settings, e.g.

    gunicorn -k gthread -w 2 --threads 8 'bench.reference_app:bare()'

Each factory reads its settings from the environment (set by bench.ingest):

- `bare()`: stream the body to a file in chunks, fsync it, answer 201. (REFERENCE_DIR)
- `postgres()`: the same plus sha256, a document row and a delivery row in one transaction (psycopg 3, one
  connection per thread), then one wake-up pushed to Redis (LPUSH): the durability FileRelay promises.
  (REFERENCE_DIR, REFERENCE_DATABASE, REFERENCE_REDIS, REFERENCE_WAKE_KEY)
- `sqlite()`: the same on the embedded defaults: SQLite in WAL mode (one connection per thread) and one small
  file per wake-up in a folder, written as kombu's filesystem transport writes it (locked, not fsync'd).
  (REFERENCE_DIR, REFERENCE_SQLITE, REFERENCE_WAKE_DIR)

Every handler answers GET /readyz with 200 so the bench can wait for it like for FileRelay.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from filerelay.staging.local import fsync_dir

# FileRelay's staging chunk (filerelay.staging.base.CHUNK_SIZE): read the body as it does.
CHUNK = 1024 * 1024

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Environ = dict[str, Any]
Handler = Callable[[Environ, StartResponse], Iterable[bytes]]
# What the handler does after the bytes are durable: (doc_id, size, sha256) -> None; raises KeyError on a
# document that already exists (ArchiveLink's 403).
Record = Callable[[str, int, str], None]

POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS ref_documents (
    id bigserial PRIMARY KEY,
    doc_id varchar(128) NOT NULL UNIQUE,
    size_bytes bigint NOT NULL,
    sha256 char(64) NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ref_deliveries (
    id bigserial PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES ref_documents(id),
    status varchar(16) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""
SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS ref_documents (
    id integer PRIMARY KEY,
    doc_id text NOT NULL UNIQUE,
    size_bytes integer NOT NULL,
    sha256 text NOT NULL,
    received_at real NOT NULL
);
CREATE TABLE IF NOT EXISTS ref_deliveries (
    id integer PRIMARY KEY,
    document_id integer NOT NULL REFERENCES ref_documents(id),
    status text NOT NULL,
    created_at real NOT NULL
);
"""


def store_body(environ: Environ, folder: Path, name: str, *, digest: bool) -> tuple[int, str]:
    """Stream the body into folder/name in CHUNK pieces and fsync it; return (size, sha256 or "")."""
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    sha = hashlib.sha256() if digest else None
    size = 0
    with open(folder / name, "xb") as out:
        # Bounded by the announced length: a short body ends the loop early.
        while remaining > 0:
            chunk = stream.read(min(CHUNK, remaining))
            if not chunk:
                raise ValueError("incomplete body")
            if sha is not None:
                sha.update(chunk)
            out.write(chunk)
            size += len(chunk)
            remaining -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    fsync_dir(folder)  # as FileRelay's staging does
    return size, sha.hexdigest() if sha is not None else ""


def _answer(start_response: StartResponse, status: str, body: bytes = b"") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _doc_id(environ: Environ) -> str | None:
    query = environ.get("QUERY_STRING", "")
    command = query.partition("&")[0]
    if environ["REQUEST_METHOD"] != "PUT" or command != "create":
        return None
    values = parse_qs(query).get("docId")
    return values[0] if values else None


def make_handler(folder: Path, record: Record | None) -> Handler:
    """A WSGI app: PUT ?create&...&docId=X stores the body (and records it), 201; GET /readyz 200."""
    folder.mkdir(parents=True, exist_ok=True)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "GET" and environ.get("PATH_INFO") == "/readyz":
            return _answer(start_response, "200 OK", b"ok")
        doc_id = _doc_id(environ)
        if doc_id is None or "/" in doc_id:
            return _answer(start_response, "400 Bad Request")
        try:
            size, sha256 = store_body(environ, folder, doc_id, digest=record is not None)
        except FileExistsError:
            return _answer(start_response, "403 Forbidden")
        except ValueError:
            return _answer(start_response, "400 Bad Request")
        if record is not None:
            try:
                record(doc_id, size, sha256)
            except KeyError:
                return _answer(start_response, "403 Forbidden")
        return _answer(start_response, "201 Created")

    return app


def bare() -> Handler:
    return make_handler(Path(os.environ["REFERENCE_DIR"]), None)


def postgres() -> Handler:
    import psycopg
    import redis

    conninfo = os.environ["REFERENCE_DATABASE"]
    wake_key = os.environ["REFERENCE_WAKE_KEY"]
    local = threading.local()
    # One pool per process, opened lazily after gunicorn forks; LPUSH is one round trip.
    broker = redis.Redis.from_url(os.environ["REFERENCE_REDIS"])

    def connection() -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(local, "conn", None)
        if conn is None:
            conn = psycopg.connect(conninfo, autocommit=True)
            local.conn = conn
        return conn

    def record(doc_id: str, size: int, sha256: str) -> None:
        conn = connection()
        try:
            with conn.transaction():
                row = conn.execute(
                    "INSERT INTO ref_documents (doc_id, size_bytes, sha256) VALUES (%s, %s, %s) RETURNING id",
                    (doc_id, size, sha256),
                ).fetchone()
                assert row is not None
                conn.execute("INSERT INTO ref_deliveries (document_id, status) VALUES (%s, 'pending')", (row[0],))
        except psycopg.errors.UniqueViolation:
            raise KeyError(doc_id) from None
        # After commit, like FileRelay's enqueue: the row is the truth, the message only a wake-up.
        broker.lpush(wake_key, doc_id)

    return make_handler(Path(os.environ["REFERENCE_DIR"]), record)


def _sqlite_connection(path: str) -> sqlite3.Connection:
    # FileRelay's pragmas (filerelay.db.session): WAL, synchronous FULL, BEGIN IMMEDIATE, a long busy timeout.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def wake_file(folder: Path, doc_id: str) -> None:
    """One message file, as kombu's filesystem transport `_put` writes it: open, flock, write, close."""
    name = folder / f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.deliver.folder.msg"
    with open(name, "wb", buffering=0) as out:
        fcntl.flock(out, fcntl.LOCK_EX)
        out.write(doc_id.encode())
        fcntl.flock(out, fcntl.LOCK_UN)


def sqlite() -> Handler:
    path = os.environ["REFERENCE_SQLITE"]
    wake_dir = Path(os.environ["REFERENCE_WAKE_DIR"])
    wake_dir.mkdir(parents=True, exist_ok=True)
    local = threading.local()

    def connection() -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None:
            conn = _sqlite_connection(path)
            local.conn = conn
        return conn

    def record(doc_id: str, size: int, sha256: str) -> None:
        conn = connection()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.execute(
                "INSERT INTO ref_documents (doc_id, size_bytes, sha256, received_at) VALUES (?, ?, ?, ?)",
                (doc_id, size, sha256, now),
            )
            conn.execute(
                "INSERT INTO ref_deliveries (document_id, status, created_at) VALUES (?, 'pending', ?)",
                (cursor.lastrowid, now),
            )
            conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")
            raise KeyError(doc_id) from None
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        wake_file(wake_dir, doc_id)

    return make_handler(Path(os.environ["REFERENCE_DIR"]), record)


def create_postgres_schema(conninfo: str) -> None:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        conn.execute(POSTGRES_SCHEMA)


def create_sqlite_schema(path: str) -> None:
    conn = _sqlite_connection(path)
    try:
        conn.executescript(SQLITE_SCHEMA)
    finally:
        conn.close()


def count_postgres(conninfo: str) -> int:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM ref_deliveries").fetchone()
    return int(row[0]) if row else 0


def count_sqlite(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM ref_deliveries").fetchone()[0])
    finally:
        conn.close()
