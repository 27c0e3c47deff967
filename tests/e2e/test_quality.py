"""Quality in a real browser: axe-core on every page, Tab order and focus rings, screenshots
at desktop and phone width, and the contact flows between two people, hostile text included.

axe-core comes bundled in axe-playwright-python (nothing is fetched at run time) and goes in
through page.evaluate, which the DevTools protocol runs outside the page's
Content-Security-Policy: so every context here, the axe runs' too, keeps CSP on (no
bypass_csp), and browser.py's listener still reports any CSP violation as an error."""

from __future__ import annotations

import re
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

if shutil.which("chromium") is None:
    pytest.skip("no `chromium` on PATH (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright", reason="no axe-playwright-python")
expect = sync_api.expect

from tests.e2e.browser import LIVE_TIMEOUT, User  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.live]

SHOTS = Path(__file__).parent / "screenshots"
LOOKS = {  # name: (viewport, preferred colour scheme)
    "desktop": ({"width": 1280, "height": 800}, "light"),
    "phone": ({"width": 360, "height": 740}, "light"),
    "phone-dark": ({"width": 360, "height": 740}, "dark"),
}
FAILING_IMPACTS = ("critical", "serious")
MIN_COLOURS = 8  # a blank page has one colour; any text brings dozens through anti-aliasing
HOSTILE = ["<img src=x onerror=alert(1)>", '"><script>alert(1)</script>']
AXE = axe_sync.Axe()


class Person(User):
    """A User who also manages contacts, blocks, uploads and shares, and records every
    dialog: confirms are accepted, anything else dismissed."""

    def __init__(self, browser, base_url: str, name: str) -> None:
        super().__init__(browser, base_url, name)
        self.id = 0
        self.dialogs: list[str] = []
        self.expected: list[str] = []
        self.page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        if dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()

    def register_and_login(self) -> None:
        super().register_and_login()
        self.id = int(self.page.locator("body").get_attribute("data-me-id") or 0)

    def expect_flash(self, text: str) -> None:
        expect(self.page.locator(".flash").first).to_contain_text(text)

    def request_contact(self, name: str) -> None:
        self.goto("/connect")
        self.page.get_by_label("Username", exact=True).fill(name)
        self.page.get_by_role("button", name="Send request").click()
        self.expect_flash(f"Request sent to {name}.")

    def accept_request_from(self, name: str) -> None:
        self.goto("/connections")
        request = self.page.locator("li.item", has_text=f"{name} wants to connect")
        request.get_by_role("button", name="Accept").click()
        self.expect_flash(f"You and {name} are now connected.")

    def click_on_connections(self, button: str) -> None:
        self.goto("/connections")
        self.page.get_by_role("button", name=button, exact=True).click()

    def block(self, name: str) -> None:
        self.goto("/blocks")
        self.page.get_by_label("Username", exact=True).fill(name)
        self.page.get_by_role("button", name="Block", exact=True).click()
        self.expect_flash(f"{name} is blocked.")

    def unblock(self, name: str) -> None:
        self.goto("/blocks")
        self.page.get_by_role("button", name=f"Unblock {name}").click()
        self.expect_flash(f"{name} is no longer blocked.")

    def search(self, text: str) -> list[str]:
        self.goto("/search")
        self.page.get_by_label("Username contains").fill(text)
        self.page.get_by_role("button", name="Search").click()
        expect(self.page.locator("main h2, main .empty").first).to_be_visible()
        return self.page.locator("main li.item strong").all_inner_texts()

    def upload(self, filename: str, content: bytes = b"some notes\n") -> str:
        """Uploads a file and stays on the result page; returns the path of the file's page."""
        self.goto("/file/upload")
        self.page.get_by_label("File", exact=True).set_input_files(
            files=[{"name": filename, "mimeType": "text/plain", "buffer": content}]
        )
        self.page.get_by_role("button", name="Upload and encrypt").click()
        expect(self.page.get_by_role("heading", level=1)).to_have_text("File uploaded")
        return self.page.get_by_role("link", name="Open the file's page").get_attribute("href") or ""

    def share(self, filename: str, name: str) -> None:
        self.goto("/files")
        row = self.page.locator("section", has_text="Your files").locator("tr", has_text=filename)
        row.get_by_label("Share with").fill(name)
        row.get_by_role("button", name="Share").click()
        row = self.page.locator("section", has_text="Your files").locator("tr", has_text=filename)
        expect(row).to_contain_text(name)

    def expect_inert(self) -> None:
        """Nothing a user wrote became markup: no image, handler or script but our own files
        in the page's main."""
        made = self.page.locator('main img, main [onerror], main script:not([src^="/static/"])')
        expect(made).to_have_count(0)

    def expect_status(self, status: int) -> None:
        """The page on show answered `status` on purpose: Chromium's console line about it is
        no error of the page's."""
        note = f"{self.page.url}: Failed to load resource: the server responded with a status of {status}"
        self.expected.append(note)

    def unexpected_errors(self) -> list[str]:
        return [error for error in self.errors if not error.startswith(tuple(self.expected))]


def people(browser, live_server, *names: str) -> list[Person]:
    found = [Person(browser, live_server.url, name) for name in names]
    for person in found:
        person.register_and_login()
    return found


def befriend(a: Person, b: Person) -> None:
    a.request_contact(b.name)
    b.accept_request_from(a.name)


def chat(a: Person, b: Person, *lines: str) -> None:
    """a and b open their chat; each line is sent in turn, a first, and arrives live."""
    a.open_chat_with(b.name)
    b.open_chat_with(a.name)
    for i, line in enumerate(lines):
        sender, receiver = (a, b) if i % 2 == 0 else (b, a)
        sender.send_message(line)
        arrived = receiver.page.locator("#messages .msg.theirs").last
        expect(arrived).to_contain_text(line, timeout=LIVE_TIMEOUT)


def exchange_files(a: Person, b: Person) -> tuple[str, str]:
    """Each shares a file with the other; returns the paths of a's file and of b's."""
    mine = a.upload(f"for-{b.name}.txt")
    a.share(f"for-{b.name}.txt", b.name)
    theirs = b.upload(f"for-{a.name}.txt")
    b.share(f"for-{a.name}.txt", a.name)
    return mine, theirs


def close(*everyone: Person) -> None:
    for person in everyone:
        person.context.close()


# --- axe, screenshots and a small PNG reader -------------------------------------------


def png_colours(png: bytes, enough: int = MIN_COLOURS) -> int:
    """Distinct pixel colours in an 8-bit RGB(A) PNG, read row by row until `enough`."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks, header = 8, [], ()
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        data = png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            chunks.append(data)
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and not interlace, header
    bpp = 3 if colour_type == 2 else 4
    stride, raw = width * bpp, zlib.decompress(b"".join(chunks))
    colours: set[tuple[int, ...]] = set()
    above = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), above, bpp)
        colours.update(zip(*(row[c::bpp] for c in range(bpp)), strict=True))
        if len(colours) >= enough:
            break
        above = row
    return len(colours)


def unfilter(kind: int, row: bytearray, above: bytearray, bpp: int) -> bytearray:
    """Undoes one scanline's PNG filter (None, Sub, Up, Average, Paeth) in place."""
    for i in range(len(row)) if kind else ():
        left = row[i - bpp] if i >= bpp else 0
        up, corner = above[i], above[i - bpp] if i >= bpp else 0
        if kind == 1:
            guess = left
        elif kind == 2:
            guess = up
        elif kind == 3:
            guess = (left + up) // 2
        else:
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
        row[i] = (row[i] + guess) & 255
    return row


class Findings:
    """What axe and the screenshots found, page by page."""

    def __init__(self) -> None:
        self.failing: list[str] = []
        self.minor: list[str] = []
        self.misshapen: list[str] = []
        self.shots: list[Path] = []

    def inspect(self, person: Person, slug: str) -> None:
        """axe and a full-page screenshot in every look; the page is left at desktop width."""
        page = person.page
        for look, (viewport, scheme) in LOOKS.items():
            page.set_viewport_size(viewport)
            page.emulate_media(color_scheme=scheme)
            where = f"{slug} @{look}"
            for violation in AXE.run(page).response["violations"]:
                failing = violation["impact"] in FAILING_IMPACTS
                (self.failing if failing else self.minor).append(describe(where, violation))
            path = SHOTS / f"{slug}-{look}.png"
            png = page.screenshot(path=path, full_page=True)
            self.shots.append(path)
            if (colours := png_colours(png)) < MIN_COLOURS:
                self.misshapen.append(f"{path.name}: blank, {colours} colour(s)")
            if (width := struct.unpack(">I", png[16:20])[0]) != viewport["width"]:
                self.misshapen.append(f"{path.name}: scrolls sideways, {width}px wide")
        page.set_viewport_size(LOOKS["desktop"][0])
        page.emulate_media(color_scheme="light")

    def summary(self) -> str:
        return "\n".join(
            [f"axe, serious or critical ({len(self.failing)}):", *self.failing]
            + [f"axe, moderate or minor ({len(self.minor)}):", *self.minor]
        )


def describe(where: str, violation: dict) -> str:
    nodes = "; ".join(
        f"{' '.join(map(str, node['target']))} = {node['html'][:100]}" for node in violation["nodes"][:6]
    )
    more = f" (+{len(violation['nodes']) - 6} more)" if len(violation["nodes"]) > 6 else ""
    return f"  {where}: {violation['id']} ({violation['impact']}): {nodes}{more}"


Visit = tuple[str, Callable[[], object]]


def at(person: Person, path: str, status: int = 200) -> Callable[[], None]:
    def go() -> None:
        response = person.page.goto(path)
        assert response is not None and response.status == status, (path, response and response.status)
        if status >= 400:
            person.expect_status(status)

    return go


def signed_out_visits(visitor: Person) -> list[Visit]:
    def wrong_login() -> None:
        at(visitor, "/login")()
        visitor.page.get_by_label("Username").fill("nobody")
        visitor.page.get_by_label("Password").fill("not the password")
        visitor.page.get_by_role("button", name="Log in").click()
        expect(visitor.page.locator(".flash.error")).to_be_visible()
        visitor.expect_status(401)

    pages = {"": "/", "register": "/register", "login": "/login", "help": "/help", "logout": "/logout"}
    return [(f"out-{slug or 'home'}", at(visitor, path)) for slug, path in pages.items()] + [
        ("out-login-error", wrong_login),
        ("out-404", at(visitor, "/no-such-page", 404)),
    ]


def signed_in_visits(alice: Person, bob: Person, own_file: str, shared_file: str) -> list[Visit]:
    def connect_error() -> None:
        at(alice, "/connect")()
        alice.page.get_by_label("Username", exact=True).fill("nobody-by-that-name")
        alice.page.get_by_role("button", name="Send request").click()
        expect(alice.page.locator(".flash.error")).to_be_visible()

    def live_notice() -> None:
        at(alice, "/files")()
        bob.send_message("Did the file arrive?")
        expect(alice.page.get_by_role("link", name="New message from bob")).to_be_visible()

    def e2ee_page(path: str, ready: str) -> Callable[[], None]:
        def go() -> None:
            at(alice, path)()
            expect(alice.page.get_by_text(ready)).to_be_visible()
            alice.expect_status(404)  # no key published yet: the page's own lookups say so

        return go

    pages = {
        "home": "/",
        "connect": "/connect",
        "connections": "/connections",
        "blocks": "/blocks",
        "account": "/account",
        "search": "/search?q=o",
        "search-nobody": "/search?q=zzz",
        "files": "/files",
        "upload": "/file/upload",
        "file-own": own_file,
        "file-shared": shared_file,
        "chat": f"/chat/{bob.id}",
        "help": "/help",
        "logout": "/logout",
    }
    return [(slug, at(alice, path)) for slug, path in pages.items()] + [
        ("404", at(alice, "/no-such-page", 404)),
        ("connect-error", connect_error),
        ("upload-done", lambda: alice.upload("report.txt")),
        ("files-live-notice", live_notice),
        ("e2ee-setup", e2ee_page("/e2ee", "Set up encryption in this browser")),
        ("e2ee-safety", e2ee_page(f"/contacts/{bob.id}/safety", "You have not set up end-to-end encryption")),
    ]


def test_every_page_passes_axe_and_renders_at_desktop_and_phone_width(browser, live_server):
    """Signed out and signed in, with a contact, requests both ways, a conversation, files
    shared both ways and a blocked user: no serious or critical axe violation, in light and
    dark, and a full-page screenshot of each under tests/e2e/screenshots/, neither blank nor
    wider than the screen. The axe findings are also written to screenshots/axe-report.txt."""
    everyone = people(browser, live_server, "alice", "bob", "carol", "dave", "mallory")
    alice, bob, carol, dave, mallory = everyone
    befriend(alice, bob)
    carol.request_contact("alice")
    alice.request_contact("dave")
    alice.block("mallory")
    own_file, shared_file = exchange_files(alice, bob)
    chat(alice, bob, "Hi bob, the notes are in Files.", "Thanks! Reading them now.")
    visitor = Person(browser, live_server.url, "visitor")
    SHOTS.mkdir(exist_ok=True)
    findings = Findings()
    tour = [(visitor, visit) for visit in signed_out_visits(visitor)]
    tour += [(alice, visit) for visit in signed_in_visits(alice, bob, own_file, shared_file)]
    for person, (slug, go) in tour:
        go()
        findings.inspect(person, slug)

    print(findings.summary())
    (SHOTS / "axe-report.txt").write_text(findings.summary() + "\n")
    assert len(findings.shots) == len(tour) * len(LOOKS), findings.shots
    assert findings.misshapen == [], findings.misshapen
    assert findings.failing == [], findings.summary()
    for person in (visitor, alice, bob):
        errors = person.unexpected_errors()
        assert errors == [] and person.dialogs == [], (person.name, errors, person.dialogs)
    close(*everyone, visitor)


# --- keyboard ------------------------------------------------------------------------

CONTROLS = r"""() => {
  document.activeElement && document.activeElement.blur();
  const look = s => [s.outlineStyle, s.outlineWidth, s.outlineColor, s.boxShadow].join(' | ');
  const shown = el => !el.disabled && el.getClientRects().length > 0
    && el.checkVisibility({visibilityProperty: true});
  const all = 'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"])';
  return Array.from(document.querySelectorAll(all)).filter(shown).map((el, i) => {
    const text = (el.innerText || el.value || el.getAttribute('aria-label') || '')
      .replace(/\s+/g, ' ').trim();
    el.dataset.focusIndex = i;
    el.dataset.focusName = `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''} "${text.slice(0, 40)}"`;
    el.dataset.unfocused = look(getComputedStyle(el));
    return el.dataset.focusName;
  });
}"""
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0
    && s.outlineColor !== 'rgba(0, 0, 0, 0)';
  const changed = [s.outlineStyle, s.outlineWidth, s.outlineColor, s.boxShadow].join(' | ')
    !== el.dataset.unfocused;
  return {
    index: el.dataset.focusIndex === undefined ? null : Number(el.dataset.focusIndex),
    name: el.dataset.focusName || el.outerHTML.slice(0, 80),
    ring: (outline || s.boxShadow !== 'none') && changed,
  };
}"""


def tab_through(page) -> dict[str, list[str]]:
    """Presses Tab until every visible control has had focus (at most twice their number of
    times, so a wrap past the address bar still counts); returns the controls never reached
    and those that took focus without a visible change of outline or shadow."""
    controls: list[str] = page.evaluate(CONTROLS)
    reached: set[int] = set()
    no_ring: list[str] = []
    for _ in range(2 * len(controls) + 5):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None:
            continue
        if not focused["ring"] and focused["name"] not in no_ring:
            no_ring.append(focused["name"])
        reached.add(focused["index"])
        if reached.issuperset(range(len(controls))):
            break
    unreached = [name for i, name in enumerate(controls) if i not in reached]
    return {"never focused": unreached, "no focus ring": no_ring}


def test_tab_reaches_every_control_and_shows_a_focus_ring(browser, live_server):
    """Home, chat and files pages, each with content: every visible link, button and field
    takes focus from the keyboard, and shows it (outline or box-shadow changes)."""
    alice, bob = people(browser, live_server, "alice", "bob")
    befriend(alice, bob)
    exchange_files(alice, bob)
    chat(alice, bob, "hello", "hi")
    problems = {}
    for path in ["/", f"/chat/{bob.id}", "/files"]:
        alice.goto(path)
        found = tab_through(alice.page)
        if any(found.values()):
            problems[path] = found
    assert problems == {}, problems
    assert alice.unexpected_errors() == [] and bob.unexpected_errors() == []
    close(alice, bob)


# --- contacts and hostile content ----------------------------------------------------


def test_contacts_request_withdraw_accept_remove_block_and_unblock(browser, live_server):
    alice, bob = people(browser, live_server, "alice", "bob")
    requests_for_bob = bob.page.locator("li.item", has_text="alice wants to connect")

    # A request withdrawn: once bob reloads, it is gone from his pages.
    alice.request_contact("bob")
    bob.goto("/connections")
    expect(requests_for_bob).to_have_count(1)
    alice.click_on_connections("Withdraw the request to bob")
    alice.expect_flash("Request to bob withdrawn.")
    bob.page.reload()
    expect(bob.page.locator("section", has_text="Requests for you")).to_contain_text("No pending requests")
    expect(requests_for_bob).to_have_count(0)
    bob.goto("/")
    expect(bob.page.locator("#requests li", has_text="alice wants to connect")).to_have_count(0)

    # Sent again and accepted; a message each way, live.
    befriend(alice, bob)
    chat(alice, bob, "hello bob", "hello alice")

    # Alice removes bob: the conversation is gone for both; bob's chat now answers 403.
    alice.click_on_connections("Remove bob")
    assert alice.dialogs == ["confirm: Remove bob? Your conversation is deleted for both of you."]
    alice.expect_flash("bob removed; your conversation is deleted.")
    expect(alice.page.locator("section", has_text="Your connections")).to_contain_text("No connections yet")
    response = bob.page.goto(f"/chat/{alice.id}")
    assert response is not None and response.status == 403
    bob.expect_status(403)
    expect(bob.page.locator("main")).to_contain_text("You can only chat with accepted contacts.")
    bob.goto("/")
    expect(bob.page.locator("#conversations li")).to_have_count(0)

    # Bob blocks alice from /blocks: she cannot find him any more.
    bob.block("alice")
    expect(bob.page.locator("section", has_text="People you block")).to_contain_text("alice")
    assert alice.search("bob") == []
    expect(alice.page.locator("main .empty")).to_contain_text("Nobody found for “bob”")

    # Unblocked, he can be found and asked again.
    bob.unblock("alice")
    expect(bob.page.locator("section", has_text="People you block")).to_contain_text("You block nobody.")
    assert alice.search("bob") == ["bob"]
    alice.page.get_by_role("button", name="Send contact request").click()
    alice.expect_flash("Request sent to bob.")
    bob.goto("/connections")
    expect(requests_for_bob).to_have_count(1)

    assert bob.dialogs == []
    assert alice.unexpected_errors() == [] and bob.unexpected_errors() == [], alice.errors + bob.errors
    close(alice, bob)


def test_hostile_messages_filenames_and_queries_show_as_text(browser, live_server):
    """Markup in messages (live and reloaded), in a filename and in a search query is shown
    as text: no element is made of it, no dialog opens, no error or CSP violation."""
    alice, bob = people(browser, live_server, "alice", "bob")
    befriend(alice, bob)
    chat(alice, bob)
    for text in HOSTILE:
        alice.send_message(text)
    received = bob.page.locator("#messages .msg.theirs .msg-text")
    expect(received).to_have_text(HOSTILE, timeout=LIVE_TIMEOUT)  # built by app.js
    bob.expect_inert()
    bob.page.reload()
    expect(received).to_have_text(HOSTILE)  # rendered by the server
    bob.expect_inert()
    bob.goto("/")
    expect(bob.page.locator(".conversation-preview")).to_contain_text(HOSTILE[1])
    bob.expect_inert()

    filename = f"{HOSTILE[0]}.txt"
    path = alice.upload(filename)
    expect(alice.page.locator(".facts .filename")).to_have_text(filename)
    alice.expect_inert()
    alice.share(filename, "bob")
    bob.goto("/files")
    expect(bob.page.locator("section", has_text="Shared with you")).to_contain_text(filename)
    bob.expect_inert()
    bob.goto(path)
    expect(bob.page.get_by_role("heading", level=1)).to_have_text(filename)
    bob.expect_inert()

    alice.goto(f"/search?q={quote(HOSTILE[1])}")
    expect(alice.page.locator("main .empty")).to_contain_text(HOSTILE[1])
    expect(alice.page).to_have_title(re.compile(re.escape(HOSTILE[1])))
    alice.expect_inert()

    for person in (alice, bob):
        errors = person.unexpected_errors()
        assert person.dialogs == [] and errors == [], (person.name, person.dialogs, errors)
    close(alice, bob)
