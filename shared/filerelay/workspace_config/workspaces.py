"""Workspaces: created by `config apply` (there is no API to create one), found by their slugs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from filerelay.db.models import Workspace
from filerelay.workspace_config.retry_settings import default_columns


def put_workspace(session: Session, *, owner: str, slug: str, now: dt.datetime) -> tuple[Workspace, bool]:
    """The workspace, created with default retry settings when it does not exist; True when created."""
    workspace = session.scalar(select(Workspace).where(Workspace.owner_slug == owner, Workspace.slug == slug))
    if workspace is not None:
        return workspace, False
    workspace = Workspace(owner_slug=owner, slug=slug, created_at=now, **default_columns())
    session.add(workspace)
    session.flush()
    return workspace, True
