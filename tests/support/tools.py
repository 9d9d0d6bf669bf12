"""Programs outside Python that some tests drive (a browser, an emulator): found on PATH, or the test
fails on CI (which installs them) and is skipped elsewhere."""

from __future__ import annotations

import os
import shutil

import pytest


def installed(*names: str, ci: str, here: str) -> str:
    """The first of `names` on PATH; without any, a failure saying `ci` on CI, else a skip saying `here`."""
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    if os.environ.get("CI"):
        pytest.fail(ci)
    pytest.skip(here)
