"""Accounts: register, login, logout, deletion, the destruction password, inactivity."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from sqlalchemy import or_, select

from ghostcache import models
from ghostcache.extensions import db
from tests.conftest import DPASS, JSON, PASSWORD, Session

HTML = {"Accept": "text/html"}
WRONG = "not the password at all"
LONG = "x" * 1025


def form_post(session: Session, path: str, **fields):
    """A browser form post: fields plus the CSRF token, HTML wanted."""
    return session.client.post(path, data={"csrf_token": session.token, **fields}, headers=HTML)


def without_csrf_tokens(html: str) -> str:
    return re.sub(r'(name="csrf[-_]token" (?:content|value)=")[^"]*"', r'\1"', html)


def user_row(app, username: str):
    with app.app_context():
        return db.session.scalar(select(models.User).where(models.User.username_key == username.lower()))


def rows_of(app, uid: int) -> dict[str, int]:
    """How many rows of each kind involve the user."""
    m = models
    queries = {
        "user": select(m.User).where(m.User.id == uid),
        "files": select(m.File).where(m.File.owner_id == uid),
        "messages": select(m.Message).where(or_(m.Message.sender_id == uid, m.Message.receiver_id == uid)),
        "connections": select(m.Connection).where(
            or_(m.Connection.sender_id == uid, m.Connection.receiver_id == uid)
        ),
        "contacts": select(m.Contact).where(or_(m.Contact.owner_id == uid, m.Contact.contact_id == uid)),
        "grants": select(m.FileAccess).where(m.FileAccess.user_id == uid),
        "blocks": select(m.Blacklist).where(
            or_(m.Blacklist.blocker_id == uid, m.Blacklist.blocked_id == uid)
        ),
    }
    with app.app_context():
        return {name: len(db.session.scalars(q).all()) for name, q in queries.items()}


def blob_names(app, owner_id: int) -> list[str]:
    with app.app_context():
        query = select(models.File.stored_name).where(models.File.owner_id == owner_id)
        return list(db.session.scalars(query))


def blob_exists(runtime, name: str) -> bool:
    return (runtime.blobs.root / name).is_file()


def ok(response, status: int = 200):
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def build_world(make_user, connect):
    """victim <-> friend connected with messages, files and grants both ways;
    victim blocks stranger; friend <-> stranger connected too."""
    victim, friend = connect(make_user(), make_user())
    stranger = make_user()
    conn = ok(stranger.post("/connect", {"username": victim.username}), 201)
    ok(victim.post(f"/connect/deny/{conn['id']}"))
    connect(friend, stranger)
    ok(victim.post("/chat/send", {"receiver_id": friend.id, "message": "from victim"}), 201)
    ok(friend.post("/chat/send", {"receiver_id": victim.id, "message": "to victim"}), 201)
    ok(friend.post("/chat/send", {"receiver_id": stranger.id, "message": "not about victim"}), 201)
    victim_file = ok(victim.upload(b"victim data"), 201)
    ok(victim.post(f"/file/{victim_file['id']}/share", {"username": friend.username}), 201)
    friend_file = ok(friend.upload(b"friend data"), 201)
    ok(friend.post(f"/file/{friend_file['id']}/share", {"username": victim.username}), 201)
    ok(friend.post(f"/file/{friend_file['id']}/share", {"username": stranger.username}), 201)
    return victim, friend, stranger


def assert_victim_gone_friend_intact(app, runtime, victim, friend, before_friend, victim_blobs, friend_blobs):
    assert set(rows_of(app, victim.id).values()) == {0}
    after = rows_of(app, friend.id)
    assert after["user"] == 1 and after["files"] == before_friend["files"]
    assert after["messages"] == before_friend["messages"] - 2
    assert after["connections"] == after["contacts"] / 2 == 1
    assert not any(blob_exists(runtime, name) for name in victim_blobs)
    assert all(blob_exists(runtime, name) for name in friend_blobs)


# ---- register ----------------------------------------------------------------


def test_register_answers_201_with_the_user(app):
    body = ok(Session(app).register("newbie"), 201)
    assert body == {"id": body["id"], "username": "newbie"} and isinstance(body["id"], int)


def test_register_form_redirects_to_login_with_a_flash(app):
    session = Session(app)
    response = form_post(session, "/register", username="browser", password=PASSWORD, d_pass=DPASS)
    assert response.status_code == 302 and urlsplit(response.location).path == "/login"
    page = session.client.get(response.location, headers=HTML).get_data(as_text=True)
    assert "Account created" in page


REGISTER_ERRORS = [
    ({"password": PASSWORD, "d_pass": DPASS}, 400, "missing_field"),
    ({"username": "", "password": PASSWORD, "d_pass": DPASS}, 400, "missing_field"),
    ({"username": "carol", "d_pass": DPASS}, 400, "missing_field"),
    ({"username": "carol", "password": "", "d_pass": DPASS}, 400, "missing_field"),
    ({"username": "carol", "password": PASSWORD}, 400, "missing_field"),
    ({"username": "carol", "password": PASSWORD, "d_pass": ""}, 400, "missing_field"),
    ({"username": "ab", "password": PASSWORD, "d_pass": DPASS}, 400, "invalid_username"),
    ({"username": "a" * 33, "password": PASSWORD, "d_pass": DPASS}, 400, "invalid_username"),
    ({"username": "bad name", "password": PASSWORD, "d_pass": DPASS}, 400, "invalid_username"),
    ({"username": "bad!", "password": PASSWORD, "d_pass": DPASS}, 400, "invalid_username"),
    ({"username": "zoë_x", "password": PASSWORD, "d_pass": DPASS}, 400, "invalid_username"),
    ({"username": "<b>x</b>", "password": PASSWORD, "d_pass": DPASS}, 400, "invalid_username"),
    ({"username": "carol", "password": "short", "d_pass": DPASS}, 400, "weak_password"),
    ({"username": "carol", "password": PASSWORD, "d_pass": "1234567"}, 400, "weak_password"),
    ({"username": "carol", "password": LONG, "d_pass": DPASS}, 400, "password_too_long"),
    ({"username": "carol", "password": PASSWORD, "d_pass": LONG}, 400, "password_too_long"),
    ({"username": "carol", "password": PASSWORD, "d_pass": PASSWORD}, 400, "same_passwords"),
    ({"username": "taken", "password": PASSWORD, "d_pass": DPASS}, 409, "username_taken"),
    ({"username": "TAKEN", "password": PASSWORD, "d_pass": DPASS}, 409, "username_taken"),
    ({"username": "Taken", "password": PASSWORD, "d_pass": DPASS}, 409, "username_taken"),
]


@pytest.mark.parametrize("fields, status, code", REGISTER_ERRORS)
def test_register_rejects_bad_input_with_the_contract_code(app, fields, status, code):
    ok(Session(app).register("taken"), 201)
    response = Session(app).post("/register", fields)
    assert response.status_code == status
    assert response.get_json()["error"] == code and response.get_json()["message"]
    with app.app_context():
        assert len(db.session.scalars(select(models.User)).all()) == 1  # nothing created


def test_register_boundaries_are_accepted(app):
    ok(Session(app).register("abc", password="p" * 8, d_pass="d" * 1024), 201)
    ok(Session(app).register("a" * 32, password="p" * 1024, d_pass="d" * 8), 201)
    ok(Session(app).register("A.b_c-9"), 201)


def test_register_form_error_shows_the_message_and_keeps_the_username_only(app):
    session = Session(app)
    response = form_post(session, "/register", username="formuser", password="short", d_pass="short2")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "at least 8 characters" in page and 'value="formuser"' in page and "short2" not in page


def test_username_keeps_its_case_and_login_ignores_case(app):
    assert ok(Session(app).register("Alice"), 201)["username"] == "Alice"
    assert ok(Session(app).register("alice"), 409) is not None
    for spelling in ("alice", "ALICE", "aLiCe"):
        body = ok(Session(app).login(spelling))
        assert body["username"] == "Alice"


# ---- login / logout ------------------------------------------------------------


def test_login_returns_the_user_and_a_fresh_csrf_token(app):
    session = Session(app)
    created = ok(session.register("loginer"), 201)
    old_token = session.token
    body = ok(session.post("/login", {"username": "loginer", "password": PASSWORD}))
    assert body["id"] == created["id"] and body["username"] == "loginer"
    assert body["csrf_token"] and body["csrf_token"] != old_token


def test_wrong_password_and_unknown_user_get_the_same_401(app):
    ok(Session(app).register("realuser"), 201)
    wrong = Session(app).login("realuser", WRONG)
    unknown = Session(app).login("ghostuser", WRONG)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json()["error"] == "invalid_credentials"
    assert wrong.get_data() == unknown.get_data()


def test_logout_ends_the_session(make_user):
    user = make_user()
    ok(user.get("/connections"))
    assert ok(user.post("/logout")) == {"ok": True}
    after = user.get("/connections")
    assert after.status_code == 401 and after.get_json()["error"] == "login_required"


def test_a_copied_session_cookie_stops_working_after_logout(app, make_user):
    user = make_user()
    copied = user.client.get_cookie("session").value
    ok(user.post("/logout"))
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/connections", headers=JSON).status_code == 401


def test_a_get_of_logout_signs_nobody_out(make_user):
    """A link or an image on another site pointing at /logout must not end sessions."""
    user = make_user()
    page = user.client.get("/logout")
    assert page.status_code == 200 and b'action="/logout"' in page.data and b"Log out everywhere" in page.data
    refused = user.get("/logout")
    assert refused.status_code == 405 and refused.get_json()["error"] == "method_not_allowed"
    assert refused.headers["Allow"] == "POST"
    ok(user.get("/connections"))


def test_logout_form_redirects_home(make_user):
    user = make_user()
    response = form_post(user, "/logout")
    assert response.status_code == 302 and urlsplit(response.location).path == "/"


# ---- deleting an account ---------------------------------------------------------


def test_delete_account_removes_everything_and_ends_the_session(app, runtime, make_user, connect):
    victim, friend, _ = build_world(make_user, connect)
    before, victim_blobs, friend_blobs = (
        rows_of(app, friend.id),
        blob_names(app, victim.id),
        blob_names(app, friend.id),
    )
    assert ok(victim.post("/delete_account")) == {"deleted": True}
    assert_victim_gone_friend_intact(app, runtime, victim, friend, before, victim_blobs, friend_blobs)
    assert victim.get("/files").status_code == 401
    assert Session(app).login(victim.username).status_code == 401


# ---- the destruction password ---------------------------------------------------


def test_destruction_password_answers_like_a_wrong_password(app, make_user):
    victim = make_user()
    session = Session(app)
    wrong = session.login(victim.username, WRONG)
    doomed = session.login(victim.username, DPASS)
    assert (doomed.status_code, doomed.get_data()) == (wrong.status_code, wrong.get_data())
    assert sorted(doomed.headers.keys()) == sorted(wrong.headers.keys())
    assert user_row(app, victim.username) is None


def test_destruction_password_in_the_login_form_shows_the_same_page(app, make_user):
    victim = make_user()
    session = Session(app)
    wrong = form_post(session, "/login", username=victim.username, password=WRONG)
    doomed = form_post(session, "/login", username=victim.username, password=DPASS)
    assert doomed.status_code == wrong.status_code == 401
    page = without_csrf_tokens(doomed.get_data(as_text=True))
    assert page == without_csrf_tokens(wrong.get_data(as_text=True))
    assert "Wrong username or password" in page
    assert user_row(app, victim.username) is None


def test_destruction_password_deletes_everything_the_account_owns(app, runtime, make_user, connect):
    victim, friend, stranger = build_world(make_user, connect)
    before, victim_blobs, friend_blobs = (
        rows_of(app, friend.id),
        blob_names(app, victim.id),
        blob_names(app, friend.id),
    )
    assert Session(app).login(victim.username, DPASS).status_code == 401
    assert_victim_gone_friend_intact(app, runtime, victim, friend, before, victim_blobs, friend_blobs)
    assert rows_of(app, stranger.id)["grants"] == 1  # friend's file is still shared with stranger
    history = ok(friend.get(f"/chat/{stranger.id}"))
    assert [m["message"] for m in history["messages"]] == ["not about victim"]


def test_destruction_password_ends_sessions_open_elsewhere(app, make_user):
    victim = make_user()
    Session(app).login(victim.username, DPASS)
    response = victim.get("/files")
    assert response.status_code == 401 and response.get_json()["error"] == "login_required"


def test_destroyed_username_can_no_longer_log_in(app, make_user):
    victim = make_user()
    Session(app).login(victim.username, DPASS)
    assert Session(app).login(victim.username, PASSWORD).get_json()["error"] == "invalid_credentials"


# ---- inactivity -----------------------------------------------------------------


def test_login_after_31_idle_days_fails_and_deletes_the_account(app, clock):
    ok(Session(app).register("sleeper"), 201)
    clock.advance(days=31)
    response = Session(app).login("sleeper")
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_credentials"
    assert user_row(app, "sleeper") is None


def test_login_after_29_idle_days_still_works(app, clock):
    ok(Session(app).register("napper"), 201)
    clock.advance(days=29)
    ok(Session(app).login("napper"))
    clock.advance(days=29)  # the login itself counts as activity
    ok(Session(app).login("napper"))


def test_a_daily_active_user_is_never_deleted(app, clock, make_user):
    user = make_user()
    for _ in range(45):
        clock.advance(days=1)
        if user.get("/files").status_code == 401:  # no session outlives 30 days: sign in again
            ok(user.login())
        ok(user.get("/files"))
    ok(user.post("/logout"))
    ok(Session(app).login(user.username))


def test_an_idle_open_session_does_not_revive_an_inactive_account(app, clock, make_user):
    user = make_user()
    clock.advance(days=31)
    response = user.get("/files")
    assert response.status_code == 401 and response.get_json()["error"] == "login_required"
    assert Session(app).login(user.username).status_code == 401
    assert user_row(app, user.username) is None


LOGIN_PATHS = ["unknown", "wrong", "right", "destruction", "inactive", "too_long", "empty"]


@pytest.mark.parametrize("case", LOGIN_PATHS)
def test_every_login_path_verifies_exactly_two_hashes(app, clock, runtime, monkeypatch, case):
    ok(Session(app).register("counted"), 201)
    username, password = {
        "unknown": ("nobody", PASSWORD),
        "wrong": ("counted", WRONG),
        "right": ("counted", PASSWORD),
        "destruction": ("counted", DPASS),
        "inactive": ("counted", PASSWORD),
        "too_long": ("counted", "y" * 5000),
        "empty": ("", ""),
    }[case]
    if case == "inactive":
        clock.advance(days=31)
    calls = []
    real_verify = runtime.passwords.verify
    monkeypatch.setattr(runtime.passwords, "verify", lambda *a: calls.append(a) or real_verify(*a))
    Session(app).post("/login", {"username": username, "password": password})
    assert len(calls) == 2


# ---- logged-out access and the `next` parameter -----------------------------------

PROTECTED_GETS = [
    "/account",
    "/connect",
    "/connections",
    "/chat/poll",
    "/chat/2",
    "/search?q=a",
    "/files",
    "/file/upload",
    "/file/1",
]
PROTECTED_POSTS = [
    "/delete_account",
    "/password",
    "/destruction_password",
    "/connect",
    "/connect/accept/1",
    "/connect/deny/1",
    "/chat/send",
    "/chat/2",
    "/file/1/delete",
    "/file/1/share",
]


@pytest.mark.parametrize("path", PROTECTED_GETS)
def test_logged_out_json_get_is_401_login_required(app, path):
    response = Session(app).get(path)
    assert response.status_code == 401 and response.get_json()["error"] == "login_required"


@pytest.mark.parametrize("path", PROTECTED_POSTS)
def test_logged_out_json_post_is_401_login_required(app, path):
    response = Session(app).post(path, {"username": "x", "receiver_id": 2, "message": "m"})
    assert response.status_code == 401 and response.get_json()["error"] == "login_required"


@pytest.mark.parametrize("path", PROTECTED_GETS)
def test_logged_out_browser_is_sent_to_login_with_next(app, path):
    response = app.test_client().get(path, headers=HTML)
    assert response.status_code == 302
    target = urlsplit(response.location)
    assert target.path == "/login" and parse_qs(target.query)["next"] == [path]


def test_login_form_goes_back_to_the_page_asked_for(app):
    ok(Session(app).register("returner"), 201)
    session = Session(app)
    page = session.client.get("/login?next=/search?q=ab", headers=HTML).get_data(as_text=True)
    assert 'name="next" value="/search?q=ab"' in page
    response = form_post(session, "/login", username="returner", password=PASSWORD, next="/search?q=ab")
    assert response.status_code == 302 and response.location == "/search?q=ab"
    assert session.client.get("/search?q=ab", headers=JSON).status_code == 200


UNSAFE_NEXT = [
    "https://evil.example/",
    "//evil.example",
    "//evil.example/files",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "javascript:alert(1)",
    "https:evil.example",
    "evil.example/files",
    " //evil.example",
]


@pytest.mark.parametrize("target", UNSAFE_NEXT)
def test_login_never_redirects_off_site(app, target):
    ok(Session(app).register("redirected"), 201)
    response = form_post(Session(app), "/login", username="redirected", password=PASSWORD, next=target)
    assert response.status_code == 302
    landed = urlsplit(urljoin("http://localhost/login", response.location))
    assert landed.hostname == "localhost" and landed.path == "/"
