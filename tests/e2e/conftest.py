"""The browser fixture: Debian's Chromium, headless, through Playwright."""

from __future__ import annotations

import pytest


@pytest.fixture
def browser():
    from tests.e2e.browser import CHROME_ARGS, CHROMIUM

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if CHROMIUM is None:
        pytest.skip("no `chromium` on PATH (apt-get install chromium)")
    # Checks that wait on the server (a request answered, a page re-rendered) get 10 s, not
    # Playwright's 5: these machines are shared, and a loaded one missed 5 s in CI once.
    sync_api.expect.set_options(timeout=10_000)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def e2ee_server(tmp_path):
    """Streams that live two minutes: `e2ee` and `key` events are not replayed after a
    reconnect, so a stream must stay open while the other side acts."""
    from tests.live import LiveServer

    server = LiveServer(tmp_path / "live-data", stream_seconds="120").start()
    yield server
    server.stop()
