"""Fixtures of the unit tests that drive the `filerelay` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from filerelay.runtime import Runtime
from tests.support.databases import TEST_ENCRYPTION_KEY


@pytest.fixture
def run(configured: Runtime, db_url: str, tmp_path: Path) -> CliRunner:
    """click's runner with the environment of the configured workspace's database."""
    return CliRunner(
        env={
            "FILERELAY_DATABASE_URL": db_url,
            "FILERELAY_HOME": str(tmp_path / "home"),
            "FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
        }
    )
