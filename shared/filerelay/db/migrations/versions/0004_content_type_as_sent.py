"""keep each component's Content-Type as SAP sent it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None
# The oldest code that runs against this schema (filerelay.db.schema_window): a nullable column older code leaves empty.
oldest_code_revision = '0003'


def upgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_type_sent', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_column('content_type_sent')
