"""record which code still runs against each schema (schema_window), for rolling upgrades

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None
# The oldest code that runs against this schema (filerelay.db.schema_window): a new table older code ignores.
oldest_code_revision = '0011'


def upgrade() -> None:
    op.create_table(
        'schema_window',
        sa.Column('revision', sa.String(length=32), nullable=False),
        sa.Column('oldest_code_revision', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('revision'),
    )


def downgrade() -> None:
    op.drop_table('schema_window')
