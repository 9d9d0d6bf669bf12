"""Start-up chores shared by `filerelay up` and `config apply`: schema, config file, stale uploads."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select

from filerelay.clock import SystemClock
from filerelay.config_file import Summary, apply_file
from filerelay.db.migrate import upgrade
from filerelay.db.models import Repository, SignatureMode
from filerelay.db.session import make_engine, make_session_factory, session_scope
from filerelay.settings import Settings

log = logging.getLogger(__name__)


def apply_config(settings: Settings, path: Path) -> Summary:
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return apply_file(session, path, now=SystemClock().now())
    finally:
        engine.dispose()


def prepare(settings: Settings) -> Summary | None:
    """Migrate, apply FILERELAY_CONFIG if set, and clear uploads left by killed processes."""
    upgrade(settings.database_url)
    summary = apply_config(settings, settings.config_file) if settings.config_file else None
    removed = settings.open_staging().purge_orphans()
    if removed:
        log.info("removed %d partial upload(s) left by a stopped process", removed)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            signed = session.scalars(
                select(Repository.repo_id).where(Repository.signature == SignatureMode.REQUIRED.value)
            ).all()
    finally:
        engine.dispose()
    if signed:
        log.warning(
            "repositories %s ask for signed URLs, but secKey verification is not built yet: "
            "requests are accepted unsigned",
            ", ".join(signed),
        )
    return summary
