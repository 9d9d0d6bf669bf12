"""The audit log: who changed what, when, through which channel, with the settings before and after.

Every configuration change and every operation is written by filerelay.operations in the same
transaction as the change it records, so a change never lands unrecorded and a refused one leaves no
entry. Secrets never enter an entry: a changed secret is recorded as "changed". Admins read the log
(REST and console, the same rows); nothing edits it, and only the sweeper deletes entries, older than
FILERELAY_AUDIT_RETENTION_DAYS when that is set (filerelay.delivery.retention).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from filerelay.db.models import AuditEvent
from filerelay.keyset import Cursor

# Channels: how the actor reached FileRelay.
API = "api"
CONSOLE = "console"
CLI = "cli"
CONFIG_FILE = "config-file"
CHANNELS = (API, CONSOLE, CLI, CONFIG_FILE)

# Actions, named `<what>.<verb>`.
WORKSPACE_CREATE = "workspace.create"
DESTINATION_CREATE = "destination.create"
DESTINATION_UPDATE = "destination.update"
DESTINATION_DELETE = "destination.delete"
PAUSE = "destination.pause"
RESUME = "destination.resume"
REPOSITORY_CREATE = "repository.create"
REPOSITORY_UPDATE = "repository.update"
REPOSITORY_DELETE = "repository.delete"
ROUTE_CREATE = "route.create"
ROUTE_DELETE = "route.delete"
SETTINGS_UPDATE = "settings.update"
API_KEY_CREATE = "api_key.create"
API_KEY_UPDATE = "api_key.update"
API_KEY_REVOKE = "api_key.revoke"
ACTIVATE = "certificate.activate"
REVOKE = "certificate.revoke"
RETRY = "document.retry"
BULK_RETRY = "documents.retry"
FILE_DELETE = "file.delete"
DOCUMENT_METADATA = "document.metadata"
ACTIONS = (
    WORKSPACE_CREATE,
    DESTINATION_CREATE,
    DESTINATION_UPDATE,
    DESTINATION_DELETE,
    PAUSE,
    RESUME,
    REPOSITORY_CREATE,
    REPOSITORY_UPDATE,
    REPOSITORY_DELETE,
    ROUTE_CREATE,
    ROUTE_DELETE,
    SETTINGS_UPDATE,
    API_KEY_CREATE,
    API_KEY_UPDATE,
    API_KEY_REVOKE,
    ACTIVATE,
    REVOKE,
    RETRY,
    BULK_RETRY,
    FILE_DELETE,
    DOCUMENT_METADATA,
)

# What an entry says of a secret that changed: never its value, nor anything derived from it.
CHANGED = "changed"


@dataclass(frozen=True)
class Actor:
    """Who acts: an API key (its name, unique in its workspace, and its prefix) through the REST API or
    the console; or the operator through the command line or a config file."""

    name: str
    channel: str  # api | console | cli | config-file
    key_prefix: str | None = None


CLI_ACTOR = Actor(name=CLI, channel=CLI)
CONFIG_FILE_ACTOR = Actor(name=CONFIG_FILE, channel=CONFIG_FILE)


@dataclass(frozen=True)
class Secret:
    """A secret setting as a before/after view holds it: a digest, enough to tell whether it changed.
    Views are compared in memory and never written; diff() turns a changed secret into "changed"."""

    digest: str

    @classmethod
    def of(cls, value: object) -> Secret | None:
        """None for a secret that is not set, so setting one reads as a change and leaving it unset not."""
        if value in (None, ""):
            return None
        return cls(hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest())


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields that differ between two views (None: the item did not exist, or no longer does), as
    {"field": {"before": …, "after": …}}; a secret as {"field": "changed"}."""
    old, new = before or {}, after or {}
    changes: dict[str, Any] = {}
    for name in sorted(old.keys() | new.keys()):
        was, now = old.get(name), new.get(name)
        if was == now:
            continue
        if isinstance(was, Secret) or isinstance(now, Secret):
            changes[name] = CHANGED
        else:
            changes[name] = {"before": was, "after": now}
    return changes


def record(
    session: Session,
    *,
    workspace_id: int,
    actor: Actor,
    action: str,
    target: str,
    now: dt.datetime,
    changes: Mapping[str, Any] | None = None,
    **detail: Any,
) -> None:
    """One entry, in the session of the change it records. Called by filerelay.operations only."""
    session.add(
        AuditEvent(
            workspace_id=workspace_id,
            at=now,
            actor=actor.name,
            actor_prefix=actor.key_prefix,
            via=actor.channel,
            action=action,
            target=target[:255],
            detail=detail,
            changes=dict(changes or {}),
        )
    )


def decode_cursor(text: str) -> Cursor:
    """A cursor of this listing; ValueError for anything else."""
    cursor = Cursor.decode(text)
    if not cursor.key.isdigit():
        raise ValueError("not a cursor from a previous page's meta.next_cursor")
    return cursor


@dataclass(frozen=True)
class AuditPage:
    events: Sequence[AuditEvent]
    # Where the next (older) page starts; None on the last page.
    next_cursor: Cursor | None


def listing(
    session: Session,
    *,
    workspace_id: int,
    per_page: int,
    action: str | None = None,
    target: str | None = None,
    since: dt.datetime | None = None,
    after: Cursor | None = None,
) -> AuditPage:
    """The workspace's entries, newest first, `per_page` at a time after the cursor `after`; only those of
    `action`, of `target`, and at or after `since`, when given."""
    query = select(AuditEvent).where(AuditEvent.workspace_id == workspace_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if target is not None:
        query = query.where(AuditEvent.target == target)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if after is not None:
        query = query.where(tuple_(AuditEvent.at, AuditEvent.id) < tuple_(after.at, int(after.key)))
    rows = session.scalars(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(per_page + 1)).all()
    events, more = rows[:per_page], len(rows) > per_page
    last = events[-1] if events else None
    return AuditPage(events=events, next_cursor=Cursor(last.at, str(last.id)) if more and last is not None else None)
