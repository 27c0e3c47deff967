"""Steps of the end-to-end encryption browser tests: a JSON call from the page, signing up,
connecting, setting up encryption through the page, reading what a chat shows."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.browser import LIVE_TIMEOUT, PASSWORD, User

# A JSON call from the page, with its CSRF token: {status, data}.
API = """async ([method, path, body]) => {
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const response = await fetch(path, {
    method,
    headers: {'Content-Type': 'application/json', 'Accept': 'application/json', 'X-CSRFToken': token},
    body: body === null ? undefined : JSON.stringify(body),
  });
  return {status: response.status, data: await response.json().catch(() => null)};
}"""

SAFETY_NUMBER = re.compile(r"^\d{5}( \d{5}){11}$")
# Answers the test asks for, which Chromium logs as errors: 404 (no identity yet, no backup
# yet), 401 (a wrong password on purpose), 409 (turning E2EE on before bob has a key).
# A stream the test cuts on purpose fails to load too.
EXPECTED_REFUSAL = re.compile(
    r"Failed to load resource: (the server responded with a status of (401|404|409) |net::ERR_FAILED)"
)


def api(user: User, method: str, path: str, body: object = None) -> dict:
    return user.page.evaluate(API, [method, path, body])


def me_id(user: User) -> int:
    return int(user.page.locator("body").get_attribute("data-me-id") or 0)


def signed_up(browser, live_server, *names: str) -> list[User]:
    users = [User(browser, live_server.url, name) for name in names]
    for user in users:
        user.register_and_login()
    return users


def connect(asker: User, answerer: User) -> None:
    asked = api(asker, "POST", "/connect", {"username": answerer.name})
    assert asked["status"] == 201, asked
    accepted = api(answerer, "POST", f"/connect/accept/{asked['data']['id']}")
    assert accepted["status"] == 200, accepted


def goto_live(user: User, path: str) -> None:
    """Opens path and waits for its stream to answer, so that nothing after is missed."""
    with user.page.expect_response(lambda r: r.url.endswith("/chat/stream")):
        response = user.page.goto(path)
    assert response is not None and response.ok, path


def set_up_encryption(user: User) -> str:
    """The setup page, step by step; answers the recovery key it showed once."""
    page = user.page
    user.goto("/e2ee")
    page.get_by_role("button", name="Set up end-to-end encryption").click()
    key_box = page.get_by_role("textbox", name="Your recovery key")
    expect(key_box).to_have_value(re.compile(r"^[A-Z2-7]{4}(-[A-Z2-7]{4}){12}$"))
    recovery = key_box.input_value()
    expect(page.get_by_role("button", name="Copy recovery key")).to_be_visible()
    continue_button = page.get_by_role("button", name="Continue")
    expect(continue_button).to_be_disabled()  # "I saved it" first
    page.get_by_label("I saved my recovery key somewhere safe").check()
    continue_button.click()
    expect(page.get_by_role("textbox", name="Your recovery key")).to_be_hidden()
    page.get_by_label("Your login password").fill("not my password")
    page.get_by_role("button", name="Finish setup").click()
    expect(page.locator("#password-error")).to_contain_text("not your login password")
    page.get_by_label("Your login password").fill(PASSWORD)
    page.get_by_role("button", name="Finish setup").click()
    expect(
        page.get_by_role("heading", name="End-to-end encryption is set up in this browser")
    ).to_be_visible()
    assert recovery.replace("-", "") not in page.content().replace("-", "")  # shown once
    return recovery


def open_chat(user: User, other_id: int) -> None:
    goto_live(user, f"/chat/{other_id}")


def composer(user: User):
    return user.page.get_by_label("Message", exact=True)


def shows(user: User, text: str, mine: bool) -> None:
    side = "mine" if mine else "theirs"
    expect(user.page.locator(f"#messages .msg.{side}", has_text=text)).to_have_count(1, timeout=LIVE_TIMEOUT)


def safety_number(user: User, other_id: int) -> str:
    user.goto(f"/contacts/{other_id}/safety")
    number = user.page.locator("#safety-number")
    expect(number).to_have_text(SAFETY_NUMBER)
    return number.inner_text().strip()


def real_errors(*users: User) -> list[str]:
    return [e for u in users for e in u.errors if not EXPECTED_REFUSAL.search(e)]
