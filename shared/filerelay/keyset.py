"""The cursor of a listing paged newest first by (time, id): the documents listing and the audit log.

Opaque on the wire (url-safe base64 of a JSON pair); the next page starts after the position it names.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Cursor:
    """Where a page ends, in the listing's order (newest first): the next page starts after it."""

    at: dt.datetime
    key: str

    def encode(self) -> str:
        raw = json.dumps([self.at.isoformat(), self.key], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raise ValueError for anything that is not a cursor this module wrote."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            at, key = json.loads(raw)
            when = dt.datetime.fromisoformat(at)
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ValueError("not a cursor from a previous page's meta.next_cursor") from exc
        if not isinstance(key, str) or when.tzinfo is None:
            raise ValueError("not a cursor from a previous page's meta.next_cursor")
        return cls(when, key)
