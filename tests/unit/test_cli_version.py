"""`filerelay --version` names the installed release, the one /healthz reports."""

from __future__ import annotations

from importlib.metadata import version

from click.testing import CliRunner

from filerelay.cli import main


def test_version_is_the_installed_distributions() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"filerelay, version {version('filerelay')}\n"
