"""The messenger in a real browser: unread counts live across tabs, desktop notifications
only after opt-in, local times, older messages on scrolling up, the layout at phone and
desktop width, contact requests arriving live, and no console errors or CSP violations."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

if shutil.which("chromium") is None:
    pytest.skip("no `chromium` on PATH (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

from tests.e2e.browser import LIVE_TIMEOUT, User  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.live]

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}

# A fresh profile's Notification API, recorded: every permission request and every
# notification goes to the Python side (window.recordNotification survives navigations).
# The permission reads "default" until asked, as in a browser that was never asked
# (headless Chromium otherwise answers "denied"); asked, it is what the context granted.
NOTIFICATION_RECORDER = """
(() => {
  const Real = window.Notification;
  if (!Real) return;
  let asked = false;
  const record = (entry) => window.recordNotification && window.recordNotification(entry);
  class Recorded {
    constructor(title, options) {
      options = options || {};
      this.title = String(title);
      this.onclick = null;
      const body = String(options.body || ''), tag = String(options.tag || '');
      record({kind: 'shown', title: this.title, body, tag});
      Recorded.last = this;
    }
    close() {}
    static get permission() { return asked ? Real.permission : 'default'; }
    static requestPermission(callback) {
      asked = true;
      record({kind: 'request'});
      return Real.requestPermission().then((state) => { if (callback) callback(state); return state; });
    }
  }
  window.Notification = Recorded;
})();
"""

# Sends n messages through the JSON API, with the page's CSRF token; answers their ids.
SEND_MANY = """async ({to, n}) => {
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const ids = [];
  for (let i = 0; i < n; i++) {
    const response = await fetch('/chat/send', {
      method: 'POST',
      headers: {'Content-Type': 'application/json', 'Accept': 'application/json', 'X-CSRFToken': token},
      body: JSON.stringify({receiver_id: to, message: 'message ' + i}),
    });
    if (response.status !== 201) throw new Error('send answered ' + response.status);
    ids.push((await response.json()).id);
  }
  return ids;
}"""

HIDE_PAGE = """() => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
  document.dispatchEvent(new Event('visibilitychange'));
}"""

SHOW_PAGE = """() => {
  delete document.visibilityState;
  delete document.hidden;
  document.dispatchEvent(new Event('visibilitychange'));
}"""


@pytest.fixture
def live_server(tmp_path):
    """tests/conftest.py's server, but with streams that live two minutes instead of 5 s.
    Events other than messages (`read`, `request`, `contact`) are not replayed after a
    reconnect (docs/API.md), and the browser reconnects 3 s after a stream ends: with 5 s
    streams, whether such an event reached a tab would be luck."""
    from tests.live import LiveServer

    server = LiveServer(tmp_path / "live-data", stream_seconds="120").start()
    yield server
    server.stop()


class _Configured:
    """The browser, opening every context with these options (time zone, locale, size)."""

    def __init__(self, browser, **options) -> None:
        self._browser = browser
        self._options = options

    def new_context(self, **kw):
        return self._browser.new_context(**self._options, **kw)


def signed_up(browser, live_server, *names: str, **options) -> list[User]:
    found = [User(_Configured(browser, **options), live_server.url, name) for name in names]
    for user in found:
        user.register_and_login()
    return found


def user_id(user: User) -> int:
    return int(user.page.locator("body").get_attribute("data-me-id") or 0)


def request_contact(asker: User, name: str) -> None:
    asker.goto("/connect")
    asker.page.get_by_label("Username", exact=True).fill(name)
    asker.page.get_by_role("button", name="Send request").click()
    expect(asker.page.locator(".flash.success")).to_contain_text(f"Request sent to {name}.")


def goto_live(user: User, path: str, page=None) -> None:
    """Opens path and waits for the page's stream to answer, so that nothing sent from
    here on is missed (a stream reports what changes after its first look)."""
    page = page or user.page
    with page.expect_response(lambda r: r.url.endswith("/chat/stream")):
        response = page.goto(path)
    assert response is not None and response.ok, path


def connect(asker: User, answerer: User) -> None:
    """asker asks; answerer accepts on the home page (in place: see the request test)."""
    request_contact(asker, answerer.name)
    answerer.goto("/")
    request = answerer.page.locator("#requests li", has_text=f"{asker.name} wants to connect")
    request.get_by_role("button", name="Accept").click()
    expect(answerer.page.locator("#conversations")).to_contain_text(asker.name)


def wait_until(page, condition: Callable[[], bool], what: str) -> None:
    """Polls condition (say, on what the page reported to Python), letting the page run."""
    deadline = time.monotonic() + LIVE_TIMEOUT / 1000
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(50)


def badge(page, name: str):
    return page.locator("#conversations li", has_text=name).locator(".unread-count")


def close(*users: User) -> None:
    for user in users:
        user.context.close()


# ---- unread counts -------------------------------------------------------------------


def test_unread_counts_rise_and_clear_live_in_every_tab(browser, live_server):
    alice, bob = signed_up(browser, live_server, "alice", "bob")
    connect(alice, bob)
    goto_live(bob, "/")
    other_tab = bob.context.new_page()
    other_tab.on("console", bob._on_console)
    other_tab.on("pageerror", lambda exc: bob.errors.append(f"other tab: {exc}"))
    goto_live(bob, "/", other_tab)
    expect(badge(other_tab, "alice")).to_be_hidden()

    alice.open_chat_with("bob")
    alice.send_message("one")
    expect(badge(bob.page, "alice")).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(badge(bob.page, "alice").locator(".unread-number")).to_have_text("1")
    expect(bob.page).to_have_title(re.compile(r"^\(1\) "))
    alice.send_message("two")
    for page in (bob.page, other_tab):
        expect(badge(page, "alice")).to_be_visible(timeout=LIVE_TIMEOUT)
        expect(badge(page, "alice").locator(".unread-number")).to_have_text("2")
        expect(page).to_have_title(re.compile(r"^\(2\) Conversations"))

    # Opening the chat reads it: its row beside the chat has no badge, and the other
    # tab learns it from the stream, without a reload.
    other_tab.evaluate("window.stillTheSamePage = true")
    bob.page.locator("#conversations").get_by_role("link", name=re.compile("^alice")).click()
    expect(bob.page.get_by_role("heading", level=1)).to_have_text("Chat with alice")
    expect(bob.page.locator('#conversations a[aria-current="page"]')).to_contain_text("alice")
    expect(badge(bob.page, "alice")).to_be_hidden()
    expect(bob.page).to_have_title("Chat with alice — GhostCache")
    expect(badge(other_tab, "alice")).to_be_hidden(timeout=LIVE_TIMEOUT)
    expect(other_tab).to_have_title(re.compile(r"^Conversations"))
    assert other_tab.evaluate("window.stillTheSamePage") is True
    assert alice.errors == [] and bob.errors == []
    close(alice, bob)


def test_a_read_missed_while_reconnecting_clears_the_badge_once_the_stream_is_back(browser, tmp_path):
    """Only messages are replayed after a reconnect: a `read` sent while a tab's stream was
    down reaches it through the counts it asks for again when the stream is back."""
    from tests.live import LiveServer

    server = LiveServer(tmp_path / "short-streams", stream_seconds="3").start()
    try:
        alice, bob = signed_up(browser, server, "alice", "bob")
        connect(alice, bob)
        goto_live(bob, "/")
        alice.open_chat_with("bob")
        alice.send_message("one")
        expect(badge(bob.page, "alice")).to_be_visible(timeout=LIVE_TIMEOUT)

        # Every reconnection of this tab's stream fails from now on; the open stream ends
        # at its 3 s lifetime, so after 4 s the tab hears nothing.
        bob.page.route("**/chat/stream*", lambda route: route.abort())
        bob.page.wait_for_timeout(4_000)
        elsewhere = browser.new_context(base_url=server.url, storage_state=bob.context.storage_state())
        reader = elsewhere.new_page()
        reader.goto(f"/chat/{user_id(alice)}")  # bob on another device: the chat is shown, so read
        expect(badge(reader, "alice")).to_be_hidden()
        elsewhere.close()
        bob.page.wait_for_timeout(1_000)
        expect(badge(bob.page, "alice")).to_be_visible()  # the `read` event reached no stream here

        bob.page.unroute("**/chat/stream*")
        expect(badge(bob.page, "alice")).to_be_hidden(timeout=LIVE_TIMEOUT)
        expect(bob.page).to_have_title(re.compile(r"^Conversations"))
        assert alice.errors == []
        assert [e for e in bob.errors if "chat/stream" not in e and "ERR_FAILED" not in e] == []
        close(alice, bob)
    finally:
        server.stop()


# ---- desktop notifications -------------------------------------------------------------


def test_notifications_are_asked_for_only_after_opting_in_and_never_show_the_text(browser, live_server):
    alice, bob = signed_up(browser, live_server, "alice", "bob")
    records: list[dict] = []
    bob.context.expose_function("recordNotification", lambda entry: records.append(entry))
    bob.context.add_init_script(NOTIFICATION_RECORDER)
    connect(alice, bob)
    alice_id = user_id(alice)

    # Pages load and messages arrive, with the tab shown and hidden: nothing is asked.
    bob.goto("/")
    button = bob.page.get_by_role("button", name="Turn on desktop notifications")
    expect(button).to_be_visible()
    alice.open_chat_with("bob")
    alice.send_message("before opting in")
    expect(bob.page.get_by_role("link", name="New message from alice")).to_be_visible(timeout=LIVE_TIMEOUT)
    bob.page.evaluate(HIDE_PAGE)
    alice.send_message("still before opting in")
    expect(badge(bob.page, "alice").locator(".unread-number")).to_have_text("2", timeout=LIVE_TIMEOUT)
    bob.goto(f"/chat/{alice_id}")
    bob.goto("/files")
    assert records == []

    # Opting in asks once; granted, the button gives way to a sentence that says so.
    bob.context.grant_permissions(["notifications"], origin=live_server.url)
    bob.goto("/")
    bob.page.get_by_role("button", name="Turn on desktop notifications").click()
    status = bob.page.locator("#notify-status")
    expect(status).to_have_text("Desktop notifications are on: they say who wrote, never what.")
    expect(status).to_be_focused()
    expect(bob.page.get_by_role("button", name="Turn on desktop notifications")).to_be_hidden()
    assert records == [{"kind": "request"}]

    # Shown, the page tells nothing to the desktop; hidden, it says who wrote, not what.
    alice.send_message("seen on the page")
    expect(bob.page.locator("#conversations")).to_contain_text("seen on the page", timeout=LIVE_TIMEOUT)
    bob.page.evaluate(HIDE_PAGE)
    secret = "the secret text 4711"
    alice.send_message(secret)
    expect(bob.page.locator("#conversations")).to_contain_text(secret, timeout=LIVE_TIMEOUT)
    wait_until(bob.page, lambda: any(r["kind"] == "shown" for r in records), "a notification")
    shown = [r for r in records if r["kind"] == "shown"]
    assert shown == [
        {"kind": "shown", "title": "New message from alice", "body": "", "tag": f"ghostcache-chat-{alice_id}"}
    ]
    assert all(secret not in str(r) and "4711" not in str(r) for r in records)
    assert sum(r["kind"] == "request" for r in records) == 1

    # Clicking it brings the tab forward, on the chat.
    bob.page.evaluate(SHOW_PAGE)
    bob.page.evaluate("Notification.last.onclick()")
    expect(bob.page).to_have_url(f"{live_server.url}/chat/{alice_id}")
    expect(bob.page.locator("#messages .msg.theirs").last).to_contain_text(secret)
    assert alice.errors == [] and bob.errors == []
    close(alice, bob)


# ---- times -----------------------------------------------------------------------------


def expected_local_text(utc_iso: str, now: datetime) -> str:
    """What the page should show for a UTC timestamp, in en-GB, `now` being local."""
    moment = datetime.fromisoformat(utc_iso).astimezone(now.tzinfo)
    clock = moment.strftime("%H:%M")
    month = "Sept" if moment.month == 9 else moment.strftime("%b")  # ICU's en-GB September
    if moment.date() == now.date():
        return clock
    if moment.year == now.year:
        return f"{moment.day} {month}, {clock}"
    return f"{moment.day} {month} {moment.year}, {clock}"


def test_times_show_in_the_browsers_time_zone_and_datetime_stays_utc(browser, live_server):
    tokyo = ZoneInfo("Asia/Tokyo")
    alice, bob = signed_up(browser, live_server, "alice", "bob", timezone_id="Asia/Tokyo", locale="en-GB")
    connect(alice, bob)
    alice.open_chat_with("bob")
    bob.open_chat_with("alice")
    alice.send_message("what time is it?")

    def check(time, now: datetime) -> None:
        stamp = time.get_attribute("datetime") or ""
        assert stamp.endswith("+00:00"), stamp
        expect(time).to_have_text(expected_local_text(stamp, now))
        local = datetime.fromisoformat(stamp).astimezone(tokyo)
        expect(time).to_have_attribute("title", re.compile(local.strftime("%H:%M:%S")))

    live = bob.page.locator("#messages .msg.theirs time").last  # inserted by the stream
    expect(live).to_have_attribute("datetime", re.compile(r"\+00:00$"), timeout=LIVE_TIMEOUT)
    check(live, datetime.now(tokyo))
    bob.page.reload()  # rendered by the server, in UTC, then localized
    check(bob.page.locator("#messages .msg.theirs time").last, datetime.now(tokyo))
    check(bob.page.locator("#conversations time").first, datetime.now(tokyo))

    # On another day of the same year the date joins the time; in another year, the year.
    stamp = bob.page.locator("#messages .msg.theirs time").last.get_attribute("datetime") or ""
    sent = datetime.fromisoformat(stamp).astimezone(tokyo)
    next_day = sent + timedelta(days=1)
    same_year = next_day if next_day.year == sent.year else sent - timedelta(days=1)
    for now in (same_year.replace(hour=12), sent.replace(year=sent.year + 1, month=6, day=15)):
        bob.page.clock.set_fixed_time(now)
        bob.page.reload()
        check(bob.page.locator("#messages .msg.theirs time").last, now)
    assert alice.errors == [] and bob.errors == []
    close(alice, bob)


# ---- older messages --------------------------------------------------------------------


def test_scrolling_up_loads_older_messages_in_order_and_keeps_focus(browser, live_server):
    alice, bob = signed_up(browser, live_server, "alice", "bob")
    connect(alice, bob)
    alice.goto("/")
    bob_id = int(alice.page.locator("#conversations li", has_text="bob").get_attribute("data-user-id") or 0)
    sent = alice.page.evaluate(SEND_MANY, {"to": bob_id, "n": 120})
    assert len(sent) == 120

    bob.open_chat_with("alice")
    page, messages = bob.page, bob.page.locator("#messages li.msg")
    expect(messages).to_have_count(50)
    page.get_by_label("Message", exact=True).focus()
    for count in (100, 120):
        page.locator("#messages").evaluate("list => { list.scrollTop = 0; }")
        expect(messages).to_have_count(count)
        expect(page.locator("#messages")).not_to_have_attribute("aria-busy", "true")
        # What was on screen stays there: the list did not stay at its top.
        assert page.locator("#messages").evaluate("list => list.scrollTop") > 0
        expect(page.get_by_label("Message", exact=True)).to_be_focused()
    ids = [int(i) for i in messages.evaluate_all("items => items.map(li => li.dataset.id)")]
    assert ids == sent
    texts = page.locator("#messages .msg-text").all_inner_texts()
    assert texts == [f"message {i}" for i in range(120)]
    expect(page.get_by_role("link", name="Older messages")).to_be_hidden()
    # Scrolled to the top once more, nothing more is asked for.
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "before=" in r.url else None)
    page.locator("#messages").evaluate("list => { list.scrollTop = 0; }")
    page.wait_for_timeout(500)
    assert asked == [] and messages.count() == 120
    assert alice.errors == [] and bob.errors == []
    close(alice, bob)


def test_older_messages_link_still_pages_without_javascript(browser, live_server):
    alice, bob = signed_up(browser, live_server, "alice", "bob")
    connect(alice, bob)
    alice.goto("/")
    bob_id = int(alice.page.locator("#conversations li", has_text="bob").get_attribute("data-user-id") or 0)
    alice.page.evaluate(SEND_MANY, {"to": bob_id, "n": 60})
    plain = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    plain.add_cookies(bob.context.cookies())
    page = plain.new_page()
    page.goto("/")
    alice_id = page.locator("#conversations li", has_text="alice").get_attribute("data-user-id")
    expect(page.locator("#conversations time").first).to_contain_text("UTC")
    page.goto(f"/chat/{alice_id}")
    expect(page.locator("#messages li.msg")).to_have_count(50)
    page.get_by_role("link", name="Older messages").click()
    expect(page).to_have_url(re.compile(r"before=\d+"))
    expect(page.locator("#messages .msg-text").first).to_have_text("message 0")
    expect(page.locator("#messages li.msg")).to_have_count(10)
    plain.close()
    close(alice, bob)


# ---- layout ----------------------------------------------------------------------------


def horizontal_overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def test_layout_fits_a_phone_and_puts_the_list_beside_the_chat_on_a_desktop(browser, live_server):
    alice, bob = signed_up(browser, live_server, "alice", "bob")
    connect(alice, bob)
    alice.open_chat_with("bob")
    alice.send_message("W" * 300)  # one long word
    chat_path = alice.page.url.removeprefix(live_server.url)
    page = alice.page

    page.set_viewport_size(PHONE)
    for path in ("/", chat_path):
        alice.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
        assert horizontal_overflow(page) <= 0, path
    expect(page.locator(".chat-sidebar")).to_be_hidden()
    expect(page.get_by_role("link", name="All conversations")).to_be_visible()

    page.set_viewport_size(DESKTOP)
    alice.goto(chat_path)
    sidebar, chat = page.locator(".chat-sidebar"), page.locator("#messages")
    expect(sidebar).to_be_visible()
    expect(sidebar.get_by_role("link", name=re.compile("^bob"))).to_have_attribute("aria-current", "page")
    side, main = sidebar.bounding_box(), chat.bounding_box()
    assert side and main
    assert side["x"] + side["width"] <= main["x"], (side, main)
    assert side["y"] < main["y"] + main["height"] and main["y"] < side["y"] + side["height"], (side, main)
    assert horizontal_overflow(page) <= 0
    assert alice.errors == [] and bob.errors == []
    close(alice, bob)


# ---- contact requests --------------------------------------------------------------------


def test_requests_appear_live_on_the_home_page_and_are_answered_there(browser, live_server):
    alice, bob, carol = signed_up(browser, live_server, "alice", "bob", "carol")
    goto_live(bob, "/")
    expect(bob.page.locator("#requests-section")).to_be_hidden()
    bob.page.evaluate("window.stillTheSamePage = true")
    bob.page.on("dialog", lambda dialog: dialog.accept())  # "Deny carol's request and block them?"
    goto_live(alice, "/")  # alice's home page learns of the new contact live too
    alice.page.evaluate("window.stillTheSamePage = true")

    asker = alice.context.new_page()
    asker.on("console", alice._on_console)
    asker.goto("/connect")
    asker.get_by_label("Username", exact=True).fill("bob")
    asker.get_by_role("button", name="Send request").click()
    expect(asker.locator(".flash.success")).to_contain_text("Request sent to bob.")
    request = bob.page.locator("#requests li", has_text="alice wants to connect")
    expect(request).to_be_visible(timeout=LIVE_TIMEOUT)
    request_contact(carol, "bob")
    newest = bob.page.locator("#requests li").first
    expect(newest).to_contain_text("carol wants to connect", timeout=LIVE_TIMEOUT)

    expect(bob.page.get_by_role("heading", name="Contact requests for you")).to_be_visible()
    expect(request.locator("time")).to_have_attribute("datetime", re.compile(r"\+00:00$"))
    expect(request.locator("time")).not_to_contain_text("UTC")  # localized

    # Deny carol: asked first, then gone in place; the keyboard moves on to the next request.
    bob.page.locator("#requests").get_by_role("button", name="Deny and block carol").click()
    expect(bob.page.locator("#requests li")).to_have_count(1)
    expect(bob.page.locator("#live-notices")).to_contain_text("Request from carol denied; carol is blocked.")
    accept = request.get_by_role("button", name="Accept alice")
    expect(accept).to_be_focused()
    expect(request.get_by_role("button", name="Deny and block alice")).to_be_visible()
    accept.click()

    expect(bob.page.locator("#requests li")).to_have_count(0)
    expect(bob.page.locator("#requests-section")).to_be_hidden()
    alice_link = bob.page.locator("#conversations").get_by_role("link", name=re.compile("^alice"))
    expect(alice_link).to_be_visible()
    expect(alice_link).to_be_focused()
    expect(bob.page.get_by_role("link", name="You and alice are now connected")).to_be_visible()
    expect(alice.page.locator("#conversations")).to_contain_text("bob", timeout=LIVE_TIMEOUT)
    assert bob.page.evaluate("window.stillTheSamePage") is True
    assert alice.page.evaluate("window.stillTheSamePage") is True
    assert alice.page.url == bob.page.url == f"{live_server.url}/"
    blocks = bob.context.new_page()
    blocks.goto("/blocks")
    expect(blocks.locator("main")).to_contain_text("carol")
    blocks.close()

    # The contact works: alice writes, and bob's row shows it.
    alice.open_chat_with("bob")
    alice.send_message("thanks for accepting")
    expect(bob.page.locator("#conversations")).to_contain_text("thanks for accepting", timeout=LIVE_TIMEOUT)
    # By now the stream's `contact` event (before that message) came too: still one notice.
    expect(bob.page.get_by_role("link", name="You and alice are now connected")).to_have_count(1)
    assert alice.errors == [] and bob.errors == [] and carol.errors == []
    close(alice, bob, carol)
