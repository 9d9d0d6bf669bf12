"""The rules every migration follows so that upgrades need no downtime (shared/filerelay/db/migrations/env.py,
docs/operations.md#upgrades): each declares the oldest code it serves, and on PostgreSQL an index on a large
table is built CONCURRENTLY, without locking the table's writes for the length of the build."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine

from filerelay.db.migrate import MIGRATIONS, SETTINGS, alembic_config
from filerelay.db.schema_window import DECLARATION
from filerelay.settings import Settings
from tests.support.databases import TEST_ENCRYPTION_KEY
from tests.support.next_release import EXPAND, NEXT, PLAIN_INDEX, next_config

# The tables that grow with the documents: an index built on one of them the plain way blocks creates and
# deliveries until it is built.
LARGE_TABLES = {"documents", "archive_documents", "deliveries", "delivery_attempts", "audit_events"}
# The migrations written before the rule. Installations ran them long ago (rewriting them changes nothing
# there), and on a new installation they run on empty tables, where the lock costs nothing.
BEFORE_THE_RULE = {f"{n:04}" for n in range(1, 11)}
PLAIN_BUILD = re.compile(
    r"\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?!CONCURRENTLY\b)(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+ON\s+(?:ONLY\s+)?\"?(\w+)\"?",
    re.IGNORECASE,
)


def chain(script: ScriptDirectory) -> list[str]:
    """The revisions, oldest first."""
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def test_every_migration_declares_the_oldest_code_it_serves() -> None:
    script = ScriptDirectory(str(MIGRATIONS))
    order = chain(script)
    previous = order[0]
    for revision in order:
        module = script.get_revision(revision).module
        assert hasattr(module, DECLARATION), f"migration {revision} does not declare {DECLARATION}"
        oldest = getattr(module, DECLARATION)
        assert oldest in order[: order.index(revision) + 1], f"{revision}: {oldest} is not it or a revision before it"
        # A schema never serves code older than what the schema before it already refused.
        assert order.index(oldest) >= order.index(previous), f"{revision} serves {oldest}, older than before it"
        previous = oldest


def plain_index_builds(config: Config) -> dict[str, list[str]]:
    """Upgrade one revision at a time; the CREATE INDEX statements without CONCURRENTLY on a large table
    each ran, by revision."""
    order = chain(ScriptDirectory.from_config(config))
    statements: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    found: dict[str, list[str]] = {}
    event.listen(Engine, "before_cursor_execute", capture)
    try:
        for revision in order:
            statements.clear()
            command.upgrade(config, revision)
            plain = [s for s in statements if (m := PLAIN_BUILD.match(s)) and m[1] in LARGE_TABLES]
            if plain:
                found[revision] = plain
    finally:
        event.remove(Engine, "before_cursor_execute", capture)
    return found


postgresql_only = pytest.mark.skipif(
    not os.environ.get("FILERELAY_TEST_DATABASE_URL"),
    reason="CONCURRENTLY is PostgreSQL's: set FILERELAY_TEST_DATABASE_URL (.ci/run does)",
)


def _with_keys(config: Config, url: str, home: Path) -> Config:
    config.attributes[SETTINGS] = Settings.from_env(
        {"FILERELAY_HOME": str(home), "FILERELAY_DATABASE_URL": url, "FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY}
    )
    return config


@postgresql_only
def test_indexes_on_large_tables_are_built_concurrently(empty_database: str, tmp_path: Path) -> None:
    found = plain_index_builds(_with_keys(alembic_config(empty_database), empty_database, tmp_path))
    assert {r: s for r, s in found.items() if r not in BEFORE_THE_RULE} == {}, (
        "build these with op.create_index(..., postgresql_concurrently=True) inside"
        " `with op.get_context().autocommit_block():`"
    )
    assert "0007" in found  # the check sees a plain build where there is one


@postgresql_only
@pytest.mark.parametrize(("body", "plain"), [(PLAIN_INDEX, True), (EXPAND, False)])
def test_a_new_migration_building_an_index_the_plain_way_is_caught(
    empty_database: str, tmp_path: Path, body: str, plain: bool
) -> None:
    config = _with_keys(next_config(empty_database, tmp_path / "next", body), empty_database, tmp_path)
    assert (NEXT in plain_index_builds(config)) is plain
