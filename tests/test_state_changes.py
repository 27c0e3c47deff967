"""No GET that another site can make changes anything: state changes take a POST
with its CSRF token, or proof that a cross-site request cannot give."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from ghostcache import models
from ghostcache.extensions import db
from tests.conftest import JSON

CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


def state(app) -> dict:
    """Everything a request could change, except last_login (a signed-in request
    counts as activity, by design: see docs/API.md)."""
    m = models
    with app.app_context():
        rows = {}
        tables = (m.Connection, m.Contact, m.Message, m.File, m.FileAccess, m.Blacklist, m.RetiredName)
        for model in (*tables, m.Identity, m.E2EEBackup, m.KeyEvent):
            rows[model.__name__] = sorted(
                repr(sorted(r._mapping.items())) for r in db.session.execute(select(model.__table__))
            )
        users = select(m.User.id, m.User.username, m.User.password_hash, m.User.session_version)
        rows["User"] = sorted(repr(tuple(r)) for r in db.session.execute(users))
    return rows


@pytest.fixture
def world(connect, make_user):
    """alice and bob connected; three messages to bob not yet delivered; a file shared."""
    alice, bob = connect(make_user("alice"), make_user("bob"))
    for text in ("one", "two", "three"):
        assert alice.post("/chat/send", {"receiver_id": bob.id, "message": text}).status_code == 201
    file = alice.upload().get_json()
    assert alice.post(f"/file/{file['id']}/share", {"username": "bob"}).status_code == 201
    return alice, bob, file["id"]


def test_no_get_route_changes_anything_when_another_site_asks(app, world):
    """Every GET route, followed as a link from another site (the browser sends the
    session cookie on a top-level navigation), leaves the database as it was."""
    alice, bob, file_id = world
    values = {"other_id": alice.id, "user_id": alice.id, "file_id": file_id, "filename": "app.css"}
    values["conn_id"] = 1
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and rule.endpoint != "static":
            paths.append(re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), rule.rule))
    assert {"/chat/poll", "/chat/stream", "/logout", f"/chat/{alice.id}"} <= set(paths)
    before = state(app)
    for path in sorted(paths):
        for headers in (CROSS_SITE, CROSS_SITE | JSON):
            response = bob.client.get(path, headers=headers)
            response.close()
            assert response.status_code < 500, path
            assert state(app) == before, f"GET {path} changed state"
    assert bob.get("/connections").status_code == 200  # still signed in


def test_get_poll_needs_the_token_in_a_header(app, world):
    _, bob, _ = world
    for headers in ({}, {"X-CSRFToken": "forged"}):
        refused = bob.client.get("/chat/poll", headers=JSON | headers)
        assert refused.status_code == 400 and refused.get_json()["error"] == "csrf_failed"
    refused = bob.client.head("/chat/poll", headers=JSON)
    assert refused.status_code == 400
    assert [m["message"] for m in bob.get("/chat/poll").get_json()] == ["one", "two", "three"]
    assert bob.get("/chat/poll").get_json() == []


def test_post_poll_claims_with_its_token_and_not_without(world):
    _, bob, _ = world
    forged = bob.client.post("/chat/poll", headers=JSON)
    assert forged.status_code == 400 and forged.get_json()["error"] == "csrf_failed"
    assert [m["message"] for m in bob.post("/chat/poll").get_json()] == ["one", "two", "three"]
    assert bob.post("/chat/poll").get_json() == []


def test_a_history_page_opened_from_another_site_shows_but_does_not_claim(world):
    alice, bob, _ = world
    page = bob.client.get(f"/chat/{alice.id}", headers=CROSS_SITE)
    assert page.status_code == 200 and b"three" in page.data
    assert [m["message"] for m in bob.post("/chat/poll").get_json()] == ["one", "two", "three"]


def test_a_history_page_from_our_own_pages_claims(world):
    alice, bob, _ = world
    shown = bob.client.get(f"/chat/{alice.id}", headers=JSON | SAME_ORIGIN).get_json()["messages"]
    assert [m["delivered"] for m in shown] == [True, True, True]
    assert bob.post("/chat/poll").get_json() == []


def test_the_event_stream_refuses_another_site(world):
    _, bob, _ = world
    refused = bob.client.get("/chat/stream", headers=JSON | CROSS_SITE)
    assert refused.status_code == 403 and refused.get_json()["error"] == "cross_site"
    assert len(bob.post("/chat/poll").get_json()) == 3
