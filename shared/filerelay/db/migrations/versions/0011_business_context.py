"""business context: a repository's metadata wait, and documents indexed by their SAP business object

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 06:00:00

Nothing filled `metadata` before this revision (it was always `{}`), so the new columns start empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_WHERE = 'deleted_at IS NULL AND sap_object_type IS NOT NULL'


def upgrade() -> None:
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('metadata_wait_seconds', sa.Integer(), server_default=sa.text('0'), nullable=False)
        )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sap_object_type', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('sap_object_id', sa.String(length=90), nullable=True))
        batch_op.create_index(
            'ix_documents_live_object_type_received',
            ['workspace_id', 'sap_object_type', 'received_at'],
            unique=False,
            sqlite_where=sa.text(_WHERE),
            postgresql_where=sa.text(_WHERE),
        )
        batch_op.create_index(
            'ix_documents_live_object_received',
            ['workspace_id', 'sap_object_type', 'sap_object_id', 'received_at'],
            unique=False,
            sqlite_where=sa.text(_WHERE),
            postgresql_where=sa.text(_WHERE),
        )


def downgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_live_object_received')
        batch_op.drop_index('ix_documents_live_object_type_received')
        batch_op.drop_column('sap_object_id')
        batch_op.drop_column('sap_object_type')
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.drop_column('metadata_wait_seconds')
