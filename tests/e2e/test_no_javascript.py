"""Every flow with JavaScript off, as in Tor Browser's "Safest": people in Chromium contexts
that run no script sign up, find each other, answer requests, chat ("Check for new
messages" instead of the live stream), page back through history, share a file and read
how to decrypt it outside the browser, take it back, block and unblock, change both
passwords, log out and delete the account. On the way: no error page, nothing refused by
the Content Security Policy, and no SVG image or font loaded ("Safest" blocks both).
An end-to-end encrypted chat explains itself and offers no composer that would fail."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.e2e.browser import CHROMIUM

if CHROMIUM is None:
    pytest.skip("no `chromium` on PATH (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

from tests.e2e.browser import DPASS, PASSWORD, User  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.live]

CHECK = "Check for new messages"
AGE_HEADER = b"age-encryption.org/v1"


class Plain(User):
    """A User whose browser runs no script; records every request and console line."""

    def __init__(self, browser, base_url: str, name: str) -> None:
        super().__init__(browser, base_url, name, javascript=False)
        self.loaded: list[tuple[str, str]] = []  # (resource type, URL)
        self.console: list[str] = []
        self.page.on("request", lambda r: self.loaded.append((r.resource_type, r.url)))
        self.page.on("response", self._on_response)
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))

    def _on_response(self, response) -> None:
        if response.request.resource_type == "document" and response.status >= 400:
            self.errors.append(f"{response.url}: {response.status}")

    def click(self, role: str, name: str, exact: bool = False) -> None:
        self.page.get_by_role(role, name=name, exact=exact).click()

    def told(self, text: str) -> None:
        """The page after a form: a success message, no error, no trace of a crash."""
        expect(self.page.locator(".flash.success")).to_contain_text(text)
        expect(self.page.locator(".flash.error")).to_have_count(0)
        assert "Traceback" not in self.page.content()

    def token(self) -> str:
        return self.page.locator('meta[name="csrf-token"]').get_attribute("content") or ""

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """A JSON call with this browser's cookies (set-up only: the flows use the pages)."""
        headers = {"Accept": "application/json", "X-CSRFToken": self.token()}
        answer = self.context.request.fetch(path, method=method, headers=headers, data=body)
        assert answer.ok, (path, answer.status, answer.text())
        return answer.json()


def plain_users(browser, live_server, *names: str) -> list[Plain]:
    users = [Plain(browser, live_server.url, name) for name in names]
    for user in users:
        user.register_and_login()
    return users


def signed_out(page):
    return page.get_by_role("navigation", name="Main").get_by_role("link", name="Log in")


def assert_clean(*users: Plain) -> None:
    for user in users:
        assert user.errors == [], user.errors
        refused = [c for c in user.console if "Content Security Policy" in c or "Refused to" in c]
        assert refused == [], refused
        assert ("stylesheet", "/static/app.css") in {(kind, urlsplit(url).path) for kind, url in user.loaded}
        blocked_in_safest = [
            (kind, url) for kind, url in user.loaded if kind == "font" or urlsplit(url).path.endswith(".svg")
        ]
        assert blocked_in_safest == [], blocked_in_safest
        assert {kind for kind, _ in user.loaded} <= {"document", "stylesheet"}, user.loaded
        user.context.close()


def test_people_find_each_other_answer_requests_and_chat_without_javascript(browser, live_server):
    alice, bob, carol = plain_users(browser, live_server, "alice", "bob", "carol")
    page = alice.page
    # Search, ask, withdraw, ask again.
    alice.goto("/search")
    page.get_by_label("Username contains").fill("bo")
    alice.click("button", "Search")
    expect(page.get_by_role("heading", name="Results for “bo”")).to_be_visible()
    alice.click("button", "Send contact request")
    alice.told("Request sent to bob.")
    alice.click("button", "Withdraw the request to bob")
    alice.told("Request to bob withdrawn.")
    alice.goto("/connect")
    page.get_by_label("Username", exact=True).fill("bob")
    alice.click("button", "Send request")
    alice.told("Request sent to bob.")
    carol.goto("/connect")
    carol.page.get_by_label("Username", exact=True).fill("bob")
    carol.click("button", "Send request")

    # bob answers both on his home page, and stays there.
    bob.goto("/")
    expect(bob.page.get_by_role("link", name=CHECK)).to_be_visible()
    requests = bob.page.locator("#requests")
    expect(requests).to_contain_text("alice wants to connect")
    expect(requests).to_contain_text("carol wants to connect")
    bob.click("button", "Deny and block carol")
    expect(bob.page).to_have_url(f"{live_server.url}/")
    bob.told("Request denied.")
    bob.click("button", "Accept alice")
    expect(bob.page).to_have_url(f"{live_server.url}/")
    bob.told("You and alice are now connected.")
    expect(bob.page.locator("#requests-section")).to_be_hidden()

    # Chat both ways; "Check for new messages" shows what the other wrote.
    alice.goto("/")
    expect(page.locator("#conversations")).to_contain_text("No messages yet.")
    bob.page.locator("#conversations").get_by_role("link", name=re.compile("^alice")).click()
    expect(bob.page.get_by_role("heading", level=1)).to_have_text("Chat with alice")
    bob.page.get_by_label("Message", exact=True).fill("hello alice")
    bob.click("button", "Send")
    expect(bob.page).to_have_url(re.compile(r"/chat/\d+#latest$"))
    expect(bob.page.locator("#messages .msg.mine")).to_have_text(re.compile("hello alice"))
    expect(bob.page.get_by_label("Message", exact=True)).to_have_value("")

    alice.click("link", CHECK)
    row = page.locator("#conversations li", has_text="bob")
    expect(row).to_contain_text("hello alice")
    expect(row.locator(".unread-number")).to_have_text("1")
    row.get_by_role("link", name=re.compile("^bob")).click()
    expect(page.locator("#messages .msg.theirs")).to_have_text(re.compile("hello alice"))
    expect(page.locator("#conversations .unread-count")).to_be_hidden()  # read by being shown
    page.get_by_label("Message", exact=True).fill("hi bob")
    alice.click("button", "Send")
    expect(page.locator("#messages .msg.mine")).to_have_text(re.compile("hi bob"))

    expect(bob.page.locator("#messages")).not_to_contain_text("hi bob")
    bob.click("link", CHECK)
    expect(bob.page).to_have_url(re.compile(r"/chat/\d+#latest$"))
    expect(bob.page.locator("#messages .msg.theirs")).to_have_text(re.compile("hi bob"))
    expect(bob.page.get_by_role("link", name=CHECK)).to_be_in_viewport()

    # Older messages: a link to the previous page of history.
    bob_id = int(bob.page.locator("body").get_attribute("data-me-id") or 0)
    for i in range(55):
        alice.api("POST", "/chat/send", {"receiver_id": bob_id, "message": f"filler {i}"})
    bob.click("link", CHECK)
    expect(bob.page.locator("#messages li.msg")).to_have_count(50)
    expect(bob.page.locator("#messages .msg-text").last).to_have_text("filler 54")
    bob.click("link", "Older messages")
    expect(bob.page).to_have_url(re.compile(r"before=\d+"))
    expect(bob.page.locator("#messages .msg-text").first).to_have_text("hello alice")

    # Unblock carol (blocked by the deny), block her again by name.
    bob.goto("/blocks")
    bob.click("button", "Unblock carol")
    bob.told("carol is no longer blocked.")
    bob.page.get_by_label("Username", exact=True).fill("carol")
    bob.click("button", "Block", exact=True)
    bob.told("carol is blocked.")
    expect(bob.page.locator("main")).to_contain_text("blocked")

    # The log-out page's button.
    alice.goto("/logout")
    alice.click("button", "Log out everywhere")
    alice.told("You are logged out.")
    expect(signed_out(page)).to_be_visible()
    assert_clean(alice, bob, carol)


def test_files_and_the_account_without_javascript(browser, live_server):
    pyrage = pytest.importorskip("pyrage")
    alice, bob = plain_users(browser, live_server, "alice", "bob")
    asked = alice.api("POST", "/connect", {"username": "bob"})
    bob.goto("/")
    bob.api("POST", f"/connect/accept/{asked['id']}")

    alice.goto("/file/upload")
    content = b"no script needed\n" * 100
    alice.page.get_by_label("File", exact=True).set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": content}]
    )
    alice.click("button", "Upload and encrypt")
    expect(alice.page.get_by_role("heading", level=1)).to_have_text("File uploaded")
    key = alice.page.get_by_label("Key for notes.txt").input_value()

    def share() -> None:
        alice.goto("/files")
        alice.page.get_by_label("Share with").fill("bob")
        alice.click("button", "Share", exact=True)
        alice.told("Shared with bob.")

    share()
    bob.goto("/files")
    bob.click("link", "notes.txt")
    file_id = int(re.search(r"/file/(\d+)/view", bob.page.url).group(1))  # type: ignore[union-attr]
    main = bob.page.locator("main")
    expect(main).to_contain_text("Decrypting in the browser needs JavaScript.")
    commands = bob.page.locator("#decrypt-unavailable pre")
    expect(commands.first).to_have_text("age -d -i key.txt -o notes.txt notes.txt.age")
    expect(commands.last).to_have_text(
        f"ghostcache-client --server {live_server.url} download {file_id} --key - -o notes.txt < key.txt"
    )
    expect(bob.page.get_by_label("File key")).to_be_hidden()  # the in-page form needs scripts
    with bob.page.expect_download() as download:
        bob.click("link", "Download (encrypted .age)")
    blob = open(download.value.path(), "rb").read()
    assert blob.startswith(AGE_HEADER)
    assert pyrage.decrypt(blob, [pyrage.x25519.Identity.from_str(key)]) == content

    alice.goto("/files")
    alice.click("button", "Revoke bob’s access to notes.txt")
    alice.told("No longer shared with bob.")
    bob.goto("/files")
    expect(bob.page.locator("main")).to_contain_text("Nothing has been shared with you.")
    share()
    bob.goto("/files")
    bob.click("button", "Remove from my list")  # ": notes.txt" for screen readers
    bob.told("Removed from your list.")
    expect(bob.page.locator("main")).to_contain_text("Nothing has been shared with you.")
    alice.goto("/files")
    alice.click("button", "Delete")
    alice.told("File deleted.")
    expect(alice.page.locator("main")).to_contain_text("You have no files.")

    bob.goto("/account")
    bob.page.get_by_label("Current password", exact=True).fill(PASSWORD)
    bob.page.get_by_label("New password").fill("another fine password")
    bob.click("button", "Change password", exact=True)
    bob.told("Password changed. Other devices are signed out.")
    bob.page.get_by_label("Current password (the one you log in with)").fill("another fine password")
    bob.page.get_by_label("New destruction password").fill(DPASS + " too")
    bob.click("button", "Change destruction password")
    bob.told("Destruction password changed.")
    bob.click("button", "Delete my account now")
    bob.told("Your account and everything in it are gone.")
    expect(signed_out(bob.page)).to_be_visible()
    assert_clean(alice, bob)


def test_an_end_to_end_encrypted_chat_explains_itself_without_javascript(browser, live_server):
    from tests.e2ee_live import E2EEClient, turn_on
    from tests.test_chat_live import Client

    alice = E2EEClient(Client(live_server.url, "alice").signup())
    bob = E2EEClient(Client(live_server.url, "bob").signup())
    asked = alice.client.post("/connect", {"username": "bob"}).json()
    assert bob.client.post(f"/connect/accept/{asked['id']}").status_code == 200
    turn_on(alice, bob)
    alice.send(bob, asked["id"], "sealed for bob")

    plain = Plain(browser, live_server.url, "bob")
    cookies = [
        {"name": c.name, "value": c.value or "", "url": live_server.url} for c in bob.client.http.cookies
    ]
    plain.context.add_cookies(cookies)  # type: ignore[arg-type]
    plain.goto(f"/chat/{alice.client.id}")
    page = plain.page
    warning = page.locator("#e2ee-nojs")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("cannot read or send these messages with JavaScript off")
    expect(warning).to_contain_text("ghostcache-client history alice")
    expect(page.locator("#e2ee-badge")).to_contain_text("End-to-end encrypted")
    expect(page.locator("#messages .msg-text")).to_have_text(["Encrypted message"])
    expect(page.locator("#messages .lock")).to_have_count(1)
    expect(page.locator("#messages .lock")).to_contain_text("end-to-end encrypted")  # its text alternative
    expect(page.get_by_label("Message", exact=True)).to_be_hidden()
    expect(page.get_by_role("button", name="Send")).to_be_hidden()
    expect(page.get_by_role("link", name=CHECK)).to_be_visible()

    # A plain form post anyway (a page loaded before the switch): a clear message, not a crash.
    answer = plain.context.request.post(
        f"/chat/{alice.client.id}", form={"csrf_token": plain.token(), "message": "plain"}
    )
    assert answer.ok and "the message was not sent" in answer.text()

    # With scripts, the same page has the composer (e2ee-chat.js shows it) and no such control.
    scripted = browser.new_context(base_url=live_server.url)
    scripted.add_cookies(cookies)  # type: ignore[arg-type]
    live = scripted.new_page()
    live.goto(f"/chat/{alice.client.id}")
    expect(live.get_by_label("Message", exact=True)).to_be_visible()
    expect(live.locator("#e2ee-nojs")).to_be_hidden()
    expect(live.get_by_text(CHECK)).to_have_count(0)
    scripted.close()

    plain.goto(f"/contacts/{alice.client.id}/safety")
    expect(page.locator("#safety-nojs")).to_contain_text("ghostcache-client safety alice")
    plain.goto("/e2ee")
    expect(page.locator("#e2ee-nojs")).to_contain_text("ghostcache-client e2ee setup")
    assert_clean(plain)
