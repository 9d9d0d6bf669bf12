"""The unit every change runs in: one session, one clock reading, its audit entries, and the wake-ups
sent after the commit (the queue is only a wake-up call; the sweeper sends any that get lost)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from filerelay import audit, workspace_snapshot
from filerelay.audit import Actor
from filerelay.clock import Clock
from filerelay.db.session import session_scope
from filerelay.delivery.transitions import Wake
from filerelay.queue import Enqueuer


class UnknownItem(LookupError):
    """The document or file named is not in the workspace (or no longer is); nothing was changed."""


@dataclass(frozen=True)
class Context:
    """What a channel hands the operations layer: the database, who acts, the clock, and the producer
    (None where nothing is ever woken: the command line's key and certificate commands, `config apply`)."""

    sessions: sessionmaker[Session]
    actor: Actor
    clock: Clock
    enqueuer: Enqueuer | None = None


@dataclass
class Transaction:
    """An open unit of work: the change and its audit entries commit together, or neither does."""

    session: Session
    actor: Actor
    now: dt.datetime
    wakes: list[Wake] = field(default_factory=list)
    # Workspaces whose config_version this transaction has moved (once each is enough).
    moved: set[int] = field(default_factory=set)

    def audit(
        self,
        *,
        workspace_id: int,
        action: str,
        target: str,
        changes: Mapping[str, Any] | None = None,
        **detail: Any,
    ) -> None:
        """Record the change; one that alters what ArchiveLink requests read of the workspace also moves its
        config_version, so every process's snapshot of it is out of date once this commits."""
        if action in workspace_snapshot.SNAPSHOT_ACTIONS and workspace_id not in self.moved:
            workspace_snapshot.moved(self.session, workspace_id=workspace_id)
            self.moved.add(workspace_id)
        audit.record(
            self.session,
            workspace_id=workspace_id,
            actor=self.actor,
            action=action,
            target=target,
            now=self.now,
            changes=changes,
            **detail,
        )

    def wake(self, wakes: Iterable[Wake]) -> None:
        """Deliveries to wake once the transaction has committed."""
        self.wakes.extend(wakes)


@contextmanager
def transaction(context: Context) -> Iterator[Transaction]:
    """Commit on success (roll back on any exception), then send the wake-ups."""
    with session_scope(context.sessions) as session:
        tx = Transaction(session=session, actor=context.actor, now=context.clock.now())
        yield tx
    # Without a producer (a command-line channel) the sweeper wakes them: they are due in the database.
    if tx.wakes and context.enqueuer is not None:
        context.enqueuer.enqueue(tx.wakes)
