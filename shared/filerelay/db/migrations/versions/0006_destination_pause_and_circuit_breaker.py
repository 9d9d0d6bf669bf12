"""a destination's pause and circuit breaker, apart from its configuration

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import filerelay.db.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None
# The oldest code that runs against this schema (filerelay.db.schema_window): new columns with defaults.
oldest_code_revision = '0005'


def upgrade() -> None:
    with op.batch_alter_table('destinations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused_at', filerelay.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column('consecutive_failures', sa.Integer(), nullable=False, server_default=sa.text('0'))
        )
        batch_op.add_column(
            sa.Column('breaker_opened_at', filerelay.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column('probe_delivery_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('held_since', filerelay.db.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('destinations', schema=None) as batch_op:
        batch_op.drop_column('held_since')
        batch_op.drop_column('probe_delivery_id')
        batch_op.drop_column('breaker_opened_at')
        batch_op.drop_column('consecutive_failures')
        batch_op.drop_column('paused_at')
