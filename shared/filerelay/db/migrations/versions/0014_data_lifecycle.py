"""data lifecycle: why a document's staged bytes were released, and the indexes the sweeper's retention
steps walk (finished documents by status and age, a header's components, audit entries by age)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-09 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import filerelay.db.types

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None
# The oldest code that runs against this schema (filerelay.db.schema_window): nullable columns older code
# ignores, and indexes.
oldest_code_revision = '0013'


def upgrade() -> None:
    # Plain ADD COLUMN, never batch mode (which copies the table on SQLite): nullable, so instant on PostgreSQL.
    op.add_column('documents', sa.Column('staging_released_at', filerelay.db.types.UTCDateTime(timezone=True), nullable=True))
    op.add_column('documents', sa.Column('staging_released_reason', sa.String(length=255), nullable=True))
    # Built without locking creates and deliveries out for the length of the build (PostgreSQL).
    with op.get_context().autocommit_block():
        op.create_index(
            'ix_documents_status_updated',
            'documents',
            ['status', 'updated_at'],
            unique=False,
            postgresql_concurrently=True,
        )
        op.create_index(
            'ix_documents_archive_document',
            'documents',
            ['archive_document_id'],
            unique=False,
            postgresql_concurrently=True,
        )
        op.create_index('ix_audit_events_at', 'audit_events', ['at'], unique=False, postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index('ix_audit_events_at', table_name='audit_events', postgresql_concurrently=True)
        op.drop_index('ix_documents_archive_document', table_name='documents', postgresql_concurrently=True)
        op.drop_index('ix_documents_status_updated', table_name='documents', postgresql_concurrently=True)
    op.drop_column('documents', 'staging_released_reason')
    op.drop_column('documents', 'staging_released_at')
