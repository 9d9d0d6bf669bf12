"""Backup and restore (docs/operations.md#backup-and-restore): a backup of the database taken while documents
wait, restored into a new database beside the same staging and the same keys, carries on. The API lists
the documents and serves their bytes, the destination secrets open, and what was waiting is delivered.

PostgreSQL: `pg_dump -Fc` and `pg_restore` into a new database. SQLite: the backup API of sqlite3 (what
`sqlite3 filerelay.db ".backup copy.db"` does), never a copy of a file in WAL mode."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from filerelay.api import create_app
from filerelay.clock import FrozenClock
from filerelay.db.models import Destination
from filerelay.db.session import session_scope
from filerelay.delivery import service, sweep
from filerelay.runtime import Runtime, build_runtime
from filerelay.secrets_box import SecretsBoxError
from filerelay.settings import Settings
from tests.support.databases import scratch_database
from tests.support.documents import accept, delivery_to
from tests.support.keys import ADMIN_KEY

FILES = "/api/acme/production/files"
DOCUMENTS = "/api/acme/production/documents"


def libpq(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def restored_copy(database_url: str, folder: Path) -> Iterator[str]:
    """A backup of the database restored into a new one; its URL (dropped afterwards)."""
    if database_url.startswith("sqlite"):
        source = make_url(database_url).database
        assert source is not None
        copy = folder / "restored.db"
        with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
        yield f"sqlite:///{copy}"
        return
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are not installed (Debian: postgresql-client)")
    dump = folder / "filerelay.dump"
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", libpq(database_url)], check=True)
    with scratch_database(database_url, prefix="restored") as target:
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={libpq(target)}", str(dump)], check=True
        )
        yield target


def test_a_restored_backup_serves_and_delivers_what_was_waiting(
    configured: Runtime, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    with session_scope(configured.sessions) as session:  # wired to the folder only
        session.execute(update(Destination).where(Destination.public_id == "dest_s3prod").values(enabled=False))
    delivered_bytes, waiting_bytes = b"%PDF delivered\n" * 1000, b"%PDF waiting\n" * 1000
    delivered = accept(configured, "DELIVERED", delivered_bytes)[0].documents[0].id
    assert service.run(configured, delivery_to(configured, delivered, "dest_folder"))
    waiting = accept(configured, "WAITING", waiting_bytes)[0].documents[0].id  # the backup is taken now

    with restored_copy(settings.database_url, tmp_path) as url:
        # The same staging and the same keys (FILERELAY_ENCRYPTION_KEYS, FILERELAY_SECRET_KEY), a new database.
        restored = build_runtime(settings.with_overrides(database_url=url), clock=clock)
        try:
            api = create_app(runtime=restored).test_client()
            auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
            listed = api.get(DOCUMENTS, headers=auth).get_json()["data"]
            assert {d["attributes"]["doc_id"]: d["attributes"]["status"] for d in listed} == {
                "DELIVERED": "delivered",
                "WAITING": "pending",
            }
            for document_id, data in ((delivered, delivered_bytes), (waiting, waiting_bytes)):
                reply = api.get(f"{FILES}/{document_id}/content", headers=auth)
                assert reply.status_code == 200
                assert reply.get_data() == data
            with session_scope(restored.sessions) as session:  # sealed under the same keys
                s3 = session.scalars(select(Destination).where(Destination.public_id == "dest_s3prod")).one()
                assert s3.secrets["secret_access_key"] == "s3cr3t"

            # The sweeper finds what waits, a worker delivers it.
            with session_scope(restored.sessions) as session:
                assert sweep.due_kinds(session, now=clock.now()) == ["folder"]
            assert service.run(restored, delivery_to(restored, waiting, "dest_folder"))
            reply = api.get(f"{DOCUMENTS}/{waiting}", headers=auth).get_json()["data"]["attributes"]
            assert reply["status"] == "delivered"
            (path,) = [d["path"] for d in reply["deliveries"]]
            assert (tmp_path / "out" / path.lstrip("/")).read_bytes() == waiting_bytes
        finally:
            restored.close()


def test_a_restored_backup_without_its_encryption_keys_cannot_open_destination_secrets(
    configured: Runtime, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    """What losing FILERELAY_ENCRYPTION_KEYS costs: the secrets must be entered again; the rest still reads."""
    with restored_copy(settings.database_url, tmp_path) as url:
        other = "tk_" + "Q" * 8 + "another-installation-key-000"
        restored = build_runtime(settings.with_overrides(database_url=url, encryption_keys=(other,)), clock=clock)
        try:
            with session_scope(restored.sessions) as session:
                names = set(session.scalars(select(Destination.public_id)))
                assert names == {"dest_folder", "dest_s3prod"}
                with pytest.raises(SecretsBoxError):
                    session.scalars(select(Destination).where(Destination.public_id == "dest_s3prod")).one()
        finally:
            restored.close()
