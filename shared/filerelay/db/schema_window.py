"""Which database schemas this code runs against: its own head revision, and newer ones whose migrations
say so. That window is what lets a release's migration run while the previous release serves.

Migrations follow expand/contract (docs/operations.md#upgrades). Each one declares `oldest_code_revision`:
the oldest code, named by its head revision, that still runs against the schema the migration leaves. An
expand migration (a new table, a nullable column, an index) names the revision before it, so the previous
release keeps serving during and after it; a contract migration (a drop, a rename, a NOT NULL, rows
rewritten in a shape old code cannot read) names itself. Code cannot read the declaration of a migration it
does not ship, so `filerelay migrate` records the declaration of the revision it leaves the database at in
the `schema_window` table, and older code reads it there. That table's shape is a contract between
releases: never change it.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import delete, insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from filerelay.db.migrate import MIGRATIONS
from filerelay.db.models import SchemaWindow

DECLARATION = "oldest_code_revision"


@dataclass(frozen=True)
class SchemaState:
    database: str | None
    code: str | None
    # Why this code cannot run against the database's schema; None when it can.
    problem: str | None


def declared_oldest_code(script: ScriptDirectory, revision: str) -> str:
    """A migration's declaration; one that declares nothing is served by its own code only (the safe reading)."""
    found = script.get_revision(revision)
    assert found is not None, revision
    return str(getattr(found.module, DECLARATION, revision))


def record(connection: Connection, script: ScriptDirectory) -> None:
    """After a migration run, in its transaction: which code still runs against the schema it left."""
    if not inspect(connection).has_table(SchemaWindow.__tablename__):
        return  # below the migration that adds the table
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        return
    oldest = declared_oldest_code(script, current)
    connection.execute(delete(SchemaWindow).where(SchemaWindow.revision == current))
    connection.execute(insert(SchemaWindow).values(revision=current, oldest_code_revision=oldest))


def judge(
    database: str | None, code_head: str | None, code_revisions: Collection[str], oldest_code: str | None
) -> str | None:
    """Why code at `code_head` (which ships `code_revisions`) cannot run against a schema at `database`,
    whose recorded declaration is `oldest_code`; None when it can."""
    if database == code_head:
        return None
    if database is None:
        return f"at no schema, code needs {code_head}: run filerelay migrate"
    if database in code_revisions:
        return f"behind: at {database}, code needs {code_head}: run filerelay migrate"
    if oldest_code is None:
        return f"ahead: at {database}, newer than this code ({code_head}), with no record of which code it serves"
    if oldest_code in code_revisions:
        return None  # a newer release's expand migration ran: this code still runs against it
    return (
        f"too far ahead: at {database}, which needs code of {oldest_code} or newer; this code is at {code_head}:"
        " deploy the newer release"
    )


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


@functools.cache
def code_revisions() -> frozenset[str]:
    """Every revision this code ships: its head and all before it."""
    return frozenset(script.revision for script in _script().walk_revisions())


def _recorded_oldest_code(connection: Connection, revision: str) -> str | None:
    try:
        return connection.scalar(select(SchemaWindow.oldest_code_revision).where(SchemaWindow.revision == revision))
    except SQLAlchemyError:
        connection.rollback()  # no such table: a schema from before it, or not ours
        return None


def state(connection: Connection) -> SchemaState:
    """The database's schema as this code sees it."""
    head = _script().get_current_head()
    database = MigrationContext.configure(connection).get_current_revision()
    revisions = code_revisions()
    oldest = None if database is None or database in revisions else _recorded_oldest_code(connection, database)
    return SchemaState(database=database, code=head, problem=judge(database, head, revisions, oldest))
