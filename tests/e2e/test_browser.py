"""End-to-end: real Chromium (Debian's, via Playwright) against a live gunicorn server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip("no `chromium` on PATH (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

from tests.e2e.browser import LIVE_TIMEOUT, UNLABELLED_INPUTS, User  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.live]


def test_new_users_chat_and_share_an_encrypted_file(browser, live_server, tmp_path: Path):
    import pyrage

    alice = User(browser, live_server.url, "alice")
    bob = User(browser, live_server.url, "bob")

    # 1. Both register and log in through the forms.
    alice.register_and_login()
    bob.register_and_login()

    # 2. Alice finds bob and asks to connect; bob accepts.
    alice.goto("/search")
    alice.page.get_by_label("Username contains").fill("bo")
    alice.page.get_by_role("button", name="Search").click()
    result = alice.page.locator("li.item", has_text="bob")
    expect(result).to_have_count(1)
    result.get_by_role("button", name="Send contact request").click()
    expect(alice.page.locator(".flash").first).to_be_visible()
    alice.goto("/connections")
    expect(alice.page.locator("section", has_text="Requests you sent")).to_contain_text("bob")

    bob.goto("/connections")
    request = bob.page.locator("li.item", has_text="alice wants to connect")
    request.get_by_role("button", name="Accept").click()
    expect(bob.page.locator("section", has_text="Your connections")).to_contain_text("alice")
    expect(bob.page.locator("section", has_text="Requests for you")).to_contain_text("No pending requests")

    # 3. Chat, live both ways; markup arrives as text.
    bob.open_chat_with("alice")
    alice.open_chat_with("bob")
    hello = "hi bob, this is <b>not bold</b> & <i>fine</i>"
    alice.send_message(hello)
    expect(bob.page.locator("#messages .msg.theirs")).to_contain_text(hello, timeout=LIVE_TIMEOUT)
    expect(bob.page.locator("#chat-live")).to_have_text(f"alice: {hello}")  # read out to screen readers
    expect(bob.page.locator("#messages b, #messages i")).to_have_count(0)
    expect(alice.page.locator("#messages b")).to_have_count(0)
    bob.send_message("got it, alice")
    expect(alice.page.locator("#messages .msg.theirs")).to_contain_text("got it, alice", timeout=LIVE_TIMEOUT)
    expect(bob.page.locator("#no-messages")).to_be_hidden()
    alice.page.screenshot(path=tmp_path / "chat.png", full_page=True)
    # Reloaded, the history shows both messages once, still escaped.
    alice.page.reload()
    expect(alice.page.locator("#messages .msg")).to_have_count(2)
    expect(alice.page.locator("#messages b")).to_have_count(0)
    # Away from the chat, the tab's one stream still says who wrote, and the link leads there.
    bob.goto("/files")
    alice.send_message("are you there?")
    notice = bob.page.get_by_role("link", name="New message from alice")
    expect(notice).to_be_visible(timeout=LIVE_TIMEOUT)
    notice.click()
    expect(bob.page.locator("#messages .msg.theirs").last).to_contain_text("are you there?")

    # 4. Alice uploads a file for 7 days and gets its key, once.
    original = bytes(range(256)) * 40 + "héllo ghost\n".encode()
    upload = alice.page
    alice.goto("/file/upload")
    upload.get_by_label("Keep for (days)").fill("7")
    upload.get_by_label("File", exact=True).set_input_files(
        files=[{"name": "notes.bin", "mimeType": "application/octet-stream", "buffer": original}]
    )
    upload.get_by_role("button", name="Upload and encrypt").click()
    expect(upload.get_by_role("heading", level=1)).to_have_text("File uploaded")
    expect(upload.get_by_role("alert")).to_contain_text("cannot be recovered")
    key_box = upload.get_by_label("Key for notes.bin")
    expect(key_box).to_have_value(re.compile(r"^AGE-SECRET-KEY-1[0-9A-Z]+$"))
    key = key_box.input_value()
    expect(upload.get_by_role("button", name="Copy key")).to_be_visible()
    expect(upload.locator(".facts")).to_contain_text("notes.bin")
    upload.screenshot(path=tmp_path / "upload_done.png", full_page=True)

    # 5. Alice shares it with bob; bob downloads it and decrypts it offline.
    alice.goto("/files")
    row = alice.page.locator("section", has_text="Your files").locator("tr", has_text="notes.bin")
    row.get_by_label("Share with").fill("bob")
    row.get_by_role("button", name="Share").click()
    expect(
        alice.page.locator("section", has_text="Your files").locator("tr", has_text="notes.bin")
    ).to_contain_text("bob")

    bob.goto("/files")
    shared = bob.page.locator("section", has_text="Shared with you").locator("tr", has_text="notes.bin")
    expect(shared).to_contain_text("alice")
    with bob.page.expect_download() as info:
        shared.get_by_role("link", name="Download").click()
    download = info.value
    assert download.suggested_filename == "notes.bin.age"
    blob = tmp_path / download.suggested_filename
    download.save_as(blob)
    encrypted = blob.read_bytes()
    assert encrypted.startswith(b"age-encryption.org/v1\n")
    assert original not in encrypted
    identity = pyrage.x25519.Identity.from_str(key)
    assert pyrage.decrypt(encrypted, [identity]) == original

    keyfile, out = tmp_path / "key.txt", tmp_path / "notes.out"
    keyfile.write_text(key + "\n")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ghostcache.cli import main; main()",
            "decrypt",
            "--key-file",
            str(keyfile),
            str(blob),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == original

    # 6. Bob decrypts it in the browser, on the file's page; the key never leaves the page.
    decrypt_in_the_browser(bob, key, original, tmp_path)

    # 7. No console errors or CSP violations anywhere along the way.
    assert alice.errors == [] and bob.errors == []
    alice.context.close()
    bob.context.close()


def decrypt_in_the_browser(user: User, key: str, original: bytes, tmp_path: Path) -> None:
    """From the file list to the file's page; a wrong key, then the right one. Every request
    the browser makes meanwhile is recorded: none may carry the key."""
    import pyrage

    sent: list[tuple[str, str, str]] = []

    def record(req) -> None:
        body = req.post_data_buffer or b""
        sent.append((req.method, req.url, body.decode("latin-1") + repr(req.headers)))

    user.context.on("request", record)
    page = user.page
    user.goto("/files")
    shared = page.locator("section", has_text="Shared with you").locator("tr", has_text="notes.bin")
    shared.get_by_role("link", name="notes.bin").click()
    expect(page).to_have_url(re.compile(r"/file/\d+/view$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("notes.bin")
    expect(page.locator(".facts")).to_contain_text("alice")
    expect(page.get_by_text("The key stays in this page: it is never sent to the server.")).to_be_visible()
    field = page.get_by_label("File key")
    expect(field).to_have_attribute("type", "password")
    expect(field).to_have_attribute("autocomplete", "off")
    expect(field).to_have_attribute("spellcheck", "false")
    assert field.get_attribute("name") is None
    if unlabelled := page.evaluate(UNLABELLED_INPUTS):
        raise AssertionError(unlabelled)
    status, alert = page.get_by_role("status"), page.get_by_role("alert")
    decrypt = page.get_by_role("button", name="Decrypt")

    # Another valid key, a cut-off key and something that is no key at all: all refused.
    other = str(pyrage.x25519.Identity.generate())
    for wrong in (other, key[:-6], "not a key"):
        field.fill(wrong)
        decrypt.click()
        expect(alert).to_have_text(re.compile(r"^That key does not open this file\."))
        expect(page.get_by_role("link", name="Save notes.bin")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/file/\d+/view$"))  # no submit, no reload

    field.fill(key)
    decrypt.click()
    expect(status).to_contain_text("Decrypted notes.bin")
    expect(alert).to_be_hidden()
    expect(field).to_have_value("")
    save = page.get_by_role("link", name="Save notes.bin")
    assert save.get_attribute("href").startswith("blob:")
    with page.expect_download() as info:
        save.click()
    download = info.value
    assert download.suggested_filename == "notes.bin"
    target = tmp_path / "notes.from-browser"
    download.save_as(target)
    assert target.read_bytes() == original
    page.screenshot(path=tmp_path / "file_page.png", full_page=True)

    user.context.remove_listener("request", record)
    # The blob was fetched once per attempt with a plausible key (not for "not a key"), by GET.
    blob_fetches = [method for method, url, _ in sent if re.search(r"/file/\d+$", url)]
    assert blob_fetches == ["GET"] * 3, sent
    assert all(method == "GET" for method, _, _ in sent), sent
    for wrong_or_right in (key, other, key.lower(), key[len("AGE-SECRET-KEY-1") :][:20]):
        leaks = [(m, u) for m, u, rest in sent if wrong_or_right in u or wrong_or_right in rest]
        assert leaks == [], leaks


def test_every_page_loads_cleanly_with_labelled_inputs(browser, live_server):
    alice = User(browser, live_server.url, "alice")
    bob = User(browser, live_server.url, "bob")
    problems: dict[str, list[str]] = {}

    def check(path: str) -> None:
        alice.goto(path)
        alice.page.wait_for_load_state("load")
        unlabelled = alice.page.evaluate(UNLABELLED_INPUTS)
        if unlabelled:
            problems[path] = unlabelled

    for path in ["/", "/register", "/login", "/help"]:
        check(path)
    alice.register_and_login()
    bob.register_and_login()
    alice.goto("/connect")
    alice.page.get_by_label("Username", exact=True).fill("bob")
    alice.page.get_by_role("button", name="Send request").click()
    bob.goto("/connections")
    bob.page.get_by_role("button", name="Accept").click()
    expect(bob.page.locator("section", has_text="Your connections")).to_contain_text("alice")
    # A file so /files shows its share form too.
    alice.goto("/file/upload")
    alice.page.get_by_label("File", exact=True).set_input_files(
        files=[{"name": "a.txt", "mimeType": "text/plain", "buffer": b"a"}]
    )
    alice.page.get_by_role("button", name="Upload and encrypt").click()
    expect(alice.page.get_by_role("heading", level=1)).to_have_text("File uploaded")
    if unlabelled := alice.page.evaluate(UNLABELLED_INPUTS):
        problems["upload result"] = unlabelled
    alice.page.get_by_role("link", name="Open the file's page").click()
    expect(alice.page.get_by_label("File key")).to_be_visible()
    file_path = alice.page.url.removeprefix(live_server.url)
    alice.open_chat_with("bob")
    chat_path = alice.page.url.removeprefix(live_server.url)

    for path in [
        "/",
        "/connections",
        "/connect",
        "/search?q=x",
        "/search?q=bo",
        "/files",
        "/file/upload",
        file_path,
        chat_path,
        "/help",
    ]:
        check(path)
    assert problems == {}, problems
    assert alice.errors == [] and bob.errors == []
    alice.context.close()
    bob.context.close()
