"""What the workspace_config modules share: their errors and the checks that raise them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from marshmallow import ValidationError
from marshmallow.validate import Validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from filerelay.db.models import Workspace
from filerelay.workspace_config.schemas import flatten_messages

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Record = TypeVar("Record", bound="DataclassInstance")


class ConfigurationError(Exception):
    """A change that cannot be made; nothing was changed. `field` names the input at fault."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidInput(ConfigurationError):
    pass


class NotFound(ConfigurationError):
    pass


class Conflict(ConfigurationError):
    pass


def invalid(exc: ValidationError, prefix: str = "") -> InvalidInput:
    """A marshmallow error as one message naming every problem, pointing at the first field named."""
    messages: dict[str, Any] = dict(exc.messages) if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    across_fields = messages.pop("_schema", [])
    problems = (flatten_messages(messages, prefix) if messages else []) + list(across_fields)
    field = "/".join(p for p in (prefix, next(iter(messages), "")) if p) or None
    return InvalidInput("; ".join(problems), field=field)


def validated(validators: Validator | Iterable[Validator], value: Any, field: str) -> None:
    for validator in [validators] if callable(validators) else validators:
        try:
            validator(value)
        except ValidationError as exc:
            raise InvalidInput(f"{field}: {'; '.join(exc.messages)}", field=field) from None


def assign_changed(obj: Any, values: Mapping[str, Any]) -> bool:
    """Set the attributes that differ; True when any did."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def storable(text: str) -> bool:
    """Whether an id from a URL could have been stored at all: PostgreSQL text holds no NUL, and a
    query naming one fails instead of finding nothing."""
    return "\x00" not in text


def flush_or_conflict(session: Session, message: str, field: str) -> None:
    """Uniqueness is the database's to decide: two admins creating the same name at once get one 409."""
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(message, field=field) from None


def get_workspace(session: Session, owner: str, slug: str) -> Workspace:
    workspace = session.scalar(select(Workspace).where(Workspace.owner_slug == owner, Workspace.slug == slug))
    if workspace is None:
        raise NotFound(f"no workspace {owner}/{slug}")
    return workspace


def workspace_row(session: Session, workspace_id: int) -> Workspace:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound(f"no workspace with id {workspace_id}")
    return workspace


def record(cls: type[Record], row: object, **values: Any) -> Record:
    """The answer record `cls` from a row: fields named like the row's attributes are copied, the
    others given in `values`. Records are what leave this package, never rows."""
    copied = {f.name: getattr(row, f.name) for f in fields(cls) if f.name not in values}
    return cls(**copied, **values)
