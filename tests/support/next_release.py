"""A stand-in for the next release: this code plus one migration after its head. Tests of rolling upgrades
run this code as "the previous release" against the schema that migration leaves.

Two forms: an Alembic config that adds the migration's folder to the real ones (for in-process upgrades),
and a copy of `filerelay.db` with the migration in it, put first on a process's PYTHONPATH (for `filerelay`
processes of the next release: their head is the new migration)."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

from alembic.config import Config

from filerelay.db.migrate import MIGRATIONS, alembic_config, head_revision

NEXT = "9001"

# An expand migration as the rules want it (shared/filerelay/db/migrations/env.py): a nullable column on
# a large table, and an index on one built without locking its writes.
EXPAND = """
with op.batch_alter_table('deliveries', schema=None) as batch_op:
    batch_op.add_column(sa.Column('next_release_note', sa.String(length=64), nullable=True))
with op.get_context().autocommit_block():
    op.create_index(
        'ix_documents_next_release', 'documents', ['status', 'received_at'],
        postgresql_concurrently=True,
    )
"""
# The same index as an unaware author writes it: on PostgreSQL, it locks documents' writes while it builds.
PLAIN_INDEX = """
op.create_index('ix_documents_next_release', 'documents', ['status', 'received_at'])
"""
# A contract migration: what the previous release reads is gone.
CONTRACT = """
with op.batch_alter_table('deliveries', schema=None) as batch_op:
    batch_op.drop_column('landed_version')
"""


def migration_source(body: str, *, oldest_code: str | None) -> str:
    head = head_revision()
    return f'''"""the next release (a test's)

Revision ID: {NEXT}
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = {NEXT!r}
down_revision = {head!r}
branch_labels = None
depends_on = None
oldest_code_revision = {oldest_code or head!r}


def upgrade() -> None:
{textwrap.indent(body.strip(), "    ")}


def downgrade() -> None:
    pass
'''


def next_config(database_url: str, folder: Path, body: str = EXPAND, *, oldest_code: str | None = None) -> Config:
    """An Alembic config whose head is the next release's migration (written to `folder`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{NEXT}_next_release.py").write_text(migration_source(body, oldest_code=oldest_code))
    config = alembic_config(database_url)
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join([str(MIGRATIONS / "versions"), str(folder)]))
    return config


def next_release_path(root: Path, body: str = EXPAND, *, oldest_code: str | None = None) -> Path:
    """A directory to put first on PYTHONPATH: `filerelay.db` of this code with the next migration added."""
    target = root / "filerelay" / "db"
    shutil.copytree(MIGRATIONS.parent, target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "migrations" / "versions" / f"{NEXT}_next_release.py").write_text(
        migration_source(body, oldest_code=oldest_code)
    )
    return root
