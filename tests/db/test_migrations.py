"""The Alembic migrations build exactly the schema the models describe (no forgotten migration), and 0008
encrypts the destination secrets written before it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from filerelay import audit
from filerelay.api.audit.schemas import AuditEntry
from filerelay.db.migrate import current_revision, downgrade, upgrade
from filerelay.db.models import Base, Destination
from filerelay.db.session import make_engine, make_session_factory, session_scope
from filerelay.db.types import UTCDateTime
from filerelay.runtime import build_runtime
from filerelay.secrets_box import Keyring
from filerelay.settings import Settings, SettingsError
from tests.support.databases import TEST_ENCRYPTION_KEY as KEY


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []


# --- 0008: destination secrets sealed -----------------------------------------------------------------

_WORKSPACES = sa.table(
    "workspaces",
    *(sa.column(name, sa.Integer) for name in ("id", "max_retries", "retry_ttl_seconds")),
    *(sa.column(name, sa.Integer) for name in ("backoff_base_seconds", "backoff_max_seconds")),
    sa.column("owner_slug", sa.String),
    sa.column("slug", sa.String),
    sa.column("created_at", UTCDateTime()),
)
# The columns of `destinations` at 0007, written without the model (which describes the newest schema).
_DESTINATIONS = sa.table(
    "destinations",
    sa.column("id", sa.Integer),
    sa.column("workspace_id", sa.Integer),
    *(sa.column(name, sa.String) for name in ("public_id", "name", "kind", "path_template")),
    sa.column("settings", sa.JSON),
    sa.column("secrets", sa.JSON),
    sa.column("enabled", sa.Boolean),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
PLAINTEXT = {"secret_access_key": "plaintext-written-before-0008-" + "q7Zx"}


def _insert_workspace(conn: sa.Connection, at: dt.datetime) -> None:
    """acme/production as a row of the schema at 0007 (id 1)."""
    conn.execute(
        _WORKSPACES.insert().values(
            id=1,
            owner_slug="acme",
            slug="production",
            max_retries=5,
            retry_ttl_seconds=3600,
            backoff_base_seconds=30,
            backoff_max_seconds=3600,
            created_at=at,
        )
    )


def _plaintext_destination_at_0007(url: str, revision: str = "0007") -> None:
    upgrade(url, revision)
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    engine = make_engine(url)
    with engine.begin() as conn:
        _insert_workspace(conn, now)
        for number, secrets_ in enumerate([PLAINTEXT, {}], start=1):
            conn.execute(
                _DESTINATIONS.insert().values(
                    id=number,
                    workspace_id=1,
                    public_id=f"dest_{number}",
                    name="S3",
                    kind="s3",
                    path_template="/{doc_id}",
                    settings={"bucket": "archive"},
                    secrets=secrets_,
                    enabled=True,
                    created_at=now,
                    updated_at=now,
                )
            )
    engine.dispose()


def test_0008_encrypts_the_rows_written_before_it_and_the_app_reads_them(empty_database: str, tmp_path: Path) -> None:
    url = empty_database
    _plaintext_destination_at_0007(url)
    settings = Settings.from_env(
        {"FILERELAY_HOME": str(tmp_path / "home"), "FILERELAY_DATABASE_URL": url, "FILERELAY_ENCRYPTION_KEYS": KEY}
    )
    upgrade(url, "0008", settings=settings)

    engine = make_engine(url)
    with engine.connect() as conn:
        stored = {row.id: row.secrets for row in conn.execute(sa.select(_DESTINATIONS.c.id, _DESTINATIONS.c.secrets))}
    engine.dispose()
    key_id = Keyring.from_texts([KEY]).primary.id
    assert all(isinstance(v, str) and v.startswith(f"fr1:{key_id}:") for v in stored.values()), stored
    assert PLAINTEXT["secret_access_key"] not in json.dumps(stored)

    runtime = build_runtime(settings)  # the app, with the keys of the process
    try:
        with session_scope(runtime.sessions) as session:
            opened = {d.public_id: d.secrets for d in session.scalars(sa.select(Destination))}
    finally:
        runtime.close()
    assert opened == {"dest_1": PLAINTEXT, "dest_2": {}}

    # Back below 0008, the rows are plaintext again, as that code reads them.
    downgrade(url, "0007", settings=settings)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(_DESTINATIONS.c.secrets).order_by(_DESTINATIONS.c.id)).scalars().all() == [
            PLAINTEXT,
            {},
        ]
    engine.dispose()


def test_0008_without_usable_keys_stops_and_leaves_the_rows_as_they_were(empty_database: str, tmp_path: Path) -> None:
    url = empty_database
    _plaintext_destination_at_0007(url)
    settings = Settings.from_env({"FILERELAY_HOME": str(tmp_path / "home"), "FILERELAY_DATABASE_URL": url})
    if settings.embedded_database:
        # With SQLite a key is generated under FILERELAY_HOME; a server database needs one given.
        upgrade(url, "0008", settings=settings)
        assert (tmp_path / "home" / "encryption_key").stat().st_mode & 0o777 == 0o600
        return
    with pytest.raises(SettingsError, match="FILERELAY_ENCRYPTION_KEYS is required with a database server"):
        upgrade(url, "0008", settings=settings)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert current_revision(conn) == "0007"
        assert conn.execute(sa.select(_DESTINATIONS.c.secrets).where(_DESTINATIONS.c.id == 1)).scalar() == PLAINTEXT
    engine.dispose()


# --- 0009: the audit log records every change ---------------------------------------------------------


def test_audit_entries_written_before_0009_still_read(empty_database: str, tmp_path: Path) -> None:
    """0009 adds the key prefix and the changed settings; an entry from before reads with neither, and
    the REST answer's shape holds for it; going back down and up again keeps it."""
    url = empty_database
    settings = Settings.from_env(
        {"FILERELAY_HOME": str(tmp_path / "home"), "FILERELAY_DATABASE_URL": url, "FILERELAY_ENCRYPTION_KEYS": KEY}
    )
    upgrade(url, "0007")
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    engine = make_engine(url)
    with engine.begin() as conn:
        _insert_workspace(conn, at)
        conn.execute(
            sa.table(
                "audit_events",
                *(sa.column(name, sa.String) for name in ("actor", "via", "action", "target")),
                sa.column("workspace_id", sa.Integer),
                sa.column("at", UTCDateTime()),
                sa.column("detail", sa.JSON),
            )
            .insert()
            .values(
                workspace_id=1,
                at=at,
                actor="ops",
                via="console",
                action="destination.pause",
                target="dest_folder",
                detail={},
            )
        )
    engine.dispose()
    upgrade(url, "0009", settings=settings)
    downgrade(url, "0007", settings=settings)
    upgrade(url, settings=settings)

    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as session:
        (event,) = audit.listing(session, workspace_id=1, per_page=10).events
        row = (event.actor, event.actor_prefix, event.via, event.changes)
        shaped = AuditEntry().dump(event)
    engine.dispose()
    assert row == ("ops", None, "console", {})
    assert shaped["actor"] == {"name": "ops", "key_prefix": None}
    assert (shaped["channel"], shaped["changes"], shaped["detail"]) == ("console", {}, {})


_REPOSITORIES = sa.table(
    "repositories",
    *(sa.column(name, sa.Integer) for name in ("id", "workspace_id")),
    *(sa.column(name, sa.String) for name in ("repo_id", "description", "signature")),
    sa.column("created_at", UTCDateTime()),
)
_ROUTES = sa.table("routes", sa.column("repository_id", sa.Integer), sa.column("destination_id", sa.Integer))


def test_an_upgrade_through_the_batch_migrations_keeps_the_rows_that_point_at_the_copied_tables(
    empty_database: str, tmp_path: Path
) -> None:
    """On SQLite a batch migration copies a table and drops the old one: with foreign keys on, the drop
    cascaded and deleted every route of the destinations 0006 copied."""
    url = empty_database
    _plaintext_destination_at_0007(url, "0005")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            _REPOSITORIES.insert().values(
                id=1,
                workspace_id=1,
                repo_id="Z1",
                description="Invoices",
                signature="none",
                created_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
            )
        )
        conn.execute(
            _ROUTES.insert(), [{"repository_id": 1, "destination_id": 1}, {"repository_id": 1, "destination_id": 2}]
        )
    engine.dispose()
    settings = Settings.from_env(
        {"FILERELAY_HOME": str(tmp_path / "home"), "FILERELAY_DATABASE_URL": url, "FILERELAY_ENCRYPTION_KEYS": KEY}
    )

    upgrade(url, "head", settings=settings)

    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(_ROUTES)).scalar_one() == 2
        assert conn.execute(sa.select(sa.func.count()).select_from(_DESTINATIONS)).scalar_one() == 2
    engine.dispose()
