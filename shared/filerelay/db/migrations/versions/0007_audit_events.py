"""an audit log of the changes people make by hand, and the indexes of the console's overview

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import filerelay.db.types

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None
# The oldest code that runs against this schema (filerelay.db.schema_window): a new table and indexes.
oldest_code_revision = '0006'


def upgrade() -> None:
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('workspace_id', sa.Integer(), nullable=False),
        sa.Column('at', filerelay.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=100), nullable=False),
        sa.Column('via', sa.String(length=16), nullable=False),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('target', sa.String(length=255), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_audit_events_workspace_at', 'audit_events', ['workspace_id', 'at'], unique=False)
    op.create_index(
        'ix_deliveries_destination_delivered', 'deliveries', ['destination_id', 'delivered_at'], unique=False
    )
    op.create_index(
        'ix_deliveries_waiting_destination',
        'deliveries',
        ['destination_id'],
        unique=False,
        sqlite_where=sa.text("status IN ('pending', 'retrying')"),
        postgresql_where=sa.text("status IN ('pending', 'retrying')"),
    )
    op.create_index(
        'ix_delivery_attempts_failed_finished',
        'delivery_attempts',
        ['finished_at'],
        unique=False,
        sqlite_where=sa.text("outcome = 'failed'"),
        postgresql_where=sa.text("outcome = 'failed'"),
    )


def downgrade() -> None:
    op.drop_index('ix_delivery_attempts_failed_finished', table_name='delivery_attempts')
    op.drop_index('ix_deliveries_waiting_destination', table_name='deliveries')
    op.drop_index('ix_deliveries_destination_delivered', table_name='deliveries')
    op.drop_index('ix_audit_events_workspace_at', table_name='audit_events')
    op.drop_table('audit_events')
