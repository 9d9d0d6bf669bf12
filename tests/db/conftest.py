"""Fixtures of the migration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import own_database


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[str]:
    """A database of this test's own, at no revision: on the PostgreSQL server of the run, or a file."""
    with own_database(tmp_path / "migrated.db", prefix="migration") as url:
        yield url
