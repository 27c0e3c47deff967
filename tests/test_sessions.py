"""Sessions: one login, one fresh session; logout, a password change, account deletion
and the destruction password end every session of the user at once (a change of the
destruction password ends none); sessions expire."""

from __future__ import annotations

import pytest

from tests.conftest import DPASS, JSON, PASSWORD, Session
from tests.databases import on_postgres


def _second_device(app, user: Session) -> Session:
    other = Session(app, user.username)
    assert other.login().status_code == 200
    return other


def _signed_in(user: Session) -> bool:
    return user.get("/files").status_code == 200


def test_login_starts_a_new_session_cookie(app, make_user):
    user = make_user()
    before = user.client.get_cookie("session").value
    user.login()
    assert user.client.get_cookie("session").value != before


def test_a_session_cookie_planted_before_login_is_not_kept(app, make_user):
    victim = Session(app)
    planted = victim.client.get_cookie("session").value  # what an attacker could have set
    victim.register("victim")
    victim.login("victim")
    assert victim.client.get_cookie("session").value != planted


def test_logout_ends_every_session_of_the_user(app, make_user):
    user = make_user()
    phone = _second_device(app, user)
    user.post("/logout")
    assert not _signed_in(user) and not _signed_in(phone)


def test_logout_does_not_touch_other_users(app, make_user):
    alice, bob = make_user(), make_user()
    alice.post("/logout")
    assert _signed_in(bob)


def test_password_change_keeps_this_device_and_ends_the_others(app, make_user):
    user = make_user()
    phone = _second_device(app, user)
    answer = user.post("/password", {"password": PASSWORD, "new_password": "a brand new one"})
    assert answer.status_code == 200 and answer.get_json()["ok"] is True
    user.token = answer.get_json()["csrf_token"]
    assert _signed_in(user) and not _signed_in(phone)
    assert Session(app).login(user.username, "a brand new one").status_code == 200
    assert Session(app).login(user.username, PASSWORD).status_code == 401


def test_a_destruction_password_change_keeps_every_session(app, make_user):
    """No session was started with the destruction password: changing it signs nobody out."""
    user = make_user()
    phone = _second_device(app, user)
    answer = user.post("/destruction_password", {"password": PASSWORD, "new_d_pass": "a new way out"})
    assert answer.status_code == 200 and answer.get_json() == {"ok": True}
    assert _signed_in(user) and _signed_in(phone)
    assert user.post("/connect", {"username": "nobody"}).status_code == 404  # the same CSRF token still works


@pytest.mark.parametrize(
    ("current", "new", "status", "code"),
    [
        ("wrong password", "a brand new one", 401, "invalid_credentials"),
        (PASSWORD, "short", 400, "weak_password"),
        (PASSWORD, "", 400, "missing_field"),
    ],
)
def test_password_change_is_refused_with_a_reason(make_user, current, new, status, code):
    user = make_user()
    answer = user.post("/password", {"password": current, "new_password": new})
    assert (answer.status_code, answer.get_json()["error"]) == (status, code)
    assert _signed_in(user)


def test_a_password_change_cannot_confirm_a_guess_of_the_destruction_password(app, make_user):
    """Someone holding the login password learns nothing by trying the destruction
    password as the new one: the answer is a plain success, as for any other."""
    right_guess, wrong_guess = make_user(), make_user()
    answers = [
        user.post("/password", {"password": PASSWORD, "new_password": guess})
        for user, guess in ((right_guess, DPASS), (wrong_guess, "not the destruction one"))
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].get_json().keys() == answers[1].get_json().keys() == {"ok", "csrf_token"}
    # The destruction password keeps its meaning: a login with it still destroys.
    assert Session(app).login(right_guess.username, DPASS).status_code == 401
    assert Session(app).register(right_guess.username).status_code == 409  # reserved, not free
    assert Session(app).login(wrong_guess.username, "not the destruction one").status_code == 200


def test_deleting_the_account_ends_sessions_on_every_device(app, make_user):
    user = make_user()
    phone = _second_device(app, user)
    user.post("/delete_account")
    assert not _signed_in(phone)


def test_the_destruction_password_ends_open_sessions_at_once(app, make_user):
    user = make_user()
    assert Session(app).login(user.username, DPASS).status_code == 401
    assert not _signed_in(user)


def test_an_idle_session_expires(app, clock, make_user):
    user = make_user()
    clock.advance(hours=167)
    assert _signed_in(user)  # a request resets the idle timer
    clock.advance(hours=167)
    assert _signed_in(user)
    clock.advance(hours=169)
    response = user.get("/files")
    assert response.status_code == 401 and response.get_json()["error"] == "login_required"


def test_no_session_outlives_the_absolute_lifetime(app, clock, make_user):
    user = make_user()
    for _ in range(29):
        clock.advance(days=1)
        assert _signed_in(user)
    clock.advance(days=1, minutes=1)
    assert not _signed_in(user)


def test_lifetimes_are_settings(settings, clock):
    from ghostcache import create_app
    from ghostcache.database import upgrade

    app = create_app(settings.with_overrides(session_idle_hours=1), clock=clock)
    upgrade(app)
    user = Session(app)
    user.register("shortlived")
    user.login("shortlived")
    clock.advance(minutes=61)
    assert user.client.get("/files", headers=JSON).status_code == 401


def test_a_cookie_of_a_deleted_account_never_fits_a_new_account(app, make_user):
    """SQLite may hand a deleted account's id to the next registration."""
    make_user()
    doomed = make_user()
    leftover = _second_device(app, doomed)
    doomed.post("/delete_account")
    newcomer = make_user()
    # the id really was reused here (PostgreSQL's sequences never hand one out twice)
    assert (newcomer.id == doomed.id) == (not on_postgres())
    assert not _signed_in(leftover)


def test_an_open_chat_stream_ends_when_the_user_logs_out_elsewhere(app, runtime, make_user):
    from tests.test_live_stream import open_stream

    user = make_user()
    stream = open_stream(app, runtime, user)
    assert next(stream).kind == "ping"  # 15 quiet seconds later it is still open
    user.post("/logout")
    with pytest.raises(StopIteration):  # the logout's event woke it, and it ended
        next(stream)
