"""CSRF: every state-changing request needs the session's token; rejected requests change nothing."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from ghostcache import models
from ghostcache.extensions import db
from tests.conftest import DPASS, JSON, PASSWORD, Session

HTML = {"Accept": "text/html"}
META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')

# (path, JSON body) of every state-changing route.
STATE_CHANGING = [
    ("/register", {"username": "sneaky", "password": PASSWORD, "d_pass": DPASS}),
    ("/login", {"username": "victim", "password": PASSWORD}),
    ("/logout", {}),
    ("/delete_account", {}),
    ("/password", {"password": PASSWORD, "new_password": "a forged new password"}),
    ("/destruction_password", {"password": PASSWORD, "new_d_pass": "a forged destruction one"}),
    ("/connect", {"username": "other"}),
    ("/connect/accept/1", {}),
    ("/connect/deny/1", {}),
    ("/connect/withdraw/2", {}),
    ("/contacts/2/remove", {}),
    ("/block", {"username": "other"}),
    ("/blocks/2/unblock", {}),
    ("/chat/send", {"receiver_id": 2, "message": "forged"}),
    ("/chat/2", {"message": "forged"}),
    ("/file/1/delete", {}),
    ("/file/1/share", {"username": "other"}),
    ("/file/1/unshare", {"username": "fourth"}),
    ("/chat/poll", {}),
]


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def snapshot(app) -> dict[str, object]:
    m = models
    counts: dict[str, object] = {
        t.__name__: count(app, t)
        for t in (m.User, m.Connection, m.Contact, m.Message, m.File, m.FileAccess, m.Blacklist)
    }
    with app.app_context():
        undelivered = select(func.count()).select_from(m.Message).where(m.Message.delivered.is_(False))
        counts["undelivered"] = db.session.scalar(undelivered)
        hashes = select(m.User.password_hash, m.User.dpass_hash).order_by(m.User.id)
        counts["password hashes"] = [tuple(row) for row in db.session.execute(hashes)]
    return counts


@pytest.fixture
def world(app, make_user, connect):
    """victim (id 1) and other (id 2): connected, one message, one pending request, and
    one file shared with a fourth user."""
    victim, other = connect(make_user("victim"), make_user("other"))
    third = make_user("third")
    assert third.post("/connect", {"username": "victim"}).status_code == 201
    assert other.post("/chat/send", {"receiver_id": victim.id, "message": "hi"}).status_code == 201
    connect(victim, make_user("fourth"))
    file = victim.upload().get_json()
    assert victim.post(f"/file/{file['id']}/share", {"username": "fourth"}).status_code == 201
    return victim, other


def assert_csrf_failed(response):
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == "csrf_failed"


def still_logged_in(session: Session) -> bool:
    return session.get("/connections").status_code == 200


@pytest.mark.parametrize("path, body", STATE_CHANGING)
def test_state_changing_route_without_token_is_400_and_changes_nothing(app, world, path, body):
    victim, _ = world
    before = snapshot(app)
    assert_csrf_failed(victim.client.post(path, json=body, headers=JSON))
    assert snapshot(app) == before
    assert still_logged_in(victim)


@pytest.mark.parametrize("path, body", STATE_CHANGING)
def test_state_changing_route_with_a_wrong_token_is_400(app, world, path, body):
    victim, _ = world
    before = snapshot(app)
    assert_csrf_failed(victim.client.post(path, json=body, headers={"X-CSRFToken": "forged", **JSON}))
    assert snapshot(app) == before


@pytest.mark.parametrize("path, body", STATE_CHANGING)
def test_a_token_from_another_session_is_refused(app, world, path, body):
    victim, _ = world
    attacker = Session(app)  # a real, valid token, but for the attacker's own session
    before = snapshot(app)
    response = victim.client.post(path, json=body, headers={"X-CSRFToken": attacker.token, **JSON})
    assert_csrf_failed(response)
    assert snapshot(app) == before


@pytest.mark.parametrize("path, body", STATE_CHANGING)
def test_a_form_post_without_token_changes_nothing(app, world, path, body):
    victim, _ = world
    before = snapshot(app)
    response = victim.client.post(path, data=body, headers=HTML)
    assert response.status_code in (302, 400)
    assert snapshot(app) == before
    assert still_logged_in(victim)


def test_upload_without_token_is_400_and_leaves_no_file_or_blob(app, runtime, make_user):
    user = make_user()
    response = user.client.post(
        "/file/upload",
        data={"file": (io.BytesIO(b"forged"), "x.txt")},
        headers=JSON,
        content_type="multipart/form-data",
    )
    assert_csrf_failed(response)
    assert count(app, models.File) == 0
    assert [p for p in runtime.blobs.root.rglob("*") if p.is_file()] == []


def test_upload_with_wrong_form_token_is_400(app, runtime, make_user):
    user = make_user()
    data = {"file": (io.BytesIO(b"forged"), "x.txt"), "csrf_token": "forged"}
    response = user.client.post("/file/upload", data=data, headers=JSON, content_type="multipart/form-data")
    assert_csrf_failed(response)
    assert count(app, models.File) == 0


def test_upload_with_token_as_form_field_works(app, make_user):
    user = make_user()
    data = {"file": (io.BytesIO(b"real"), "x.txt"), "csrf_token": user.token}
    response = user.client.post("/file/upload", data=data, headers=JSON, content_type="multipart/form-data")
    assert response.status_code == 201


def test_token_as_form_field_works_for_html_forms(app):
    session = Session(app)
    page = session.client.get("/register", headers=HTML).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    data = {"csrf_token": token, "username": "formfan", "password": PASSWORD, "d_pass": DPASS}
    response = session.client.post("/register", data=data, headers=HTML)
    assert response.status_code == 302 and count(app, models.User) == 1


def test_html_form_without_token_re_renders_with_a_message(app):
    session = Session(app)
    data = {"username": "formfan", "password": PASSWORD, "d_pass": DPASS}
    response = session.client.post("/register", data=data, headers=HTML)
    assert response.status_code == 400
    assert "Please try again" in response.get_data(as_text=True)
    assert count(app, models.User) == 0


def test_csrf_endpoint_returns_a_token_and_starts_a_session(app):
    response = app.test_client().get("/csrf")
    token = response.get_json()["csrf_token"]
    assert isinstance(token, str) and len(token) > 20
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_session_cookie_is_secure_over_https(app):
    response = app.test_client().get("/csrf", base_url="https://localhost")
    assert "Secure" in response.headers["Set-Cookie"]


PAGES = ["/", "/register", "/login", "/login?next=/files", "/help", "/no-such-page"]
MEMBER_PAGES = [
    "/",
    "/account",
    "/connect",
    "/connections",
    "/search?q=a",
    "/files",
    "/file/upload",
    "/chat/{other}",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_public_page_carries_a_usable_csrf_meta_tag(app, path):
    client = app.test_client()
    page = client.get(path, headers=HTML).get_data(as_text=True)
    token = META.search(page).group(1)
    data = {"username": f"meta{abs(hash(path)) % 1000}", "password": PASSWORD, "d_pass": DPASS}
    assert client.post("/register", json=data, headers={"X-CSRFToken": token, **JSON}).status_code == 201


@pytest.mark.parametrize("path", MEMBER_PAGES)
def test_every_member_page_carries_a_usable_csrf_meta_tag(connect, path):
    me, other = connect()
    page = me.client.get(path.format(other=other.id), headers=HTML).get_data(as_text=True)
    token = META.search(page).group(1)
    response = me.client.post("/connect", json={"username": "nobody"}, headers={"X-CSRFToken": token, **JSON})
    assert response.status_code == 404  # past the CSRF check


def test_login_replaces_the_token_and_the_old_one_stops_working(app):
    session = Session(app)
    assert session.register("rotator").status_code == 201
    old = session.token
    new = session.login("rotator").get_json()["csrf_token"]
    assert new != old
    stale = session.client.post("/connect", json={"username": "x"}, headers={"X-CSRFToken": old, **JSON})
    assert_csrf_failed(stale)
    fresh = session.client.post("/connect", json={"username": "x"}, headers={"X-CSRFToken": new, **JSON})
    assert fresh.status_code == 404


def test_logout_invalidates_the_token(make_user):
    user = make_user()
    assert user.post("/logout").status_code == 200
    assert_csrf_failed(user.post("/register", {"username": "after", "password": PASSWORD, "d_pass": DPASS}))


def test_get_requests_need_no_token(make_user):
    user = make_user()
    assert user.client.get("/connections", headers=JSON).status_code == 200
