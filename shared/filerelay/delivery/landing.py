"""Recording, during an attempt, what identifies the version its upload puts at the path.

A destination calls `Payload.landing` with its own text (SharePoint: the sha256 and the UniqueId of the
file it is about to move into place); it is written on the delivery at once, in its own transaction, so
that it outlives a worker killed a moment later. The next attempt, unsure whether the last one landed,
hands it to the destination's `holds_landed` instead of having the copy read back.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from filerelay.db import rows
from filerelay.db.models import Delivery
from filerelay.db.session import session_scope

_DELIVERIES = rows.table(Delivery)


def recorder(sessions: sessionmaker[Session], delivery_id: str) -> Callable[[str], None]:
    """`Payload.landing` for one attempt of `delivery_id`. Raises when the database cannot take it: the
    destination then stops before the version becomes current, and the attempt is retried."""

    def record(version: str) -> None:
        with session_scope(sessions) as session:
            session.execute(update(_DELIVERIES).where(_DELIVERIES.c.id == delivery_id).values(landed_version=version))

    return record
