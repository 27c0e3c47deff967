"""The browser fixture: Debian's Chromium, headless, through Playwright."""

from __future__ import annotations

import pytest


@pytest.fixture
def browser():
    from tests.e2e.browser import CHROME_ARGS, CHROMIUM

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if CHROMIUM is None:
        pytest.skip("no `chromium` on PATH (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        yield browser
        browser.close()
