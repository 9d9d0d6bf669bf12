"""business context: a repository's metadata wait, and documents indexed by their SAP business object

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 06:00:00

Nothing filled `metadata` before this revision (it was always `{}`), so the new columns start empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# The oldest code that runs against this schema (filerelay.db.schema_window): a column with a default and
# nullable columns older code ignores, and indexes.
oldest_code_revision = '0012'

_WHERE = 'deleted_at IS NULL AND sap_object_type IS NOT NULL'


def upgrade() -> None:
    # Plain ADD COLUMN, never batch mode (which copies the table on SQLite).
    op.add_column(
        'repositories', sa.Column('metadata_wait_seconds', sa.Integer(), server_default=sa.text('0'), nullable=False)
    )
    op.add_column('documents', sa.Column('sap_object_type', sa.String(length=10), nullable=True))
    op.add_column('documents', sa.Column('sap_object_id', sa.String(length=90), nullable=True))
    # Built without locking creates out for the length of the build (PostgreSQL).
    with op.get_context().autocommit_block():
        op.create_index(
            'ix_documents_live_object_type_received',
            'documents',
            ['workspace_id', 'sap_object_type', 'received_at'],
            unique=False,
            sqlite_where=sa.text(_WHERE),
            postgresql_where=sa.text(_WHERE),
            postgresql_concurrently=True,
        )
        op.create_index(
            'ix_documents_live_object_received',
            'documents',
            ['workspace_id', 'sap_object_type', 'sap_object_id', 'received_at'],
            unique=False,
            sqlite_where=sa.text(_WHERE),
            postgresql_where=sa.text(_WHERE),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index('ix_documents_live_object_received', table_name='documents', postgresql_concurrently=True)
        op.drop_index('ix_documents_live_object_type_received', table_name='documents', postgresql_concurrently=True)
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_column('sap_object_id')
        batch_op.drop_column('sap_object_type')
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.drop_column('metadata_wait_seconds')
