"""Destination secrets as stored, below the model's SealedJSON: sealing the rows written before
encryption (migration 0008), and re-sealing under the first key (`filerelay secrets rotate`).

These read and write the raw column (a JSON string `fr1:…`, or a plaintext object before 0008) through a
table of their own, so the model's type does not open or seal them a second time.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from filerelay.secrets_box import Keyring, SecretsBoxError, is_sealed, key_id_of, open_sealed, seal

PURPOSE = "destinations.secrets"  # filerelay.db.models.SECRETS_PURPOSE; a migration must not import models
BATCH = 200

_DESTINATIONS = sa.table("destinations", sa.column("id", sa.Integer), sa.column("secrets", sa.JSON))


def _rows_after(connection: Connection, last: int, size: int, *, lock: bool) -> list[tuple[int, object]]:
    query = (
        sa.select(_DESTINATIONS.c.id, _DESTINATIONS.c.secrets)
        .where(_DESTINATIONS.c.id > last)
        .order_by(_DESTINATIONS.c.id)
        .limit(size)
    )
    if lock:
        query = query.with_for_update()  # PostgreSQL: no API request changes a row between read and write
    return [(row.id, row.secrets) for row in connection.execute(query)]


def _set(connection: Connection, row_id: int, value: object) -> None:
    connection.execute(sa.update(_DESTINATIONS).where(_DESTINATIONS.c.id == row_id).values(secrets=value))


def seal_plaintext(connection: Connection, keyring: Callable[[], Keyring], *, size: int = BATCH) -> int:
    """Seal every row still holding a plaintext object; the keyring is asked for only if there is one (a
    new database migrates without keys). Returns how many rows were sealed."""
    sealed, last, keys = 0, 0, None
    while rows := _rows_after(connection, last, size, lock=False):
        for row_id, value in rows:
            last = row_id
            if is_sealed(value):
                continue
            if not isinstance(value, dict):
                raise SecretsBoxError(f"destination row {row_id}: secrets are neither sealed nor an object")
            keys = keys or keyring()
            _set(connection, row_id, seal(keys, value, purpose=PURPOSE))
            sealed += 1
    return sealed


def unseal(connection: Connection, keyring: Callable[[], Keyring], *, size: int = BATCH) -> int:
    """The reverse, for a downgrade below 0008: every sealed row back to its plaintext object."""
    opened, last, keys = 0, 0, None
    while rows := _rows_after(connection, last, size, lock=False):
        for row_id, value in rows:
            last = row_id
            if is_sealed(value):
                keys = keys or keyring()
                _set(connection, row_id, open_sealed(keys, value, purpose=PURPOSE))
                opened += 1
    return opened


def rotate(engine: Engine, keyring: Keyring, *, size: int = BATCH) -> int:
    """Re-seal under the keyring's first key every row sealed under another; one transaction per batch, so
    a long run holds no lock for long and an interrupted one resumes where it stopped when run again.
    Returns how many rows it re-sealed; a second run re-seals none."""
    resealed, last = 0, 0
    while True:
        with engine.begin() as connection:
            rows = _rows_after(connection, last, size, lock=True)
            for row_id, value in rows:
                if key_id_of(value) != keyring.primary.id:
                    plain = open_sealed(keyring, value, purpose=PURPOSE)
                    _set(connection, row_id, seal(keyring, plain, purpose=PURPOSE))
                    resealed += 1
        if not rows:
            return resealed
        last = rows[-1][0]
