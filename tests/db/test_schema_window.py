"""Rolling upgrades: this code serves its own schema and a newer release's expand migration, and says why
not when the schema is behind it or contracted past it; `filerelay migrate --check` tells what is pending."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import CliRunner
from flask.testing import FlaskClient

from filerelay.api import create_app
from filerelay.cli.main import main
from filerelay.db.migrate import head_revision, upgrade
from filerelay.db.models import SchemaWindow
from filerelay.db.schema_window import code_revisions, judge
from filerelay.db.session import make_engine
from filerelay.runtime import build_runtime
from filerelay.settings import Settings
from tests.support.databases import TEST_ENCRYPTION_KEY
from tests.support.next_release import CONTRACT, EXPAND, NEXT, next_config

HEAD = head_revision()
assert HEAD is not None
# Revisions are numbered in order: how many an installation at 0009 has pending.
PENDING_AT_0009 = int(HEAD) - 9


@pytest.mark.parametrize(
    ("database", "oldest_code", "problem"),
    [
        (HEAD, None, None),
        (None, None, f"at no schema, code needs {HEAD}: run filerelay migrate"),
        ("0009", None, f"behind: at 0009, code needs {HEAD}: run filerelay migrate"),
        # The next release's expand migration: the previous release (this code) keeps serving.
        ("9001", HEAD, None),
        # Two expand migrations of newer releases in a row, both still served by this code.
        ("9002", "0010", None),
        (
            "9001",
            "9001",
            f"too far ahead: at 9001, which needs code of 9001 or newer; this code is at {HEAD}: deploy the newer release",
        ),
        ("9001", None, f"ahead: at 9001, newer than this code ({HEAD}), with no record of which code it serves"),
    ],
)
def test_the_window(database: str | None, oldest_code: str | None, problem: str | None) -> None:
    assert judge(database, HEAD, code_revisions(), oldest_code) == problem


@pytest.fixture
def settings(empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    env = {
        "FILERELAY_HOME": str(tmp_path / "home"),
        "FILERELAY_DATABASE_URL": empty_database,
        "FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # for `filerelay migrate --check`
    return Settings.from_env(env)


@pytest.fixture
def readyz(settings: Settings) -> Iterator[FlaskClient]:
    runtime = build_runtime(settings)
    try:
        yield create_app(runtime=runtime).test_client()
    finally:
        runtime.close()


def schema_check(client: FlaskClient) -> tuple[int, str]:
    reply = client.get("/readyz")
    return reply.status_code, reply.get_json()["checks"]["schema"]


def migrate_check() -> tuple[int, str]:
    result = CliRunner().invoke(main, ["migrate", "--check"])
    return result.exit_code, result.output


def test_ready_at_the_next_releases_expand_migration(settings: Settings, readyz: FlaskClient, tmp_path: Path) -> None:
    url = settings.database_url
    upgrade(url, "0009", settings=settings)
    assert schema_check(readyz) == (503, f"error: behind: at 0009, code needs {HEAD}: run filerelay migrate")
    code, output = migrate_check()
    assert code == 1
    assert f"{PENDING_AT_0009} migration(s) pending" in output
    assert "0010  deliveries record what identifies the version" in output
    assert "0012  record which code still runs against each schema" in output

    upgrade(url, settings=settings)
    assert schema_check(readyz) == (200, "ok")
    assert migrate_check() == (0, f"database schema is up to date ({HEAD})\n")

    command.upgrade(next_config(url, tmp_path / "next", EXPAND), "head")
    assert schema_check(readyz) == (200, "ok")
    assert migrate_check() == (
        0,
        f"database schema is at {NEXT}, a newer release's, which this code ({HEAD}) runs against\n",
    )

    # Without the record, this code cannot know the newer schema still serves it: it says so.
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.delete(SchemaWindow))
    engine.dispose()
    status, reason = schema_check(readyz)
    assert (status, reason) == (
        503,
        f"error: ahead: at {NEXT}, newer than this code ({HEAD}), with no record of which code it serves",
    )


def test_unready_once_a_contract_migration_ran(settings: Settings, readyz: FlaskClient, tmp_path: Path) -> None:
    url = settings.database_url
    upgrade(url, settings=settings)
    command.upgrade(next_config(url, tmp_path / "next", CONTRACT, oldest_code=NEXT), "head")
    reason = f"too far ahead: at {NEXT}, which needs code of {NEXT} or newer; this code is at {HEAD}: deploy the newer release"
    assert schema_check(readyz) == (503, f"error: {reason}")
    assert migrate_check() == (1, f"database schema {reason}\n")
