"""The command-line client and the browser speak the same GCE1: bob in `ghostcache-client`,
alice in Chromium, write end to end both ways (live on the page, decrypted in the client),
see the same safety number, and alice's identity, set up in the page, is restored by the
client from her recovery key and reads the conversation there too."""

from __future__ import annotations

import re
import shutil

import pytest

if shutil.which("chromium") is None:
    pytest.skip("no `chromium` on PATH (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

from tests.client_helpers import User as ClientUser  # noqa: E402
from tests.e2e.browser import LIVE_TIMEOUT  # noqa: E402
from tests.e2e.e2ee_steps import (  # noqa: E402
    api,
    goto_live,
    real_errors,
    safety_number,
    set_up_encryption,
    shows,
    signed_up,
)

pytestmark = [pytest.mark.e2e, pytest.mark.live]


def digits(text: str) -> str:
    """The 60 digits of the one safety number in text."""
    found = re.findall(r"\d{5}(?: \d{5}){11}", text)
    assert len(found) == 1, text
    return found[0].replace(" ", "")


def test_the_client_and_a_browser_write_end_to_end_both_ways(browser, e2ee_server, tmp_path):
    (alice,) = signed_up(browser, e2ee_server, "alice")
    bob = ClientUser(e2ee_server.url, tmp_path, "bob").signup()
    asked = api(alice, "POST", "/connect", {"username": "bob"})
    assert asked["status"] == 201, asked
    bob.ok("accept", "alice")
    recovery = set_up_encryption(alice)
    bob.setup_e2ee()
    bob_id = asked["data"]["user"]["id"]
    goto_live(alice, f"/chat/{bob_id}")

    bob.ok("e2ee", "enable", "alice")  # the page sees the switch live
    expect(alice.page.locator("#e2ee-badge")).to_be_visible(timeout=LIVE_TIMEOUT)

    alice.send_message("from the browser, sealed")
    shows(alice, "from the browser, sealed", mine=True)
    assert re.search(r"alice \[e2ee\]: from the browser, sealed", bob.ok("history", "alice"))
    bob.ok("send", "alice", "from the client, sealed")
    shows(alice, "from the client, sealed", mine=False)
    alice.page.reload()
    shows(alice, "from the browser, sealed", mine=True)
    shows(alice, "from the client, sealed", mine=False)

    history = api(alice, "GET", f"/chat/{bob_id}")["data"]["messages"]
    assert len(history) == 2 and all(m["e2ee"] and "message" not in m for m in history)
    assert "sealed" not in str(history)

    assert digits(bob.ok("safety", "alice")) == re.sub(r"\s", "", safety_number(alice, bob_id))

    # alice's key, made in the browser, restored by the client from the page's backup
    laptop = ClientUser(e2ee_server.url, tmp_path / "laptop", "alice").signup_existing()
    laptop.ok("e2ee", "restore", "--recovery-stdin", stdin=recovery + "\n")
    read = laptop.ok("history", "bob")
    assert re.search(r"me \[e2ee\]: from the browser, sealed", read), read
    assert re.search(r"bob \[e2ee\]: from the client, sealed", read), read
    laptop.ok("send", "bob", "from alice's laptop")
    assert "alice [e2ee]: from alice's laptop" in bob.ok("history", "alice")
    goto_live(alice, f"/chat/{bob_id}")  # the safety page was the last one open
    shows(alice, "from alice's laptop", mine=True)
    assert real_errors(alice) == [], real_errors(alice)
