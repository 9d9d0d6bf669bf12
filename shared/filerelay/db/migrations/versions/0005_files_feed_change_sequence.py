"""number the Files feed's changes in commit order

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None
# The oldest code that runs against this schema (filerelay.db.schema_window): itself: code before it
# changes documents without sending them to the end of the Files feed.
oldest_code_revision = '0005'


def upgrade() -> None:
    counter = op.create_table(
        'change_counter',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('value', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.bulk_insert(counter, [{'id': 1, 'value': 0}])
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_seq', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_documents_workspace_change_seq', ['workspace_id', 'change_seq'], unique=False)
        batch_op.create_index('ix_documents_unsequenced', ['updated_at', 'id'], unique=False, sqlite_where=sa.text('change_seq IS NULL'), postgresql_where=sa.text('change_seq IS NULL'))


def downgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_unsequenced', sqlite_where=sa.text('change_seq IS NULL'), postgresql_where=sa.text('change_seq IS NULL'))
        batch_op.drop_index('ix_documents_workspace_change_seq')
        batch_op.drop_column('change_seq')
    op.drop_table('change_counter')
