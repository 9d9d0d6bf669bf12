"""deliveries record what identifies the version an upload put at the path (landed_version)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None
# The oldest code that runs against this schema (filerelay.db.schema_window): a nullable column.
oldest_code_revision = '0009'


def upgrade() -> None:
    # Rows written before have no record: their next unsure attempt sends again, as any kind that cannot tell.
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('landed_version', sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('landed_version')
