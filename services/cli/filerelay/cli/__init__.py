"""The `filerelay` command."""

from filerelay.cli.main import main

__all__ = ["main"]
