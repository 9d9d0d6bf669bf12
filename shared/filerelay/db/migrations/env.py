"""Alembic environment: runs migrations against the URL the caller configured."""

from __future__ import annotations

from alembic import context

from filerelay.db.models import Base
from filerelay.db.session import make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "sqlalchemy.url must be set by filerelay.db.migrate"

engine = make_engine(url)
try:
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch migration copies a table and drops the old one; with foreign keys on, the drop
            # cascades and deletes every row pointing at it (0006 took every route of the destinations
            # with it). Off while migrating, set before any transaction (SQLite ignores it inside one),
            # and every reference checked before the migrations commit.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").all()):
                raise RuntimeError(f"the migrations left rows pointing at nothing: {broken[:5]}")
finally:
    # Also when a migration stops (0008 without usable keys): no connection is left open behind it.
    engine.dispose()
