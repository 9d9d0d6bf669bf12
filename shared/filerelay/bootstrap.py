"""Start-up chores shared by `filerelay up` and `config apply`: schema, config file, stale uploads."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from filerelay import documents
from filerelay.audit import CLI_ACTOR
from filerelay.clock import SystemClock
from filerelay.config_file import Summary, apply_file
from filerelay.db.migrate import upgrade
from filerelay.db.models import ApiKey, Role
from filerelay.db.session import engine_for, make_session_factory, session_scope
from filerelay.operations import Transaction, configuration
from filerelay.settings import Settings
from filerelay.staging import StagingStore

log = logging.getLogger(__name__)


def apply_config(settings: Settings, path: Path) -> Summary:
    engine = engine_for(settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return apply_file(session, path, now=SystemClock().now(), policy=settings.policy)
    finally:
        engine.dispose()


# A create renames its staged object into place and commits its row a moment later: an object older
# than this without a row was left by a process killed in between, never one still on its way.
UNREFERENCED_GRACE = dt.timedelta(minutes=10)


def release_unreferenced(session: Session, staging: StagingStore, *, batch: int = 500) -> int:
    """Delete staged objects no component points at (written before UNREFERENCED_GRACE)."""
    released = 0
    stale = staging.stale_keys(older_than=UNREFERENCED_GRACE)
    while keys := list(itertools.islice(stale, batch)):
        held = documents.staged_keys_in_use(session, keys)
        for key in keys:
            if key not in held:
                staging.delete(key)
                released += 1
    return released


# The workspace examples/demo.yaml configures: `filerelay up` on it, on loopback, gives its console a key.
DEMO_WORKSPACE = "demo/local"
DEMO_KEY_NAME = "console-demo"


def demo_admin_key(settings: Settings, *, now: dt.datetime) -> str | None:
    """A new admin key for the demo workspace, unless it already has a live one (a restart mints none)."""
    owner, slug = DEMO_WORKSPACE.split("/")
    engine = engine_for(settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            workspace = documents.find_workspace(session, owner=owner, slug=slug)
            if workspace is None:
                return None
            live_admins = session.scalars(
                select(ApiKey.id).where(
                    ApiKey.workspace_id == workspace.id,
                    ApiKey.role == Role.ADMIN.value,
                    ApiKey.revoked_at.is_(None),
                )
            ).first()
            if live_admins is not None:
                return None
            taken = set(session.scalars(select(ApiKey.name).where(ApiKey.workspace_id == workspace.id)))
            names = itertools.chain([DEMO_KEY_NAME], (f"{DEMO_KEY_NAME}-{i}" for i in itertools.count(2)))
            name = next(n for n in names if n not in taken)
            # Minted by `filerelay up`: an operator's command, audited as the command line's.
            tx = Transaction(session=session, actor=CLI_ACTOR, now=now)
            return configuration.create_key(tx, workspace_id=workspace.id, name=name, role=Role.ADMIN.value).key
    finally:
        engine.dispose()


def prepare(settings: Settings) -> Summary | None:
    """Migrate, apply FILERELAY_CONFIG if set, and clear uploads left by killed processes."""
    upgrade(settings.database_url, settings=settings)
    summary = apply_config(settings, settings.config_file) if settings.config_file else None
    staging = settings.open_staging()
    removed = staging.purge_orphans()
    if removed:
        log.info("removed %d partial upload(s) left by a stopped process", removed)
    engine = engine_for(settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            released = release_unreferenced(session, staging)
        if released:
            log.info("removed %d staged object(s) no document holds, left by a stopped process", released)
    finally:
        engine.dispose()
    return summary
