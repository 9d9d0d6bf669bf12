"""Alembic environment: runs migrations against the URL the caller configured.

Every migration here follows expand/contract, so that a release's migration can run while the previous
release serves (docs/operations.md#upgrades):
- expand (new tables, nullable columns or columns with a default, indexes) in one release; the code of the
  release before keeps running against the result, so the migration declares
  `oldest_code_revision = <the revision before it>`;
- contract (drop or rename a column or table, NOT NULL on a column older code leaves empty, rows rewritten
  into a shape older code cannot read) only in a later release, once no code in service uses what goes;
  such a migration declares `oldest_code_revision = <its own revision>` and /readyz of older code turns
  unready when it runs, so it waits for a release whose notes say so;
- on PostgreSQL, an index on a large table (documents, archive_documents, deliveries, delivery_attempts,
  audit_events) is built without locking writes: `op.create_index(..., postgresql_concurrently=True)` inside
  `with op.get_context().autocommit_block():` (tests/db/test_migration_rules.py checks both rules).
"""

from __future__ import annotations

from alembic import context
from alembic.script import ScriptDirectory

from filerelay.db import schema_window
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
            # and every reference checked once they ran.
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
            # Code of an older release reads here whether it still runs against what was left.
            schema_window.record(connection, ScriptDirectory.from_config(config))
        # Without transactional DDL (SQLite) Alembic commits each migration by itself and the block above
        # began nothing, so the record is still open here.
        if connection.in_transaction():
            connection.commit()
finally:
    # Also when a migration stops (0008 without usable keys): no connection is left open behind it.
    engine.dispose()
