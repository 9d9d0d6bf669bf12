"""The small interface every destination kind implements, and the registry of kinds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError


class DestinationError(Exception):
    """A delivery failed. `retryable` False means no retry will help (bad config, rejected content)."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class DestinationKind:
    """A kind's name, its settings schema, and which of its settings are secrets (write-only)."""

    name: str
    schema: type[Schema]
    secret_fields: frozenset[str] = frozenset()

    def validate(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check a kind's settings; return (settings, secrets), split so secrets are stored apart."""
        loaded: dict[str, Any] = self.schema().load(dict(values))
        settings = {k: v for k, v in loaded.items() if k not in self.secret_fields}
        secrets = {k: v for k, v in loaded.items() if k in self.secret_fields}
        return settings, secrets


REGISTRY: dict[str, DestinationKind] = {}


def register(kind: DestinationKind) -> DestinationKind:
    REGISTRY[kind.name] = kind
    return kind


def get_kind(name: str) -> DestinationKind:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValidationError(f"unknown destination kind {name!r}; known kinds: {known}") from None
