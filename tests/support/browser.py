"""A real browser for the console's and the API page's tests: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, sync_playwright


def chromium() -> str:
    found = os.environ.get("FILERELAY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's `chromium` package")
        pytest.skip("no Chromium here (apt-get install chromium)")
    return found


@contextmanager
def launched() -> Iterator[Browser]:
    """Chromium started headless, closed on leaving; the test is skipped where there is none."""
    executable = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()
