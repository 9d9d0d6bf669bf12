"""API keys: created with a random key shown once, stored as a hash, revoked but never deleted."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from marshmallow import fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from filerelay.audit import Secret
from filerelay.db.models import ApiKey, Workspace
from filerelay.workspace_config.common import (
    NotFound,
    assign_changed,
    flush_or_conflict,
    record,
    storable,
    validated,
)
from filerelay.workspace_config.schemas import KEY_NAME, ROLE, ApiKeyCreate

KEY_PREFIX = "fr_live_"


class ApiKeyWithValue(ApiKeyCreate):
    """A key whose value the operator chose (a config file's `api_keys`), held to the generated keys' shape."""

    key = fields.String(
        required=True,
        validate=validate.Regexp(
            rf"^{KEY_PREFIX}[A-Za-z0-9_-]{{16,}}$",
            error=f"an API key starts with {KEY_PREFIX} followed by at least 16 letters, digits, '_' or '-'",
        ),
    )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def live_key(session: Session, key: str) -> tuple[ApiKey, Workspace] | None:
    """The unrevoked key `key` and its workspace; None for anything else (not a key, unknown, revoked)."""
    key = key.strip()
    if not key.startswith(KEY_PREFIX):
        return None
    digest = hash_key(key)
    row = session.execute(
        select(ApiKey, Workspace).join(Workspace).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    ).one_or_none()
    # The lookup is by hash; compare again in constant time so no timing reveals a near match.
    if row is None or not hmac.compare_digest(row.ApiKey.key_hash, digest):
        return None
    return row.ApiKey, row.Workspace


def key_columns(key: str) -> dict[str, str]:
    """What is stored of a key: its hash, and a prefix short enough to reveal nothing but which key it is."""
    return {"key_hash": hash_key(key), "prefix": key[:12]}


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


def put_key(session: Session, *, workspace_id: int, name: str, role: str, key: str, now: dt.datetime) -> str | None:
    """Create the named key with the given value, or bring it to this role and value: `config apply`.
    Answers "created", "updated" or None when nothing changed."""
    validated(KEY_NAME, name, "name")
    validated(ROLE, role, "role")
    values = {"role": role, **key_columns(key)}
    row = session.scalar(select(ApiKey).where(ApiKey.workspace_id == workspace_id, ApiKey.name == name))
    if row is None:
        session.add(ApiKey(workspace_id=workspace_id, name=name, created_at=now, **values))
        flush_or_conflict(session, "an API key with this value exists under another name", "key")
        return "created"
    return "updated" if assign_changed(row, values) else None


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


def audit_view(session: Session, *, workspace_id: int, name: str) -> dict[str, Any] | None:
    """The key as the audit log compares it before and after a change (None: there is none): its role,
    prefix and whether it is revoked; the key itself only as audit.Secret (of its hash), never its value."""
    row = None
    if storable(name):
        row = session.scalar(select(ApiKey).where(ApiKey.workspace_id == workspace_id, ApiKey.name == name))
    if row is None:
        return None
    return {
        "role": row.role,
        "prefix": row.prefix,
        "revoked": row.revoked_at is not None,
        "key": Secret.of(row.key_hash),
    }
