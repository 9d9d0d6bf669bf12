"""The audit log: which key retried, paused, resumed or switched a certificate, when, and through what.

Written in the same transaction as the change it records, so a change never lands unrecorded and a
refused one leaves no entry. Only admins read it (the console's audit page).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from filerelay.db.models import AuditEvent

RETRY = "document.retry"
BULK_RETRY = "documents.retry"
PAUSE = "destination.pause"
RESUME = "destination.resume"
ACTIVATE = "certificate.activate"
REVOKE = "certificate.revoke"


@dataclass(frozen=True)
class Actor:
    """Who acts: an API key's name (unique in its workspace) and whether through the REST API or the console."""

    name: str
    via: str  # "api" | "console"


def record(
    session: Session,
    *,
    workspace_id: int,
    actor: Actor,
    action: str,
    target: str,
    now: dt.datetime,
    **detail: Any,
) -> None:
    session.add(
        AuditEvent(
            workspace_id=workspace_id,
            at=now,
            actor=actor.name,
            via=actor.via,
            action=action,
            target=target,
            detail=detail,
        )
    )


def recent(session: Session, *, workspace_id: int, limit: int = 100) -> Sequence[AuditEvent]:
    """The workspace's latest entries, newest first."""
    return session.scalars(
        select(AuditEvent)
        .where(AuditEvent.workspace_id == workspace_id)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
    ).all()
