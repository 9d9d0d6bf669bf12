"""A workspace's retry settings: max retries, TTL and backoff."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from marshmallow import ValidationError
from sqlalchemy.orm import Session

from filerelay.db.models import Workspace
from filerelay.workspace_config.common import assign_changed, invalid, workspace_row
from filerelay.workspace_config.schemas import RetrySettingsSchema


@dataclass(frozen=True)
class RetrySettings:
    """Durations in seconds."""

    max_retries: int
    ttl: int
    backoff_base: int
    backoff_max: int


def _retry_settings(workspace: Workspace) -> RetrySettings:
    return RetrySettings(
        max_retries=workspace.max_retries,
        ttl=workspace.retry_ttl_seconds,
        backoff_base=workspace.backoff_base_seconds,
        backoff_max=workspace.backoff_max_seconds,
    )


def _columns(settings: Mapping[str, int]) -> dict[str, int]:
    return {
        "max_retries": settings["max_retries"],
        "retry_ttl_seconds": settings["ttl"],
        "backoff_base_seconds": settings["backoff_base"],
        "backoff_max_seconds": settings["backoff_max"],
    }


def default_columns() -> dict[str, int]:
    """A new workspace's retry columns."""
    return _columns(RetrySettingsSchema().load({}))


def get_retry_settings(session: Session, *, workspace_id: int) -> RetrySettings:
    return _retry_settings(workspace_row(session, workspace_id))


def update_retry_settings(session: Session, *, workspace_id: int, changes: Mapping[str, Any]) -> RetrySettings:
    """Merge the changes over the current settings and check the whole as a config file's `retry`,
    so a change of one value cannot break a rule between two (backoff_base <= backoff_max)."""
    workspace = workspace_row(session, workspace_id)
    try:
        merged: dict[str, int] = RetrySettingsSchema().load({**asdict(_retry_settings(workspace)), **changes})
    except ValidationError as exc:
        raise invalid(exc) from None
    assign_changed(workspace, _columns(merged))
    session.flush()
    return _retry_settings(workspace)


def put_retry_settings(session: Session, *, workspace_id: int, values: Mapping[str, Any]) -> bool:
    """Set the whole of the retry settings (`config apply`); True when anything changed."""
    before = get_retry_settings(session, workspace_id=workspace_id)
    return update_retry_settings(session, workspace_id=workspace_id, changes=values) != before
