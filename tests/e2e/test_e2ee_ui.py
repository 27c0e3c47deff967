"""End-to-end encryption in a real browser: two people set it up through the page (the
recovery key shown once, "I saved it" required), one turns it on and the other sees that
live, they write both ways and still read it all after a reload while the server holds
envelopes only; a tampered envelope says so; a fresh browser restores with the recovery
key; a contact's new key holds the composer until accepted; both sides see the same safety
number, and "verified" sticks. A browser without X25519 is told it is too old."""

from __future__ import annotations

import os
import re
import shutil

import pytest

if shutil.which("chromium") is None:
    pytest.skip("no `chromium` on PATH (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

from ghostcache import e2ee as gce1  # noqa: E402
from tests.e2e.browser import LIVE_TIMEOUT, PASSWORD, User  # noqa: E402
from tests.e2e.e2ee_steps import (  # noqa: E402
    api,
    composer,
    connect,
    me_id,
    open_chat,
    real_errors,
    safety_number,
    set_up_encryption,
    shows,
    signed_up,
)

pytestmark = [pytest.mark.e2e, pytest.mark.live]

# A browser whose WebCrypto lacks X25519 (before Chrome 133, Firefox 130, Safari 17).
NO_X25519 = """
(() => {
  const subtle = crypto.subtle;
  const real = subtle.generateKey.bind(subtle);
  subtle.generateKey = function (algorithm, ...rest) {
    const name = typeof algorithm === 'string' ? algorithm : algorithm && algorithm.name;
    if (String(name).toUpperCase() === 'X25519') {
      return Promise.reject(new DOMException('Unrecognized name.', 'NotSupportedError'));
    }
    return real(algorithm, ...rest);
  };
})();
"""


def test_two_people_write_end_to_end_encrypted(browser, e2ee_server):
    alice, bob = signed_up(browser, e2ee_server, "alice", "bob")
    connect(alice, bob)
    alice_id, bob_id = me_id(alice), me_id(bob)
    recovery = set_up_encryption(alice)

    # bob has no key yet: turning it on says so
    open_chat(alice, bob_id)
    enable = alice.page.get_by_role("button", name="Turn on end-to-end encryption")
    enable.click()
    expect(alice.page.locator("#e2ee-note")).to_contain_text("bob has not published an identity yet")

    set_up_encryption(bob)
    open_chat(bob, alice_id)
    expect(bob.page.locator("#e2ee-badge")).to_be_hidden()
    enable.click()
    for user in (alice, bob):
        expect(user.page.locator("#e2ee-badge")).to_be_visible(timeout=LIVE_TIMEOUT)
        expect(user.page.locator("#e2ee-badge")).to_contain_text("End-to-end encrypted")
    expect(bob.page.locator("#conversations .lock")).to_have_count(1)

    alice.send_message("hello bob, secretly")
    shows(bob, "hello bob, secretly", mine=False)
    bob.send_message("hi alice, also secretly")
    shows(alice, "hi alice, also secretly", mine=False)
    expect(alice.page.locator("#messages .msg .lock")).to_have_count(2)

    for user in (alice, bob):
        user.page.reload()
        shows(user, "hello bob, secretly", mine=user is alice)
        shows(user, "hi alice, also secretly", mine=user is bob)

    history = api(alice, "GET", f"/chat/{bob_id}")["data"]["messages"]
    assert len(history) == 2 and all(m["e2ee"] and "envelope" in m and "message" not in m for m in history)
    assert "secretly" not in str(history)

    # a bit flipped in a real envelope: the server cannot tell, the page can
    tampered = dict(history[1]["envelope"])
    ct = bytearray(gce1.b64u_decode(tampered["ct"]))
    ct[0] ^= 1
    tampered["ct"] = gce1.b64u(bytes(ct))
    sent = api(bob, "POST", "/chat/send", {"receiver_id": alice_id, "envelope": tampered})
    assert sent["status"] == 201, sent
    expect(
        alice.page.locator("#messages .msg.theirs", has_text="Could not decrypt this message")
    ).to_have_count(1)

    check_restore(browser, e2ee_server, recovery, bob_id)
    check_safety_numbers(alice, bob, alice_id, bob_id)
    check_key_change(alice, bob, bob_id)
    assert real_errors(alice, bob) == [], real_errors(alice, bob)


def check_restore(browser, e2ee_server, recovery: str, bob_id: int) -> None:
    """alice in a fresh browser: a wrong recovery key is refused, hers reads the old chat."""
    fresh = User(browser, e2ee_server.url, "alice")
    page = fresh.page
    fresh.goto("/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    open_chat(fresh, bob_id)
    expect(page.locator("#e2ee-note")).to_contain_text("this browser has no key yet")
    expect(composer(fresh)).to_be_disabled()
    expect(page.locator("#messages .msg.mine .msg-text")).to_have_text("Encrypted message")
    page.get_by_role("link", name=re.compile("Set up or restore encryption")).click()
    expect(page.get_by_role("heading", name="Restore with your recovery key")).to_be_visible()
    page.get_by_label("Recovery key", exact=True).fill(gce1.format_recovery(os.urandom(32)))
    page.get_by_role("button", name="Restore").click()
    expect(page.locator("#restore-error")).to_contain_text("does not open your backup")
    page.get_by_label("Recovery key", exact=True).fill(recovery.lower().replace("-", " "))
    page.get_by_role("button", name="Restore").click()
    expect(
        page.get_by_role("heading", name="End-to-end encryption is set up in this browser")
    ).to_be_visible()
    open_chat(fresh, bob_id)
    shows(fresh, "hello bob, secretly", mine=True)
    shows(fresh, "hi alice, also secretly", mine=False)
    expect(composer(fresh)).to_be_enabled()
    assert real_errors(fresh) == []
    fresh.context.close()


def check_safety_numbers(alice: User, bob: User, alice_id: int, bob_id: int) -> None:
    number = safety_number(alice, bob_id)
    assert safety_number(bob, alice_id) == number
    alice.page.get_by_role("button", name="Mark as verified").click()
    expect(alice.page.locator("#safety-verified")).to_be_visible()
    alice.page.reload()
    expect(alice.page.locator("#safety-number")).to_have_text(number)
    expect(alice.page.locator("#safety-verified")).to_be_visible()
    expect(alice.page.get_by_role("button", name="Mark as verified")).to_be_hidden()
    open_chat(alice, bob_id)
    expect(alice.page.locator("#e2ee-verified")).to_be_visible()


def check_key_change(alice: User, bob: User, bob_id: int) -> None:
    """bob resets his key (as a new device without the recovery key would): alice's chat
    stops sending until she accepts the new key, which is then no longer verified."""
    new_pub = gce1.b64u(gce1.public_raw(gce1.generate_identity()))
    reset = api(bob, "POST", "/e2ee/identity/reset", {"pub": new_pub, "password": PASSWORD})
    assert reset["status"] == 200, reset
    warning = alice.page.locator("#e2ee-keywarn")
    expect(warning).to_contain_text("bob’s security key changed", timeout=LIVE_TIMEOUT)
    expect(warning.get_by_role("link", name="safety number")).to_have_attribute(
        "href", f"/contacts/{bob_id}/safety"
    )
    expect(composer(alice)).to_be_disabled()
    alice.page.reload()  # the page, loaded afresh, still holds it
    expect(warning).to_be_visible()
    expect(composer(alice)).to_be_disabled()
    alice.page.get_by_role("button", name="I understand, use the new key").click()
    expect(warning).to_be_hidden()
    expect(composer(alice)).to_be_enabled()
    expect(alice.page.locator("#e2ee-verified")).to_be_hidden()
    history = api(alice, "GET", f"/chat/{bob_id}")["data"]["messages"]
    alice.send_message("after the new key")
    after = api(alice, "GET", f"/chat/{bob_id}")["data"]["messages"]
    assert len(after) == len(history) + 1 and after[-1]["envelope"]["rkid"] == reset["data"]["kid"]
    check_stale_key(alice, bob, bob_id)


def check_stale_key(alice: User, bob: User, bob_id: int) -> None:
    """A key change this page never heard of (its stream is cut): the server's 409
    stale_key makes it fetch the keys again and warn, and nothing is stored."""
    alice.page.route("**/chat/stream", lambda route: route.abort())
    alice.page.reload()
    expect(composer(alice)).to_be_enabled()
    new_pub = gce1.b64u(gce1.public_raw(gce1.generate_identity()))
    assert api(bob, "POST", "/e2ee/identity/reset", {"pub": new_pub, "password": PASSWORD})["status"] == 200
    before = len(api(alice, "GET", f"/chat/{bob_id}")["data"]["messages"])
    composer(alice).fill("sealed for the old key")
    alice.page.get_by_role("button", name="Send").click()
    expect(alice.page.locator("#chat-error")).to_contain_text("fetch the identities again")
    expect(alice.page.locator("#e2ee-keywarn")).to_be_visible()
    expect(composer(alice)).to_be_disabled()
    assert len(api(alice, "GET", f"/chat/{bob_id}")["data"]["messages"]) == before
    alice.page.unroute("**/chat/stream")


def test_a_browser_without_x25519_is_told_it_is_too_old(browser, e2ee_server):
    alice, bob = signed_up(browser, e2ee_server, "carol", "dave")
    connect(alice, bob)
    alice.context.add_init_script(NO_X25519)
    alice.goto("/e2ee")
    box = alice.page.locator("#e2ee-unsupported")
    expect(box).to_contain_text("This browser is too old")
    expect(box).to_contain_text("Chrome or Edge 133, Firefox 130 or Safari 17")
    expect(alice.page.get_by_role("button", name="Set up end-to-end encryption")).to_be_hidden()
    open_chat(alice, me_id(bob))
    expect(alice.page.locator("#e2ee-note")).to_contain_text("Chrome or Edge 133")
    expect(alice.page.get_by_role("button", name="Turn on end-to-end encryption")).to_be_hidden()
    alice.send_message("plain text still works")  # the rest of the app keeps working
    assert real_errors(alice) == []
