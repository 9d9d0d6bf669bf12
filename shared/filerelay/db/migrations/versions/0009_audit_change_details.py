"""the audit log records every change: the actor's key prefix, the changed settings, indexes for its API

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None
# The oldest code that runs against this schema (filerelay.db.schema_window): new columns with defaults; an index replaced.
oldest_code_revision = '0008'


def upgrade() -> None:
    # Rows written before keep reading: no prefix (null) and no recorded settings ({}).
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor_prefix', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('changes', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.drop_index('ix_audit_events_workspace_at')
        batch_op.create_index('ix_audit_events_workspace_at_id', ['workspace_id', 'at', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_workspace_target', ['workspace_id', 'target'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_workspace_target')
        batch_op.drop_index('ix_audit_events_workspace_at_id')
        batch_op.create_index('ix_audit_events_workspace_at', ['workspace_id', 'at'], unique=False)
        batch_op.drop_column('changes')
        batch_op.drop_column('actor_prefix')
