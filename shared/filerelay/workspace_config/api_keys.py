"""API keys: created with a random key shown once, stored as a hash, revoked but never deleted."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from filerelay.config_file import KEY_NAME, KEY_PREFIX, ROLE, key_columns
from filerelay.db.models import ApiKey
from filerelay.workspace_config.common import NotFound, flush_or_conflict, record, storable, validated


@dataclass(frozen=True)
class KeyInfo:
    name: str
    role: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class NewKey:
    info: KeyInfo
    # The only time the key exists outside its holder's hands: it is stored as a hash.
    key: str


def generate_key() -> str:
    # 24 random bytes: 192 bits, far beyond guessing; url-safe so it fits a header unquoted.
    return KEY_PREFIX + secrets.token_urlsafe(24)


def list_keys(session: Session, *, workspace_id: int) -> list[KeyInfo]:
    rows = session.scalars(select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.name))
    return [record(KeyInfo, k) for k in rows]


def create_key(session: Session, *, workspace_id: int, name: str, role: str, now: dt.datetime) -> NewKey:
    validated(KEY_NAME, name, "name")
    validated(ROLE, role, "role")
    key = generate_key()
    row = ApiKey(workspace_id=workspace_id, name=name, role=role, created_at=now, **key_columns(key))
    session.add(row)
    # A revoked key keeps its name, so that the audit trail stays unambiguous.
    flush_or_conflict(session, f"an API key named {name!r} already exists (revoked keys keep their name)", "name")
    return NewKey(info=record(KeyInfo, row), key=key)


def revoke_key(session: Session, *, workspace_id: int, name: str, now: dt.datetime) -> KeyInfo:
    """Revoking twice keeps the first revocation time."""
    key = None
    if storable(name):
        key = session.scalar(select(ApiKey).where(ApiKey.workspace_id == workspace_id, ApiKey.name == name))
    if key is None:
        raise NotFound(f"no API key named {name!r}")
    if key.revoked_at is None:
        key.revoked_at = now
    session.flush()
    return record(KeyInfo, key)
