"""A PostgreSQL restart under steady creates costs SAP no error: a request that finds the database gone
waits for it to come back (it restarts in about a second), instead of answering 500 (docs/operations.md#when-the-database-or-redis-restarts)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from filerelay.clock import SystemClock
from filerelay.config_file import apply, load
from filerelay.db.migrate import upgrade
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime, build_runtime
from filerelay.settings import Settings
from tests.support.app_server import serving
from tests.support.databases import TEST_ENCRYPTION_KEY
from tests.support.policy import LOOPBACK
from tests.support.private_servers import PrivatePostgres, private_postgres
from tests.support.sapclient import SapClient

pytestmark = pytest.mark.slow

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
CONFIG = """
workspaces:
  - owner: acme
    slug: production
    destinations:
      - {id: dest_folder, name: Folder, kind: folder, root: "%s"}
    repositories:
      - {id: Z1, description: Invoices, signature: none, destinations: [dest_folder]}
"""


@contextmanager
def api_on(pg: PrivatePostgres, home: Path) -> Iterator[SapClient]:
    url = pg.create_database("relay")
    settings = Settings.from_env(
        {"FILERELAY_HOME": str(home), "FILERELAY_DATABASE_URL": url, "FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY}
    )
    settings = settings.with_overrides(operator_policy=LOOPBACK)
    upgrade(url, settings=settings)
    runtime: Runtime = build_runtime(settings)
    with session_scope(runtime.sessions) as session:
        apply(session, load(CONFIG % (home / "out"), {}), now=SystemClock().now(), policy=LOOPBACK)
    try:
        with serving(runtime) as sap:
            yield sap
    finally:
        runtime.close()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_creates_during_a_database_restart_all_answer_201(tmp_path: Path, mode: str) -> None:
    with private_postgres(tmp_path / "pg") as pg, api_on(pg, tmp_path / "home") as sap:
        answers: Counter[int] = Counter()
        stop = threading.Event()

        def stream(worker: int) -> None:
            n = 0
            while not stop.is_set():
                answers[sap.create(f"W{worker}D{n:05d}", "data", PDF, "application/pdf").status] += 1
                n += 1

        senders = [threading.Thread(target=stream, args=(w,)) for w in range(4)]
        for sender in senders:
            sender.start()
        try:
            while sum(answers.values()) < 20:
                stop.wait(0.05)
            pg.restart(mode)
            seen = sum(answers.values())
            while sum(answers.values()) < seen + 20:  # creates keep flowing once it is back
                stop.wait(0.05)
        finally:
            stop.set()
            for sender in senders:
                sender.join()
    assert set(answers) == {201}, answers
