"""the claim walks each destination's waiting deliveries in the order they fall due: the partial index of
waiting deliveries per destination gains next_attempt_at (it still serves what the old one did)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-10 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None
# The oldest code that runs against this schema (filerelay.db.schema_window): only indexes change.
oldest_code_revision = '0014'

_WAITING = sa.text("status IN ('pending', 'retrying')")


def upgrade() -> None:
    # Built without locking creates and deliveries out for the length of the build (PostgreSQL).
    with op.get_context().autocommit_block():
        op.create_index(
            'ix_deliveries_waiting_due',
            'deliveries',
            ['destination_id', 'next_attempt_at'],
            unique=False,
            sqlite_where=_WAITING,
            postgresql_where=_WAITING,
            postgresql_concurrently=True,
        )
        op.drop_index('ix_deliveries_waiting_destination', table_name='deliveries', postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            'ix_deliveries_waiting_destination',
            'deliveries',
            ['destination_id'],
            unique=False,
            sqlite_where=_WAITING,
            postgresql_where=_WAITING,
            postgresql_concurrently=True,
        )
        op.drop_index('ix_deliveries_waiting_due', table_name='deliveries', postgresql_concurrently=True)
