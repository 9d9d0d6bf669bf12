"""Fixtures of the migration tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import scratch_database


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[str]:
    """A database of this test's own, at no revision: on the PostgreSQL server of the run, or a file."""
    server_url = os.environ.get("FILERELAY_TEST_DATABASE_URL")
    if server_url:
        with scratch_database(server_url, prefix="migration") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
