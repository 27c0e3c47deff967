"""Invite-only registration: single-use invites from members and the operator, stored
only as hashes, refused with one answer however they fail, gone with their creator."""

from __future__ import annotations

import os
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from ghostcache import create_app, models
from ghostcache.app import service_context
from ghostcache.cli import main
from ghostcache.database import upgrade
from ghostcache.extensions import db
from ghostcache.services import accounts, invites, maintenance
from ghostcache.services.errors import DomainError
from tests.conftest import DPASS, PASSWORD, BufferedClient, Session, command_env
from tests.databases import on_postgres

HTML_FORM = {"Accept": "text/html"}


@pytest.fixture
def invite_app(settings, clock):
    app = create_app(settings.with_overrides(invite_only=True), clock=clock)
    app.test_client_class = BufferedClient
    upgrade(app)
    return app


def operator_invite(app, days: int = 7) -> str:
    with service_context(app) as ctx:
        return invites.create(ctx, None, days).token


def member(app, name: str) -> Session:
    """A signed-in member, registered with an operator's invite."""
    user = Session(app, name)
    body = {"username": name, "password": PASSWORD, "d_pass": DPASS, "invite": operator_invite(app)}
    assert user.post("/register", body).status_code == 201
    assert user.login(name).status_code == 200
    return user


def token_of(link: str) -> str:
    return re.search(r"invite=([A-Za-z0-9_-]+)$", link).group(1)


def invite_rows(app) -> list[models.Invite]:
    with app.app_context():
        return list(db.session.scalars(select(models.Invite)))


def _register(app, name: str, invite: str | None = None):
    body = {"username": name, "password": PASSWORD, "d_pass": DPASS}
    if invite is not None:
        body["invite"] = invite
    return Session(app).post("/register", body)


# ---- making, listing and revoking --------------------------------------------------------


def test_a_member_makes_an_invite_and_sees_it_listed_without_its_link(invite_app, clock):
    alice = member(invite_app, "alice")
    made = alice.post("/invites", {"days": 3})
    assert made.status_code == 201
    body = made.get_json()
    assert set(body) == {"id", "link", "expires_at"}
    assert body["link"].startswith("http://localhost/register?invite=")
    assert body["expires_at"] == (clock.now() + timedelta(days=3)).isoformat(timespec="seconds")
    listed = alice.get("/invites").get_json()["invites"]
    assert [i["id"] for i in listed] == [body["id"]]
    assert token_of(body["link"]) not in str(listed)


def test_the_default_is_seven_days(invite_app):
    alice = member(invite_app, "alice")
    made = alice.post("/invites").get_json()
    row = invite_rows(invite_app)[-1]
    assert row.id == made["id"] and (row.expires_at - row.created_at).days == 7


@pytest.mark.parametrize("days", [0, 31, -1, "seven", 1.5, True, "", "100"])
def test_days_outside_one_to_thirty_are_refused(invite_app, days):
    alice = member(invite_app, "alice")
    answer = alice.post("/invites", {"days": days})
    if days == "":
        assert answer.status_code == 201  # empty means the default
        return
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_days"


def test_a_member_holds_at_most_ten_open_invites(settings, clock):
    app = create_app(
        settings.with_overrides(invite_only=True, ratelimits={"invite": "100/hour"}), clock=clock
    )
    app.test_client_class = BufferedClient
    upgrade(app)
    alice = member(app, "alice")
    answers = [alice.post("/invites").status_code for _ in range(invites.MAX_OPEN + 1)]
    assert answers == [201] * invites.MAX_OPEN + [409]
    first = alice.get("/invites").get_json()["invites"][-1]
    assert alice.post(f"/invites/{first['id']}/revoke").status_code == 200
    assert alice.post("/invites").status_code == 201


def test_making_invites_is_rate_limited_per_user(invite_app):
    alice = member(invite_app, "alice")
    answers = [alice.post("/invites").status_code for _ in range(11)]
    assert answers[:10] == [201] * 10 and answers[10] == 429


def test_a_revoked_invite_no_longer_registers(invite_app):
    alice = member(invite_app, "alice")
    made = alice.post("/invites").get_json()
    assert alice.post(f"/invites/{made['id']}/revoke").get_json() == {"revoked": True}
    assert alice.get("/invites").get_json() == {"invites": []}
    assert _register(invite_app, "carol", token_of(made["link"])).status_code == 403
    again = alice.post(f"/invites/{made['id']}/revoke")
    assert again.status_code == 404 and again.get_json()["error"] == "not_found"


def test_nobody_revokes_someone_elses_invite(invite_app):
    alice, bob = member(invite_app, "alice"), member(invite_app, "bob")
    made = alice.post("/invites").get_json()
    theirs = bob.post(f"/invites/{made['id']}/revoke")
    assert theirs.status_code == 404
    for missing in (999999, 2**31, 10**40):  # ids beyond any database column too
        answer = bob.post(f"/invites/{missing}/revoke")
        assert (answer.status_code, answer.get_json()) == (theirs.status_code, theirs.get_json())
    assert _register(invite_app, "carol", token_of(made["link"])).status_code == 201


# ---- registering with an invite ----------------------------------------------------------


def test_an_invite_registers_once(invite_app):
    alice = member(invite_app, "alice")
    token = token_of(alice.post("/invites").get_json()["link"])
    assert _register(invite_app, "carol", token).status_code == 201
    reused = _register(invite_app, "dave", token)
    assert reused.status_code == 403 and reused.get_json()["error"] == "invite_required"
    assert alice.get("/invites").get_json() == {"invites": []}


def test_missing_unknown_used_and_expired_invites_get_one_answer(invite_app, clock):
    used, expired = operator_invite(invite_app), operator_invite(invite_app, days=1)
    assert _register(invite_app, "carol", used).status_code == 201
    clock.advance(days=1, seconds=1)
    answers = [
        _register(invite_app, "dave", invite)
        for invite in (None, "", "no-such-invite", used, expired, "x" * 5000)
    ]
    assert {(a.status_code, a.data) for a in answers} == {(answers[0].status_code, answers[0].data)}
    assert answers[0].status_code == 403 and answers[0].get_json()["error"] == "invite_required"


def test_the_invite_is_checked_before_anything_else(invite_app):
    answer = Session(invite_app).post("/register", {"username": "x"})
    assert answer.status_code == 403 and answer.get_json()["error"] == "invite_required"


def test_a_taken_name_leaves_the_invite_unused(invite_app):
    member(invite_app, "alice")
    token = operator_invite(invite_app)
    assert _register(invite_app, "ALICE", token).status_code == 409
    assert _register(invite_app, "carol", token).status_code == 201


def test_a_used_invite_forgets_its_creator(invite_app):
    alice = member(invite_app, "alice")
    token = token_of(alice.post("/invites").get_json()["link"])
    assert _register(invite_app, "carol", token).status_code == 201
    used = [row for row in invite_rows(invite_app) if row.used_at is not None]
    assert used and all(row.creator_id is None for row in used)


def test_two_registrations_racing_with_one_invite_make_one_account(settings, clock):
    shared = settings.with_overrides(invite_only=True)
    first, second = (create_app(shared, clock=clock) for _ in range(2))
    upgrade(first)
    token = operator_invite(first)
    barrier, outcomes = threading.Barrier(2, timeout=30), []

    def register(app, name: str) -> None:
        with service_context(app) as ctx:
            barrier.wait()
            try:
                accounts.register(ctx, name, PASSWORD, DPASS, token)
                outcomes.append("created")
            except DomainError as error:
                outcomes.append(error.code)

    threads = [
        threading.Thread(target=register, args=(app, n)) for app, n in ((first, "ann"), (second, "ben"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["created", "invite_required"]
    with first.app_context():
        assert db.session.scalar(select(func.count()).select_from(models.User)) == 1


def test_open_registration_needs_no_invite_and_uses_none(app):
    token = operator_invite(app)
    assert _register(app, "carol").status_code == 201
    assert _register(app, "dave", "made-up").status_code == 201
    assert _register(app, "erin", token).status_code == 201
    assert [row.used_at for row in invite_rows(app)] == [None]


# ---- without JavaScript ------------------------------------------------------------------


def test_the_whole_invitation_works_with_plain_forms(invite_app):
    alice = member(invite_app, "alice")
    page = alice.client.get("/invites", headers=HTML_FORM)
    assert page.status_code == 200 and b'action="/invites"' in page.data
    made = alice.client.post("/invites", data={"csrf_token": alice.token, "days": "2"}, headers=HTML_FORM)
    assert made.status_code == 201
    link = re.search(rb">(http://localhost/register\?invite=[A-Za-z0-9_-]+)</textarea>", made.data).group(1)
    assert b"revoke" in made.data
    visitor = invite_app.test_client()
    form = visitor.get(link.decode(), headers=HTML_FORM)
    token = token_of(link.decode())
    assert f'name="invite" value="{token}"'.encode() in form.data
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', form.data).group(1).decode()
    fields = {"csrf_token": csrf, "username": "carol", "password": PASSWORD, "d_pass": DPASS}
    short = visitor.post("/register", data=fields | {"invite": token, "d_pass": "short"}, headers=HTML_FORM)
    assert short.status_code == 400 and f'value="{token}"'.encode() in short.data  # kept on a retry
    done = visitor.post("/register", data=fields | {"invite": token}, headers=HTML_FORM)
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")
    refused = visitor.post("/register", data=fields | {"username": "dave"}, headers=HTML_FORM)
    assert refused.status_code == 403 and b"invite" in refused.data


def test_a_pasted_link_works_in_the_invite_field(invite_app):
    token = operator_invite(invite_app)
    page = invite_app.test_client().get("/register", headers=HTML_FORM)
    assert b'id="invite"' in page.data  # no invite in the address: a field to paste it into
    answer = _register(invite_app, "carol", f"http://abc.onion/register?invite={token}")
    assert answer.status_code == 201


def test_the_revoke_button_works_without_javascript(invite_app):
    alice = member(invite_app, "alice")
    made = alice.post("/invites").get_json()
    answer = alice.client.post(
        f"/invites/{made['id']}/revoke", data={"csrf_token": alice.token}, headers=HTML_FORM
    )
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/invites")
    assert alice.get("/invites").get_json() == {"invites": []}


# ---- the operator, deletion, the purge, the data folder ----------------------------------


def test_the_operator_makes_an_invite_from_the_command_line(invite_app, settings, monkeypatch):
    for key in [k for k in os.environ if k.startswith("GHOSTCACHE_")]:
        monkeypatch.delenv(key)
    env = command_env(settings, GHOSTCACHE_INVITE_ONLY="on")
    result = CliRunner().invoke(main, ["invite", "--days", "3"], env=env)
    assert result.exit_code == 0, result.output
    path = result.stdout.strip()
    assert path.startswith("/register?invite=")
    assert _register(invite_app, "carol", token_of(path)).status_code == 201
    assert CliRunner().invoke(main, ["invite", "--days", "31"], env=env).exit_code != 0


def test_deleting_an_account_deletes_its_invites(invite_app):
    alice = member(invite_app, "alice")
    links = [alice.post("/invites").get_json()["link"] for _ in range(3)]
    assert _register(invite_app, "carol", token_of(links[0])).status_code == 201
    assert alice.post("/delete_account").status_code == 200
    assert all(row.creator_id is None for row in invite_rows(invite_app))
    assert len(invite_rows(invite_app)) == 2  # the operator's and carol's, both used
    assert _register(invite_app, "dave", token_of(links[1])).status_code == 403


def test_the_purge_removes_used_and_expired_invites(invite_app, clock):
    used, expired = operator_invite(invite_app), operator_invite(invite_app, days=1)
    kept = operator_invite(invite_app, days=30)
    assert _register(invite_app, "carol", used).status_code == 201
    clock.advance(days=2)
    with service_context(invite_app) as ctx:
        report = maintenance.purge(ctx)
    assert report.spent_invites == 2
    assert len(invite_rows(invite_app)) == 1
    assert expired and _register(invite_app, "dave", kept).status_code == 201


def test_no_token_is_stored_in_the_clear(invite_app, settings):
    if on_postgres():
        pytest.skip("reads the SQLite file")
    alice = member(invite_app, "alice")
    tokens = [token_of(alice.post("/invites").get_json()["link"]), operator_invite(invite_app)]
    stored = b"".join(p.read_bytes() for p in Path(settings.data_dir).glob("ghostcache.db*"))
    assert invites.hash_token(tokens[0]).encode() in stored  # the check can see the table...
    for token in tokens:
        assert token.encode() not in stored  # ...and no token is in it
