"""What every process builds once from its settings: engine, sessions, staging, producer, clock, clients."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from filerelay.clock import Clock, SystemClock
from filerelay.db.group_commit import GroupCommit
from filerelay.db.session import engine_for, make_session_factory
from filerelay.destinations.base import Clients
from filerelay.file_links import FileLinks
from filerelay.queue import Enqueuer
from filerelay.settings import Settings
from filerelay.staging import StagingStore
from filerelay.workspace_snapshot import Snapshots


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    staging: StagingStore
    enqueuer: Enqueuer
    clock: Clock
    # Destination clients, reused across deliveries (and threads) of this process.
    clients: Clients = field(init=False)
    links: FileLinks = field(init=False)
    # What ArchiveLink requests read of each workspace's configuration, kept between requests.
    snapshots: Snapshots = field(init=False)
    # How new documents are committed: together with those of the process's other threads (SQLite).
    commits: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        self.clients = Clients(self.settings.policy)
        self.links = FileLinks(self.settings)
        self.snapshots = Snapshots(self.sessions)
        self.commits = GroupCommit(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def build_runtime(settings: Settings, *, clock: Clock | None = None, threads: int | None = None) -> Runtime:
    """With `threads`, the process runs that many threads that use the database at once: its pool keeps
    a connection for each (the default five, with more opened and closed again as needed, spent a
    PostgreSQL backend's start and end on many requests under load)."""
    engine = engine_for(settings) if threads is None else engine_for(settings, pool_size=threads)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        staging=settings.open_staging(),
        enqueuer=Enqueuer(settings),
        clock=clock or SystemClock(),
    )
