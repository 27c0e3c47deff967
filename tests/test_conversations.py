"""Conversations: unread counts and read markers, the list (GET /conversations and the
home page), and what it costs to build."""

from __future__ import annotations

import re
from contextlib import contextmanager

import jsonschema
import pytest
from sqlalchemy import delete, event, select

from ghostcache.extensions import db
from ghostcache.models import Connection, Contact
from ghostcache.openapi import openapi_document
from ghostcache.services import connections as connection_service
from ghostcache.services.context import Context
from ghostcache.services.conversations import PREVIEW_CHARS
from tests.conftest import JSON

CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}


@pytest.fixture
def settings(settings):
    """No rate limits: some tests here register more people than an hour allows."""
    return settings.with_overrides(ratelimit=False)


@pytest.fixture
def pair(connect, make_user):
    """alice and bob, connected."""
    return connect(make_user("alice"), make_user("bob"))


@pytest.fixture
def fast_keys(monkeypatch):
    """Accepting makes two RSA key pairs; tests that connect many people skip the wait."""
    monkeypatch.setattr(connection_service, "generate_rsa_keypair", lambda: (b"private", b"public"))


def send(sender, receiver, text: str = "hello") -> int:
    response = sender.post("/chat/send", {"receiver_id": receiver.id, "message": text})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def listing(session) -> dict:
    response = session.get("/conversations")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def unread_from(session, other) -> int:
    rows = [c for c in listing(session)["conversations"] if c["user"]["id"] == other.id]
    assert len(rows) == 1
    return rows[0]["unread"]


def mark_read(session, other, **body):
    return session.post(f"/chat/{other.id}/read", body)


def marker(app, owner, other) -> int:
    with app.app_context():
        return db.session.scalar(
            select(Contact.last_read_id).where(Contact.owner_id == owner.id, Contact.contact_id == other.id)
        )


# ---- unread counts and read markers -----------------------------------------------


def test_unread_counts_rise_with_each_message_to_me_and_not_with_mine(pair):
    alice, bob = pair
    for i in range(3):
        send(alice, bob, f"m{i}")
    send(bob, alice, "one back")
    assert unread_from(bob, alice) == 3
    assert unread_from(alice, bob) == 1


def test_showing_the_chat_page_marks_the_conversation_read(pair):
    alice, bob = pair
    send(alice, bob)
    send(alice, bob)
    page = bob.client.get(f"/chat/{alice.id}")
    assert page.status_code == 200
    assert unread_from(bob, alice) == 0
    send(alice, bob, "after the visit")
    assert unread_from(bob, alice) == 1


def test_the_json_history_does_not_mark_read_scripts_post_read_instead(pair):
    alice, bob = pair
    send(alice, bob)
    assert bob.get(f"/chat/{alice.id}").status_code == 200
    assert unread_from(bob, alice) == 1


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_page_view_that_another_site_started_marks_nothing_read(app, pair, site):
    alice, bob = pair
    send(alice, bob)
    page = bob.client.get(f"/chat/{alice.id}", headers=CROSS_SITE | {"Sec-Fetch-Site": site})
    assert page.status_code == 200 and b"hello" in page.data
    assert unread_from(bob, alice) == 1
    assert marker(app, bob, alice) == 0


def test_post_read_clears_everything_by_default(pair):
    alice, bob = pair
    for _ in range(3):
        send(alice, bob)
    response = mark_read(bob, alice)
    assert response.status_code == 200
    assert response.get_json() == {"with": {"id": alice.id, "username": "alice"}, "unread": 0}
    assert unread_from(bob, alice) == 0


def test_post_read_up_to_a_message_answers_what_remains(pair):
    alice, bob = pair
    ids = [send(alice, bob, f"m{i}") for i in range(4)]
    assert mark_read(bob, alice, upto=ids[1]).get_json()["unread"] == 2
    assert unread_from(bob, alice) == 2
    assert mark_read(bob, alice, upto=str(ids[2])).get_json()["unread"] == 1  # form values are text


def test_the_marker_never_moves_backwards(app, pair):
    alice, bob = pair
    ids = [send(alice, bob, f"m{i}") for i in range(3)]
    mark_read(bob, alice)
    assert mark_read(bob, alice, upto=ids[0]).get_json()["unread"] == 0
    assert marker(app, bob, alice) == ids[-1]
    bob.client.get(f"/chat/{alice.id}?before={ids[1]}")  # an older page of history
    assert marker(app, bob, alice) == ids[-1]


def test_a_marker_past_the_newest_message_leaves_later_ones_unread(app, pair):
    alice, bob = pair
    first = send(alice, bob)
    assert mark_read(bob, alice, upto=first + 1000).get_json()["unread"] == 0
    assert marker(app, bob, alice) == first
    send(alice, bob, "later")
    assert unread_from(bob, alice) == 1


def test_reading_my_side_leaves_the_other_side_unread(pair):
    alice, bob = pair
    send(alice, bob)
    send(bob, alice)
    mark_read(bob, alice)
    assert unread_from(alice, bob) == 1


@pytest.mark.parametrize("upto", ["abc", "-1", "0", 1.5, True])
def test_a_malformed_upto_is_invalid_parameter(pair, upto):
    alice, bob = pair
    response = mark_read(bob, alice, upto=upto)
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_parameter")


def test_reading_with_anyone_but_a_contact_is_not_connected(pair, make_user):
    alice, bob = pair
    stranger = make_user()
    for other_id in (stranger.id, bob.id, 2**63, 10**30):
        response = bob.post(f"/chat/{other_id}/read")
        assert (response.status_code, response.get_json()["error"]) == (403, "not_connected"), other_id


def test_post_read_needs_its_csrf_token(pair):
    alice, bob = pair
    send(alice, bob)
    refused = bob.client.post(f"/chat/{alice.id}/read", headers=JSON)
    assert (refused.status_code, refused.get_json()["error"]) == (400, "csrf_failed")
    assert unread_from(bob, alice) == 1


def test_post_read_from_a_browser_goes_back_to_the_chat(pair):
    alice, bob = pair
    response = bob.client.post(f"/chat/{alice.id}/read", data={"csrf_token": bob.token})
    assert response.status_code == 302 and response.location.endswith(f"/chat/{alice.id}")


# ---- the list ---------------------------------------------------------------------


def test_most_recent_conversation_first_and_contacts_without_messages_last(connect, make_user, clock):
    me = make_user()
    carol, dave, erin, fred = (connect(me, make_user())[1] for _ in range(4))
    clock.advance(seconds=5)
    _, gina = connect(me, make_user())  # the newest contact, still without messages
    send(carol, me)
    send(me, dave)
    send(dave, me)
    send(erin, me)
    order = [c["user"]["id"] for c in listing(me)["conversations"]]
    assert order == [erin.id, dave.id, carol.id, gina.id, fred.id]


def test_each_row_has_its_last_message_and_its_time(pair, clock):
    alice, bob = pair
    send(alice, bob, "first")
    clock.advance(minutes=3)
    last = send(bob, alice, "  a reply\nover two lines  ")
    (row,) = listing(alice)["conversations"]
    assert row["user"] == {"id": bob.id, "username": "bob"}
    expected = {"id": last, "sender_id": bob.id, "e2ee": False, "preview": "a reply over two lines"}
    assert row["last_message"] == expected
    assert row["last_message_at"] == clock.now().isoformat(timespec="seconds")


def test_a_contact_without_messages_has_no_last_message(pair):
    alice, _ = pair
    (row,) = listing(alice)["conversations"]
    assert row["unread"] == 0 and row["last_message"] is None and row["last_message_at"] is None


def test_a_long_last_message_is_cut_to_a_preview(pair):
    alice, bob = pair
    send(alice, bob, "x" * 5000)
    preview = listing(bob)["conversations"][0]["last_message"]["preview"]
    assert len(preview) == PREVIEW_CHARS and preview.endswith("…")


def test_previews_can_be_left_out(pair):
    alice, bob = pair
    message_id = send(alice, bob)
    (row,) = bob.get("/conversations?preview=0").get_json()["conversations"]
    assert row["last_message"] == {"id": message_id, "sender_id": alice.id, "e2ee": False}
    assert row["unread"] == 1 and row["last_message_at"] is not None


def test_requests_for_me_come_first_newest_first_and_not_those_i_sent(make_user, clock):
    me, carol, dave, erin = (make_user() for _ in range(4))
    first = carol.post("/connect", {"username": me.username}).get_json()
    clock.advance(seconds=1)
    second = dave.post("/connect", {"username": me.username}).get_json()
    me.post("/connect", {"username": erin.username})
    found = listing(me)
    assert [r["id"] for r in found["requests"]] == [second["id"], first["id"]]
    assert found["requests"][0]["user"] == {"id": dave.id, "username": dave.username}
    assert found["requests"][0]["status"] == "pending"
    assert found["conversations"] == []
    assert listing(erin)["requests"][0]["user"]["id"] == me.id


def test_a_removed_or_blocked_contact_and_a_deleted_account_vanish_from_the_list(
    app, runtime, connect, make_user
):
    me = make_user()
    bob, carol = connect(me, make_user())[1], connect(me, make_user())[1]
    send(bob, me)
    send(carol, me)
    with app.app_context(), Context(db=db.session, rt=runtime).write() as session:
        # What removing or blocking a contact does: the connection goes, its rows with it.
        low, high = sorted((me.id, bob.id))
        session.execute(delete(Connection).where(Connection.pair_low == low, Connection.pair_high == high))
    assert [c["user"]["id"] for c in listing(me)["conversations"]] == [carol.id]
    assert carol.post("/delete_account").status_code == 200
    assert listing(me)["conversations"] == []


def test_the_list_runs_as_many_queries_for_twenty_contacts_as_for_one(app, connect, make_user, fast_keys):
    def queries_for(contacts: int) -> int:
        me = make_user()
        for _ in range(contacts):
            other = connect(me, make_user())[1]
            send(other, me)
            send(me, other)
        with counting_statements(app) as statements:
            found = listing(me)
        assert len(found["conversations"]) == contacts
        assert all(
            c["unread"] == 1 and c["last_message"]["sender_id"] == me.id for c in found["conversations"]
        )
        return len(statements)

    assert queries_for(1) == queries_for(20)


@contextmanager
def counting_statements(app):
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


# ---- the home page ----------------------------------------------------------------


def test_the_home_page_lists_conversations_with_badge_link_and_time(pair):
    alice, bob = pair
    send(alice, bob, "one")
    send(alice, bob, "two <b>bold</b>")
    html = bob.client.get("/").get_data(as_text=True)
    row = re.search(rf'<li class="item conversation" data-user-id="{alice.id}".*?</li>', html, re.S).group(0)
    assert f'href="/chat/{alice.id}"' in row and ">alice<" in row
    assert '<span class="unread-number">2</span><span class="visually-hidden"> unread</span>' in row
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00">', row)
    assert "two &lt;b&gt;bold&lt;/b&gt;" in row
    assert "<script>" not in html and "style=" not in html


def test_the_home_page_shows_no_badge_when_all_is_read(pair):
    alice, bob = pair
    send(alice, bob)
    bob.client.get(f"/chat/{alice.id}")
    html = bob.client.get("/").get_data(as_text=True)
    assert '<span class="badge unread-count" hidden>' in html


def test_the_home_page_puts_requests_on_top_with_their_forms(make_user):
    me, carol = make_user(), make_user()
    conn = carol.post("/connect", {"username": me.username}).get_json()
    html = me.client.get("/").get_data(as_text=True)
    assert html.index("Contact requests for you") < html.index("Chats")
    assert f'action="/connect/accept/{conn["id"]}"' in html
    assert f'action="/connect/deny/{conn["id"]}"' in html


def test_the_home_page_links_to_account_settings_and_no_longer_holds_them(make_user):
    html = make_user().client.get("/").get_data(as_text=True)
    assert re.search(r'<a href="/account">Account settings</a>', html)
    assert 'name="new_password"' not in html and "/delete_account" not in html


def test_signed_out_the_home_page_is_as_it_was(app):
    html = app.test_client().get("/").get_data(as_text=True)
    assert "Private chat and files that disappear" in html and "Conversations" not in html


def test_conversations_in_a_browser_is_the_home_page(pair):
    _, bob = pair
    page = bob.client.get("/conversations")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert 'id="conversations"' in page.get_data(as_text=True)


# ---- the contract ----------------------------------------------------------------


def test_the_answers_match_the_openapi_document(pair, make_user):
    alice, bob = pair
    carol = make_user()
    carol.post("/connect", {"username": bob.username})
    first = send(alice, bob)
    send(bob, alice, "back")
    dave = make_user()
    answers = [
        ("get", "/conversations", bob.get("/conversations")),
        ("get", "/conversations", carol.get("/conversations")),
        ("get", "/conversations", bob.get("/conversations?preview=0")),
        ("post", "/chat/{other_id}/read", mark_read(bob, alice, upto=first)),
        ("post", "/chat/{other_id}/read", mark_read(bob, alice)),
        ("post", "/chat/{other_id}/read", mark_read(bob, alice, upto="x")),
        ("post", "/chat/{other_id}/read", mark_read(bob, dave)),
    ]
    doc = openapi_document()
    for method, path, response in answers:
        documented = doc["paths"][path][method]["responses"][str(response.status_code)]
        schema = documented["content"]["application/json"]["schema"]
        validator = jsonschema.Draft202012Validator({**schema, "components": doc["components"]})
        validator.validate(response.get_json())
    assert {r.status_code for _, _, r in answers} == {200, 400, 403}


# ---- the migration ----------------------------------------------------------------


def test_upgrading_counts_only_undelivered_messages_as_unread(app, pair):
    from flask_migrate import downgrade, upgrade

    from ghostcache.database import MIGRATIONS, WRITING

    alice, bob = pair
    send(alice, bob, "fetched")
    bob.post("/chat/poll")
    waiting = send(alice, bob, "waiting")
    mine = send(bob, alice, "bob's own")
    token = WRITING.set(True)
    try:
        with app.app_context():
            downgrade(directory=MIGRATIONS, revision="0002")
            upgrade(directory=MIGRATIONS)
    finally:
        WRITING.reset(token)
    # Writing counts as having read what came before; bob's message waits for alice.
    assert (marker(app, bob, alice), marker(app, alice, bob)) == (mine, waiting)
    assert (unread_from(bob, alice), unread_from(alice, bob)) == (0, 1)
