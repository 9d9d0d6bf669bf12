"""Which release is running: the installed distribution's version (pyproject.toml), one source for
`filerelay --version`, `/healthz` and the logs."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("filerelay")
except PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"
