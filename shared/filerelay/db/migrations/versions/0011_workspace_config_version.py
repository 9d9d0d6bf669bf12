"""workspaces.config_version: bumped by every configuration change, so a process knows when its snapshot of
the workspace's configuration is out of date

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None
# The oldest code that runs against this schema (filerelay.db.schema_window): a column with a default, which
# older code neither reads nor bumps (a configuration changed through an older process during the upgrade
# reaches the newer processes' snapshots with the next change).
oldest_code_revision = '0010'


def upgrade() -> None:
    # A plain ADD COLUMN, never batch mode: on SQLite batch mode copies the table and drops the old one,
    # and with foreign keys on, dropping `workspaces` deletes every row that cascades from it.
    op.add_column('workspaces', sa.Column('config_version', sa.Integer(), nullable=False, server_default=sa.text('0')))


def downgrade() -> None:
    # DROP COLUMN (SQLite 3.35+) for the same reason: no copy of the table.
    op.drop_column('workspaces', 'config_version')
