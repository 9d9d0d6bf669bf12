"""destination secrets sealed at rest: every row written before encryption is encrypted in place

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 02:00:00

The column stays JSON: a sealed value is one JSON string (`fr1:<key id>:…`, filerelay.secrets_box), so no
table is rebuilt. The keys are the process's (FILERELAY_ENCRYPTION_KEYS, or the one generated under
FILERELAY_HOME with SQLite), read the way `filerelay migrate` reads them, and only when a row needs them:
a new database migrates without keys.
"""

from __future__ import annotations

from alembic import op

from filerelay.db import sealed_rows
from filerelay.db.migrate import SETTINGS
from filerelay.encryption_keys import encryption_keyring
from filerelay.secrets_box import Keyring
from filerelay.settings import Settings

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None
# The oldest code that runs against this schema (filerelay.db.schema_window): contract: secrets sealed in place, which code before it cannot read.
oldest_code_revision = '0008'


def _keyring() -> Keyring:
    config = op.get_context().config
    settings = config.attributes.get(SETTINGS) if config is not None else None
    if settings is None:
        # Called without the process's settings (Alembic run by hand): the environment's, for this URL.
        url = config.get_main_option("sqlalchemy.url") if config is not None else None
        settings = Settings.from_env()
        if url:
            settings = settings.with_overrides(database_url=url)
    return encryption_keyring(settings)


def upgrade() -> None:
    sealed_rows.seal_plaintext(op.get_bind(), _keyring)


def downgrade() -> None:
    sealed_rows.unseal(op.get_bind(), _keyring)
