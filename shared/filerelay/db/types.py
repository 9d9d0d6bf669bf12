"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import weakref
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.types import TypeDecorator

from filerelay.secrets_box import Keyring, SecretsBoxError, open_sealed, seal


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores UTC and always hands back timezone-aware UTC (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use the Clock")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# The keyring of each engine, by its dialect (one per engine, and all a column type is handed). The keys
# come from the process's Settings, never from a global: filerelay.db.session.make_engine attaches them
# to the engine it builds, and an engine built without them cannot read or write a sealed column at all.
_KEYRINGS: weakref.WeakKeyDictionary[Dialect, Keyring] = weakref.WeakKeyDictionary()


def attach_keyring(engine: Engine, keyring: Keyring) -> None:
    _KEYRINGS[engine.dialect] = keyring


def keyring_of(engine: Engine) -> Keyring:
    return _keyring(engine.dialect)


def _keyring(dialect: Dialect) -> Keyring:
    keyring = _KEYRINGS.get(dialect)
    if keyring is None:
        raise SecretsBoxError("this database engine has no encryption keys: build it with make_engine(..., keyring=)")
    return keyring


class SealedJSON(TypeDecorator[dict[str, Any]]):
    """A mapping stored sealed (filerelay.secrets_box) in a JSON column, as one JSON string.

    The one place that encrypts (binding a value) and the one place that decrypts (loading a row), so every
    reader (the API, the delivery claim, a destination check, a content read-back) gets a plain dict and
    none can forget to decrypt. A stored value that is not sealed raises, never passes as plaintext.
    `purpose` is the associated data: a value copied from another sealed column does not open here."""

    impl = JSON
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return seal(_keyring(dialect), value, purpose=self.purpose)

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, Any] | None:
        if value is None:
            return None
        return open_sealed(_keyring(dialect), value, purpose=self.purpose)
