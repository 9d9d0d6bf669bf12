"""indexes for listing live documents

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:58:43.532131
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None
# The oldest code that runs against this schema (filerelay.db.schema_window): indexes only.
oldest_code_revision = '0001'


def upgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_documents_workspace_received'))
        batch_op.drop_index(batch_op.f('ix_documents_workspace_status_received'))
        batch_op.create_index('ix_documents_live_received', ['workspace_id', 'received_at'], unique=False, sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))
        batch_op.create_index('ix_documents_live_repository_received', ['repository_id', 'received_at'], unique=False, sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))
        batch_op.create_index('ix_documents_live_repository_status_received', ['repository_id', 'status', 'received_at'], unique=False, sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))
        batch_op.create_index('ix_documents_live_status_received', ['workspace_id', 'status', 'received_at'], unique=False, sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))



def downgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_live_repository_status_received', sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))
        batch_op.drop_index('ix_documents_live_status_received', sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))
        batch_op.drop_index('ix_documents_live_repository_received', sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))
        batch_op.drop_index('ix_documents_live_received', sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))
        batch_op.create_index(batch_op.f('ix_documents_workspace_status_received'), ['workspace_id', 'status', 'received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_documents_workspace_received'), ['workspace_id', 'received_at'], unique=False)

