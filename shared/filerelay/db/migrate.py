"""Alembic, driven from code so no alembic.ini has to travel with the package."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from filerelay.settings import Settings

MIGRATIONS = Path(__file__).with_name("migrations")
# The process's Settings, for migrations that need more than the URL (0008 seals rows with its keys).
SETTINGS = "filerelay_settings"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # '%' is ConfigParser interpolation syntax; URLs with escaped passwords contain it.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head", *, settings: Settings | None = None) -> None:
    """Without `settings`, a migration that needs them reads them from the environment (Settings.from_env)."""
    config = alembic_config(database_url)
    if settings is not None:
        config.attributes[SETTINGS] = settings
    command.upgrade(config, revision)


def downgrade(database_url: str, revision: str, *, settings: Settings | None = None) -> None:
    config = alembic_config(database_url)
    if settings is not None:
        config.attributes[SETTINGS] = settings
    command.downgrade(config, revision)


@functools.cache
def head_revision() -> str | None:
    """The newest migration this code ships."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The schema version the database is at (None before the first migration)."""
    return MigrationContext.configure(connection).get_current_revision()


def pending_revisions(connection: Connection) -> list[tuple[str, str]]:
    """The migrations `upgrade` would run, oldest first, each with its one-line description; none when the
    database is at this code's head or at a revision this code does not know (a newer release's)."""
    script = ScriptDirectory(str(MIGRATIONS))
    current = current_revision(connection)
    known = {s.revision for s in script.walk_revisions()}
    if current is not None and current not in known:
        return []
    steps = script.iterate_revisions(script.get_current_head(), current or "base")
    return [(s.revision, (s.doc or "").splitlines()[0] if s.doc else "") for s in reversed(list(steps))]
