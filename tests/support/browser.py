"""A real browser for the console's and the API page's tests: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

from tests.support.tools import installed


def chromium() -> str:
    return os.environ.get("FILERELAY_CHROMIUM") or installed(
        "chromium",
        "chromium-browser",
        ci="Chromium is missing: .ci/run installs Debian's `chromium` package",
        here="no Chromium here (apt-get install chromium)",
    )


@contextmanager
def launched() -> Iterator[Browser]:
    """Chromium started headless, closed on leaving; the test is skipped where there is none."""
    executable = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()
