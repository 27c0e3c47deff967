"""The browser face of every state-changing route: form posts with the page's
CSRF token, then a redirect and a flashed message (or a page) a person sees."""

from __future__ import annotations

import io
import re

import pytest

from tests.conftest import DPASS, PASSWORD


class Browser:
    """A person with a browser: reads the CSRF token from the page's meta tag."""

    def __init__(self, app) -> None:
        self.client = app.test_client()

    def token(self, path: str = "/") -> str:
        html = self.client.get(path).get_data(as_text=True)
        return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)

    def submit(self, path: str, **fields):
        fields.setdefault("csrf_token", self.token())
        return self.client.post(path, data=fields, follow_redirects=True)

    def signup_and_login(self, username: str) -> Browser:
        self.submit("/register", username=username, password=PASSWORD, d_pass=DPASS)
        self.submit("/login", username=username, password=PASSWORD)
        return self


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def alice(app):
    return Browser(app).signup_and_login("alice")


@pytest.fixture
def bob(app):
    return Browser(app).signup_and_login("bob")


def _connect(alice: Browser, bob: Browser, app) -> tuple[int, int]:
    """(connection id, bob's user id) after alice asks and bob accepts, all through forms."""
    page = alice.submit("/connect", username="bob")
    assert "Request sent to bob" in text(page)
    received = text(bob.client.get("/connections"))
    conn_id = int(re.search(r"/connect/accept/(\d+)", received).group(1))
    assert "now connected" in text(bob.submit(f"/connect/accept/{conn_id}"))
    with app.app_context():
        from ghostcache.extensions import db
        from ghostcache.models import User

        return conn_id, db.session.query(User).filter_by(username="bob").one().id


def test_register_redirects_to_login_with_a_message(app):
    page = Browser(app).submit("/register", username="carol", password=PASSWORD, d_pass=DPASS)
    assert page.request.path == "/login"
    assert "Account created" in text(page)


def test_login_lands_on_home_signed_in(alice):
    assert "alice" in text(alice.client.get("/"))


def test_login_goes_to_the_page_asked_for(app):
    browser = Browser(app)
    browser.submit("/register", username="dave", password=PASSWORD, d_pass=DPASS)
    first = browser.client.get("/files")
    assert first.status_code == 302 and "/login?next=" in first.location
    page = browser.submit("/login", username="dave", password=PASSWORD, next="/files")
    assert page.request.path == "/files"


def test_wrong_password_shows_the_form_again_with_a_message(app, alice):
    page = Browser(app).submit("/login", username="alice", password="not the password")
    assert page.status_code == 401
    assert "Wrong username or password" in text(page)


def test_logout_form_signs_out(alice):
    page = alice.submit("/logout")
    assert "logged out" in text(page)
    assert alice.client.get("/files").status_code == 302


def test_connect_accept_and_chat_through_forms(app, alice, bob):
    _, bob_id = _connect(alice, bob, app)
    page = alice.submit(f"/chat/{bob_id}", message="<i>hello</i> bob")
    assert page.request.path == f"/chat/{bob_id}"
    assert "&lt;i&gt;hello&lt;/i&gt; bob" in text(page)


def test_deny_through_form_blocks_the_sender(app, alice, bob):
    alice.submit("/connect", username="bob")
    conn_id = int(re.search(r"/connect/deny/(\d+)", text(bob.client.get("/connections"))).group(1))
    assert "Request denied" in text(bob.submit(f"/connect/deny/{conn_id}"))
    again = alice.submit("/connect", username="bob")
    assert "cannot connect" in text(again)


@pytest.mark.parametrize(
    ("answer", "next_path", "lands_on"),
    [
        ("accept", "/", "/"),
        ("deny", "/", "/"),
        ("accept", "", "/connections"),
        ("accept", "https://evil.example/", "/connections"),
        ("deny", "//evil.example/", "/connections"),
    ],
)
def test_a_request_answered_on_a_page_returns_to_that_local_page_only(
    alice, bob, answer, next_path, lands_on
):
    alice.submit("/connect", username="bob")
    conn_id = int(re.search(rf"/connect/{answer}/(\d+)", text(bob.client.get("/"))).group(1))
    response = bob.client.post(
        f"/connect/{answer}/{conn_id}", data={"csrf_token": bob.token(), "next": next_path}
    )
    assert response.status_code == 302 and response.location == lands_on


def test_an_answer_that_fails_also_returns_to_the_page_it_came_from(alice, bob):
    alice.submit("/connect", username="bob")
    conn_id = int(re.search(r"/connect/accept/(\d+)", text(bob.client.get("/"))).group(1))
    bob.submit(f"/connect/accept/{conn_id}")
    again = bob.submit(f"/connect/accept/{conn_id}", next="/")
    assert again.request.path == "/" and 'class="flash error"' in text(again)


def test_connect_error_is_flashed_on_the_connect_page(alice):
    page = alice.submit("/connect", username="nobody-here")
    assert page.request.path == "/connect"
    assert "No user has that name" in text(page)


def test_upload_share_download_delete_through_forms(app, alice, bob):
    _connect(alice, bob, app)  # files are shared only with contacts
    page = alice.client.post(
        "/file/upload",
        data={
            "csrf_token": alice.token("/file/upload"),
            "expiry_days": "7",
            "file": (io.BytesIO(b"quarterly numbers"), "q3.txt"),
        },
        content_type="multipart/form-data",
    )
    assert page.status_code == 201
    assert "AGE-SECRET-KEY-1" in text(page) and "cannot be recovered" in text(page)
    file_id = int(re.search(r"/file/(\d+)/share", text(alice.client.get("/files"))).group(1))
    assert "Shared with bob" in text(alice.submit(f"/file/{file_id}/share", username="bob"))
    assert "q3.txt" in text(bob.client.get("/files"))
    assert bob.client.get(f"/file/{file_id}").status_code == 200
    assert "File deleted" in text(alice.submit(f"/file/{file_id}/delete"))
    assert bob.client.get(f"/file/{file_id}").status_code == 404


def test_share_error_is_flashed_on_the_files_page(app, alice):
    alice.client.post(
        "/file/upload",
        content_type="multipart/form-data",
        data={"csrf_token": alice.token(), "file": (io.BytesIO(b"x"), "x.txt")},
    )
    file_id = int(re.search(r"/file/(\d+)/share", text(alice.client.get("/files"))).group(1))
    page = alice.submit(f"/file/{file_id}/share", username="alice")
    assert page.request.path == "/files"
    assert "You already have this file" in text(page)


def test_delete_account_form_removes_the_account(app, alice):
    page = alice.submit("/delete_account", csrf_token=alice.token("/account"))
    assert "gone" in text(page)
    again = Browser(app).submit("/login", username="alice", password=PASSWORD)
    assert again.status_code == 401


def test_stale_form_token_is_refused_with_a_message(alice):
    page = alice.submit("/connect", username="bob", csrf_token="stale")
    assert "Please try again" in text(page)


def test_check_for_new_messages_reloads_the_chat_at_its_newest(app, alice, bob):
    _, bob_id = _connect(alice, bob, app)
    page = text(alice.client.get(f"/chat/{bob_id}"))
    assert f'href="/chat/{bob_id}/latest">Check for new messages</a>' in page
    assert page.index("<noscript>") < page.index("Check for new messages") < page.index("</noscript>")
    response = alice.client.get(f"/chat/{bob_id}/latest")
    assert response.status_code == 302 and response.location == f"/chat/{bob_id}#latest"
    sent = alice.client.post(f"/chat/{bob_id}", data={"csrf_token": alice.token(), "message": "hi"})
    assert sent.location == f"/chat/{bob_id}#latest"
