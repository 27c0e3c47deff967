"""End-to-end: the file pages in real Chromium against a live server. Drag-and-drop upload
with progress and Cancel, the key link (`/file/<id>/view#key=...`), decryption in the page
and streamed into a file, time left before expiry, hostile filenames, and the form without
JavaScript."""

from __future__ import annotations

import base64
import os
import re
import time

import pytest

from tests.e2e.browser import CHROMIUM

if CHROMIUM is None:
    pytest.skip("no `chromium` on PATH (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

from tests.e2e.browser import LIVE_TIMEOUT, PASSWORD, UNLABELLED_INPUTS, User  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.live]

KEY_RE = re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]+")
CANCELLED = "Upload cancelled: nothing was stored."
HOSTILE = ["<img src=x onerror=alert(1)>.txt", '"; rm -rf ~; ".txt']

# A stand-in for the save dialog of the File System Access API, which headless Chromium
# cannot answer: it "saves" into memory and records how the data arrived.
SAVE_PICKER_STUB = """
(() => {
  const saved = window.__saved = { parts: [], writes: 0, largest: 0, firstWriteAt: 0,
                                   closedAt: 0, aborted: false, suggestedName: null };
  window.showSaveFilePicker = async (options) => {
    saved.suggestedName = options && options.suggestedName;
    return {
      name: 'chosen.bin',
      createWritable: async () => {
        const stream = new WritableStream({
          write(chunk) {
            if (!saved.writes) saved.firstWriteAt = performance.now();
            saved.writes += 1;
            saved.largest = Math.max(saved.largest, chunk.byteLength);
            saved.parts.push(chunk.slice());
          },
          close() { saved.closedAt = performance.now(); },
          abort() { saved.aborted = true; },
        });
        stream.write = async (data) => {
          const writer = stream.getWriter();
          try { await writer.write(data); } finally { writer.releaseLock(); }
        };
        return stream;
      },
    };
  };
})();
"""
NO_SAVE_PICKER = "delete window.showSaveFilePicker; delete Window.prototype.showSaveFilePicker;"
SAVED_BYTES = """
() => {
  const parts = window.__saved.parts;
  const all = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.byteLength; }
  let text = '';
  for (let i = 0; i < all.length; i += 0x8000) text += String.fromCharCode(...all.subarray(i, i + 0x8000));
  return btoa(text);
}
"""
DROP = """
([name, b64, repeat]) => {
  const block = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  const parts = [...Array(repeat).fill(block), 'end'];
  transfer.items.add(new File(parts, name, { type: 'application/octet-stream' }));
  return transfer;
}
"""


def dropped_content(block: bytes, repeat: int) -> bytes:
    """The bytes of the file that DROP builds."""
    return block * repeat + b"end"


def drop_file(user: User, name: str, block: bytes, repeat: int) -> None:
    """Drags a file made in the page onto the upload page's drop zone and drops it."""
    transfer = user.page.evaluate_handle(DROP, [name, base64.b64encode(block).decode(), repeat])
    for event in ("dragenter", "dragover", "drop"):
        user.page.dispatch_event("#drop-zone", event, {"dataTransfer": transfer})


def throttle(user: User, upload: int = -1, download: int = -1):
    """Chromium's own network throttling for this page, in bytes per second (-1: none),
    until the returned DevTools session is detached."""
    cdp = user.context.new_cdp_session(user.page)
    cdp.send("Network.enable")
    conditions = {"offline": False, "latency": 0, "uploadThroughput": upload, "downloadThroughput": download}
    cdp.send("Network.emulateNetworkConditions", conditions)
    return cdp


def choose_and_upload(user: User, name: str, content: bytes, expiry_days: str = "") -> dict:
    """Uploads through the page (upload.js); returns the file's id, key and link as shown."""
    page = user.page
    user.goto("/file/upload")
    if expiry_days:
        page.get_by_label("Keep for (days)").fill(expiry_days)
    page.get_by_label("File", exact=True).set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": content}]
    )
    page.get_by_role("button", name="Upload and encrypt").click()
    return shown_result(user, name)


def shown_result(user: User, name: str) -> dict:
    page = user.page
    expect(page.get_by_role("heading", level=1)).to_have_text("File uploaded", timeout=4 * LIVE_TIMEOUT)
    key = page.get_by_label(f"Key for {name}", exact=True).input_value()
    link = page.get_by_label("Link for the recipient, with the key").input_value()
    found = re.fullmatch(r"(http://[^/]+/file/(\d+)/view)#key=(AGE-SECRET-KEY-1[0-9A-Z]+)", link)
    assert found and found.group(3) == key, link
    return {"id": int(found.group(2)), "key": key, "link": link, "page": found.group(1)}


def connect_and_share(alice: User, bob: User, filename: str) -> None:
    alice.goto("/connect")
    alice.page.get_by_label("Username", exact=True).fill(bob.name)
    alice.page.get_by_role("button", name="Send request").click()
    bob.goto("/connections")
    bob.page.get_by_role("button", name="Accept").click()
    expect(bob.page.locator("section", has_text="Your connections")).to_contain_text(alice.name)
    alice.goto("/files")
    row = alice.page.locator("section", has_text="Your files").locator("tr", has_text=filename)
    row.get_by_label("Share with").fill(bob.name)
    row.get_by_role("button", name="Share").click()
    expect(alice.page.locator("tr", has_text=filename)).to_contain_text(bob.name)


def record_requests(user: User) -> list[tuple[str, str, str]]:
    sent: list[tuple[str, str, str]] = []

    def record(req) -> None:
        body = req.post_data_buffer or b""
        sent.append((req.method, req.url, body.decode("latin-1") + repr(req.headers)))

    user.context.on("request", record)
    return sent


def assert_never_sent(sent: list[tuple[str, str, str]], key: str) -> None:
    for part in (key, key.lower(), key[len("AGE-SECRET-KEY-1") :][:20]):
        leaks = [(method, url) for method, url, rest in sent if part in url or part in rest]
        assert leaks == [], leaks


def blob_files(live_server) -> list[str]:
    """Every file in the blob folder and in its .incoming folder of partial uploads."""
    root = live_server.data_dir / "blobs"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def owned_files(user: User) -> list[dict]:
    response = user.context.request.get("/files", headers={"Accept": "application/json"})
    assert response.ok
    return response.json()["owned"]


def wait_for(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


# ---- upload ----------------------------------------------------------------------------


def test_dropped_file_uploads_with_progress_and_shows_its_key_and_link_once(browser, live_server):
    import pyrage

    alice = User(browser, live_server.url, "alice")
    alice.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    alice.register_and_login()
    page = alice.page
    block = os.urandom(64 * 1024)
    content = dropped_content(block, 128)  # 8 MiB and a bit

    alice.goto("/file/upload")
    expect(page.get_by_text("Or drag a file onto this page and drop it.")).to_be_visible()
    page.get_by_label("Keep for (days)").fill("7")
    drop_file(alice, "holiday.bin", block, 128)
    expect(page.locator("#file-chosen")).to_have_text("Chosen: holiday.bin (8.4 MB)")
    throttle(alice, upload=3_000_000)  # a few seconds, so that progress shows on the way
    page.get_by_role("button", name="Upload and encrypt").click()

    bar, stats = page.get_by_label("Upload progress"), page.locator("#upload-stats")
    expect(page.get_by_role("button", name="Cancel upload")).to_be_visible()
    expect(stats).to_contain_text(re.compile(r"\d+% · .* of 8\.4 MB · [\d.]+ MB/s · about .* left"))
    shown = shown_result(alice, "holiday.bin")
    assert bar.evaluate("el => el.value") == 100
    expect(stats).to_contain_text(re.compile(r"^100% · 8\.4 MB sent in .* · [\d.]+ MB/s on average$"))
    expect(page.get_by_role("button", name="Cancel upload")).to_be_hidden()
    expect(page.get_by_role("alert")).to_contain_text("cannot be recovered")
    expect(page.locator("#upload-result .facts")).to_contain_text("holiday.bin")
    expect(page.locator("#upload-result .facts")).to_contain_text("in 7 days")
    assert shown["link"].startswith(f"{live_server.url}/file/{shown['id']}/view#key=")
    if unlabelled := page.evaluate(UNLABELLED_INPUTS):
        raise AssertionError(unlabelled)

    for target, text in (("result-link", shown["link"]), ("result-key", shown["key"])):
        button = page.locator(f'button[data-copy-target="{target}"]')
        button.click()
        expect(button).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == text

    # What was stored is the file, encrypted to that key.
    blob = alice.context.request.get(f"/file/{shown['id']}").body()
    assert pyrage.decrypt(blob, [pyrage.x25519.Identity.from_str(shown["key"])]) == content

    # Shown once: nowhere else, not even on a reload.
    page.get_by_role("link", name="Go to files").click()
    expect(page.locator("tr", has_text="holiday.bin")).to_contain_text("in 7 days")
    assert page.locator("tr", has_text="holiday.bin").locator("time[datetime]").count() == 1
    for path in ("/files", f"/file/{shown['id']}/view", "/file/upload"):
        alice.goto(path)
        assert not KEY_RE.search(page.content()), path
    assert alice.errors == []
    alice.context.close()


def test_cancel_mid_upload_stores_nothing(browser, live_server):
    alice = User(browser, live_server.url, "alice")
    alice.register_and_login()
    page = alice.page
    before = blob_files(live_server)
    alice.goto("/file/upload")
    throttle(alice, upload=150_000)  # 4 MiB would take about half a minute
    page.get_by_label("File", exact=True).set_input_files(
        files=[{"name": "big.bin", "mimeType": "application/octet-stream", "buffer": os.urandom(4 << 20)}]
    )
    page.get_by_role("button", name="Upload and encrypt").click()
    page.wait_for_function("() => document.getElementById('upload-bar').value >= 3")
    # The server is storing the partial upload meanwhile.
    assert wait_for(lambda: any(name.startswith(".incoming/") for name in blob_files(live_server)))
    expect(page.get_by_role("button", name="Upload and encrypt")).to_be_disabled()

    page.get_by_role("button", name="Cancel upload").click()
    expect(page.get_by_role("status").filter(has_text=CANCELLED)).to_have_text(CANCELLED)
    expect(page.get_by_label("Upload progress")).to_be_hidden()
    expect(page.get_by_role("button", name="Upload and encrypt")).to_be_enabled()
    expect(page.get_by_label("File", exact=True)).to_be_focused()
    # The server removes the partial upload: no row, no blob, no partial file.
    assert wait_for(lambda: blob_files(live_server) == before), blob_files(live_server)
    assert owned_files(alice) == []
    time.sleep(2)  # and nothing turns up late
    assert blob_files(live_server) == before and owned_files(alice) == []
    assert alice.errors == []
    alice.context.close()


def test_refused_uploads_show_the_servers_message_in_an_alert(browser, tmp_path):
    from tests.live import LiveServer

    # One worker: without Redis each process counts requests for the rate limits itself.
    limits = {"max_upload_mb": "1", "ratelimit": "on", "ratelimits": "upload=2/hour"}
    server = LiveServer(tmp_path / "limits", workers=1, **limits)
    server.start()
    try:
        alice = User(browser, server.url, "alice")
        alice.register_and_login()
        page = alice.page
        alert = page.get_by_role("alert")
        upload = page.get_by_role("button", name="Upload and encrypt")
        big = [{"name": "big.bin", "mimeType": "application/octet-stream", "buffer": b"x" * (1 << 20) + b"x"}]
        small = [{"name": "small.txt", "mimeType": "text/plain", "buffer": b"small"}]
        sent = record_requests(alice)
        alice.goto("/file/upload")

        # Too large: said at once, before a byte is sent.
        page.get_by_label("File", exact=True).set_input_files(files=big)
        expect(alert).to_have_text("Files can be at most 1 MB. This one is 1.0 MB.")
        upload.click()
        expect(alert).to_have_text("Files can be at most 1 MB. This one is 1.0 MB.")
        assert [u for m, u, _ in sent if m == "POST"] == []

        # A stale CSRF token: 400 csrf_failed, the contract's message.
        page.get_by_label("File", exact=True).set_input_files(files=small)
        page.evaluate("document.querySelector('meta[name=csrf-token]').content = 'stale'")
        upload.click()
        expect(alert).to_have_text("The form was stale or incomplete. Please try again.")
        expect(upload).to_be_enabled()

        # Past the page's own check, the server refuses too: 413 too_large.
        alice.goto("/file/upload")
        page.evaluate("document.getElementById('upload-form').removeAttribute('data-max-bytes')")
        for size in (3 << 19, 3 << 20):
            page.get_by_label("File", exact=True).set_input_files(files=[{**big[0], "buffer": b"x" * size}])
            upload.click()
            expect(alert).to_have_text("Files can be at most 1 MB.")

        # 2 uploads an hour, refused ones included (not the one refused unread, before the
        # limits): the next is 429.
        page.get_by_label("File", exact=True).set_input_files(files=small)
        upload.click()
        expect(alert).to_have_text("Too many requests. Please wait a little and try again.")
        expect(page.get_by_role("heading", level=1)).to_have_text("Upload a file")
        expect(page.get_by_label("Upload progress")).to_be_hidden()
        # The only console errors: Chromium's own line for each refused request.
        refused = r"/file/upload: Failed to load resource: the server responded with a status of (\d+)"
        statuses = [int(m.group(1)) for e in alice.errors if (m := re.search(refused, e))]
        assert statuses == [400, 413, 413, 429] and len(alice.errors) == 4, alice.errors
        alice.context.close()
    finally:
        server.stop()


def test_without_javascript_the_form_uploads_and_shows_the_key_and_the_link(browser, live_server):
    alice = User(browser, live_server.url, "alice")
    alice.register_and_login()
    cookies = alice.context.cookies()
    plain = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    plain.add_cookies(cookies)
    page = plain.new_page()
    page.goto("/file/upload")
    expect(page.get_by_text("Or drag a file onto this page and drop it.")).to_be_hidden()
    page.get_by_label("File", exact=True).set_input_files(
        files=[{"name": "plain.txt", "mimeType": "text/plain", "buffer": b"no script needed"}]
    )
    page.get_by_role("button", name="Upload and encrypt").click()
    expect(page).to_have_url(re.compile(r"/file/upload$"))  # the answer to the POST
    expect(page.get_by_role("heading", level=1)).to_have_text("File uploaded")
    key = page.get_by_label("Key for plain.txt").input_value()
    link = page.get_by_label("Link for the recipient, with the key").input_value()
    file_id = owned_files(alice)[0]["id"]
    assert link == f"{live_server.url}/file/{file_id}/view#key={key}"
    expiry = re.compile(r"in 365 days \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)")
    expect(page.locator(".facts")).to_contain_text(expiry)
    plain.close()
    alice.context.close()


# ---- the key link and decryption -------------------------------------------------------


def uploaded_and_shared(browser, live_server, content: bytes, bob_script: str) -> tuple[User, User, dict]:
    """alice uploads `content` as report.bin and shares it with bob; bob's pages run
    `bob_script` first."""
    alice = User(browser, live_server.url, "alice")
    bob = User(browser, live_server.url, "bob")
    bob.context.add_init_script(bob_script)
    alice.register_and_login()
    bob.register_and_login()
    shown = choose_and_upload(alice, "report.bin", content)
    connect_and_share(alice, bob, "report.bin")
    return alice, bob, shown


def test_a_key_link_opened_while_signed_out_still_brings_the_key_after_login(browser, live_server):
    """The link redirects to the login page; after logging in, the file page has the key
    (the fragment travels with the browser, never to the server)."""
    alice, bob, shown = uploaded_and_shared(browser, live_server, b"for bob only", NO_SAVE_PICKER)
    fresh = browser.new_context(base_url=live_server.url)
    page = fresh.new_page()
    sent: list[str] = []
    page.on("request", lambda req: sent.append(req.url + (req.post_data or "")))
    page.goto(shown["link"])
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Username").fill(bob.name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(shown["page"])  # and the fragment removed again
    expect(page.get_by_label("File key")).to_have_value(shown["key"])
    assert [url for url in sent if shown["key"] in url] == []
    fresh.close()


def test_the_key_link_decrypts_in_the_page_and_leaves_the_address_bar(browser, live_server, tmp_path):
    content = os.urandom(3 << 20)
    alice, bob, shown = uploaded_and_shared(browser, live_server, content, NO_SAVE_PICKER)
    page = bob.page
    sent = record_requests(bob)

    bob.goto(shown["link"])
    expect(page).to_have_url(shown["page"])  # the fragment is gone from the address bar
    assert page.evaluate("location.hash") == "" and shown["key"] not in page.evaluate("location.href")
    field = page.get_by_label("File key")
    expect(field).to_have_attribute("type", "password")
    expect(field).to_have_value(shown["key"])
    expect(page.get_by_role("status").filter(has_text="key from your link")).to_contain_text(
        "no longer in the address bar"
    )
    expect(page.get_by_role("button", name="Decrypt")).to_be_focused()
    # Where the browser cannot write a file as it goes, the page says how it decrypts.
    note = "This browser decrypts in memory: files larger than a few hundred MB may fail."
    expect(page.get_by_text(note)).to_be_visible()
    expect(page.get_by_role("button", name="Save to a file…")).to_be_hidden()
    # Nothing was fetched for the key: decrypting waits for the click.
    assert [u for _, u, _ in sent if re.search(r"/file/\d+$", u)] == []

    page.get_by_role("button", name="Decrypt").click()
    expect(page.get_by_role("status").filter(has_text="Decrypted")).to_have_text(
        "Decrypted report.bin. Save it with the button below."
    )
    expect(field).to_have_value("")
    with page.expect_download() as info:
        page.get_by_role("link", name="Save report.bin").click()
    target = tmp_path / "report.from-link"
    info.value.save_as(target)
    assert target.read_bytes() == content
    # The history entry was rewritten too: back to it, the fragment does not come back.
    bob.goto("/files")
    page.go_back()
    expect(page).to_have_url(shown["page"])

    assert [m for m, u, _ in sent if re.search(r"/file/\d+$", u)] == ["GET"]
    assert all(method == "GET" for method, _, _ in sent), sent
    assert_never_sent(sent, shown["key"])
    assert alice.errors == [] and bob.errors == []
    alice.context.close()
    bob.context.close()


def test_save_to_a_file_streams_the_decryption_into_it(browser, live_server):
    import pyrage

    content = os.urandom(3 << 20) + b"tail"
    alice, bob, shown = uploaded_and_shared(browser, live_server, content, SAVE_PICKER_STUB)
    page = bob.page
    sent = record_requests(bob)
    bob.goto(f"/file/{shown['id']}/view")
    save = page.get_by_role("button", name="Save to a file…")
    expect(save).to_be_visible()
    expect(page.get_by_text("decrypts straight into that file")).to_be_visible()
    expect(page.get_by_text("This browser decrypts in memory")).to_be_hidden()

    # A wrong key: the file is not written, its writer is aborted.
    page.get_by_label("File key").fill(str(pyrage.x25519.Identity.generate()))
    save.click()
    expect(page.get_by_role("alert")).to_contain_text("That key does not open this file.")
    outcome = "[window.__saved.writes, window.__saved.closedAt, window.__saved.aborted]"
    assert page.evaluate(outcome) == [0, 0, True]

    # The right key, the download slowed down: the file is written while it arrives.
    page.evaluate("window.__saved.aborted = false")
    slow = throttle(bob, download=1_000_000)
    page.get_by_label("File key").fill(shown["key"])
    save.click()
    expect(page.get_by_label("Decryption progress")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="saved it")).to_have_text(
        "Decrypted report.bin and saved it as chosen.bin.", timeout=4 * LIVE_TIMEOUT
    )
    saved = page.evaluate("window.__saved")
    assert saved["suggestedName"] == "report.bin" and not saved["aborted"]
    assert saved["writes"] > 40 and saved["largest"] <= 64 * 1024  # chunk by chunk
    assert saved["closedAt"] - saved["firstWriteAt"] > 1500  # writing began long before the end
    assert base64.b64decode(page.evaluate(SAVED_BYTES)) == content
    expect(page.get_by_label("File key")).to_have_value("")
    slow.detach()

    # A damaged blob: what was decrypted so far is thrown away (the writer is aborted).
    blob = next(p for p in (live_server.data_dir / "blobs").iterdir() if p.is_file())
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 1
    blob.write_bytes(bytes(data))
    page.evaluate("Object.assign(window.__saved, {parts: [], writes: 0, closedAt: 0, aborted: false})")
    page.get_by_label("File key").fill(shown["key"])
    save.click()
    expect(page.get_by_role("alert")).to_have_text("The file could not be decrypted: it seems to be damaged.")
    assert page.evaluate("[window.__saved.closedAt, window.__saved.aborted]") == [0, True]

    assert_never_sent(sent, shown["key"])
    assert alice.errors == [] and bob.errors == []
    alice.context.close()
    bob.context.close()


# ---- hostile filenames -----------------------------------------------------------------


def test_hostile_filenames_are_text_on_every_file_page(browser, live_server):
    alice = User(browser, live_server.url, "alice")
    dialogs: list[str] = []
    alice.page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    alice.register_and_login()
    page = alice.page
    for name in HOSTILE:
        shown = choose_and_upload(alice, name, b"harmless")
        expect(page.locator("#result-name")).to_have_text(name)
        expect(page.get_by_label(f"Key for {name}", exact=True)).to_be_visible()
        assert page.locator("main img").count() == 0

        alice.goto(f"/file/{shown['id']}/view")
        expect(page.get_by_role("heading", level=1)).to_have_text(name)
        assert page.locator("#decrypt-form").get_attribute("data-filename") == name
        assert page.locator("main img").count() == 0
    alice.goto("/files")
    for name in HOSTILE:
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    assert page.locator("main img").count() == 0
    page.wait_for_timeout(500)  # an injected handler would have fired by now
    assert dialogs == []
    assert alice.errors == []
    alice.context.close()
