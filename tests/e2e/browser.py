"""What every browser test shares: Chromium's flags, error-recording users, page checks.

Test modules skip first (no Chromium, no Playwright), then import from here."""

from __future__ import annotations

import re
import shutil

from playwright.sync_api import expect

CHROMIUM = shutil.which("chromium")
PASSWORD = "correct horse battery"
DPASS = "destroy everything now"
LIVE_TIMEOUT = 15_000  # ms; the SSE stream must deliver well within this
CHROME_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Reports CSP violations (none expected; there is no inline script) as console errors.
CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', function (e) {
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI);
});
"""
UNLABELLED_INPUTS = """
() => Array.from(document.querySelectorAll('input, textarea, select'))
  .filter(el => !['hidden', 'submit', 'button', 'reset', 'image'].includes(el.type))
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML)
"""


class User:
    """One person with their own browser context (cookies) and a page that records errors."""

    def __init__(self, browser, base_url: str, name: str, javascript: bool = True) -> None:
        self.name = name
        self.context = browser.new_context(
            base_url=base_url, accept_downloads=True, java_script_enabled=javascript
        )
        self.context.set_default_timeout(LIVE_TIMEOUT)
        self.context.add_init_script(CSP_LISTENER)
        self.errors: list[str] = []
        self.page = self.context.new_page()
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"{self.page.url}: {exc}"))

    def _on_console(self, msg) -> None:
        if msg.type != "error":
            return
        if "favicon" in msg.text or "favicon" in (msg.location or {}).get("url", ""):
            return
        self.errors.append(f"{self.page.url}: {msg.text}")

    def goto(self, path: str) -> None:
        response = self.page.goto(path)
        assert response is not None and response.ok, f"{path}: {response and response.status}"

    def register_and_login(self) -> None:
        page = self.page
        self.goto("/register")
        page.get_by_label("Username").fill(self.name)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Destruction password").fill(DPASS)
        page.get_by_role("button", name="Create account").click()
        expect(page).to_have_url(re.compile(r"/login$"))
        expect(page.locator(".flash.success")).to_contain_text("Account created")
        page.get_by_label("Username").fill(self.name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        expect(page.locator("main")).to_contain_text(f"Signed in as {self.name}")

    def open_chat_with(self, other: str) -> None:
        self.goto("/connections")
        item = self.page.locator("li.item", has_text=other)
        item.get_by_role("link", name="Chat").click()
        expect(self.page.get_by_role("heading", level=1)).to_have_text(f"Chat with {other}")

    def send_message(self, text: str) -> None:
        self.page.get_by_label("Message", exact=True).fill(text)
        self.page.get_by_role("button", name="Send").click()
        expect(self.page.locator("#messages .msg.mine").last).to_contain_text(text)
        expect(self.page.get_by_label("Message", exact=True)).to_have_value("")
