"""Managing contacts: withdrawing a request, removing a contact (the conversation goes
for both), blocking anyone, the list of people I block, and unblocking."""

from __future__ import annotations

import re

import jsonschema
import pytest
from sqlalchemy import func, select

from ghostcache.extensions import db
from ghostcache.models import Blacklist, Connection, Contact, FileAccess, Message
from ghostcache.openapi import openapi_document
from ghostcache.services.context import Context

HUGE_IDS = [9999, 2**31, 2**63, 2**70]


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]


def ask(a, b) -> dict:
    """a sends b a contact request; returns the pending connection."""
    response = a.post("/connect", {"username": b.username})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def say(a, b, text: str) -> int:
    response = a.post("/chat/send", {"receiver_id": b.id, "message": text})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def share_with(owner, other, content: bytes = b"a secret") -> int:
    file_id = owner.upload(content).get_json()["id"]
    assert owner.post(f"/file/{file_id}/share", {"username": other.username}).status_code == 201
    return file_id


def rows(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def pair_rows(app, a, b) -> dict[str, int]:
    """How many rows of each kind tie a and b together."""
    ids = (a.id, b.id)
    return {
        "connection": rows(app, Connection, Connection.sender_id.in_(ids), Connection.receiver_id.in_(ids)),
        "contact": rows(app, Contact, Contact.owner_id.in_(ids), Contact.contact_id.in_(ids)),
        "message": rows(app, Message, Message.sender_id.in_(ids), Message.receiver_id.in_(ids)),
        "file_access": rows(app, FileAccess, FileAccess.user_id.in_(ids)),
    }


NOTHING = {"connection": 0, "contact": 0, "message": 0, "file_access": 0}


def usernames(users: list[dict]) -> list[str]:
    return [u["username"] for u in users]


def listed(session) -> dict[str, list[str]]:
    lists = session.get("/connections").get_json()
    return {name: usernames([c["user"] for c in conns]) for name, conns in lists.items()}


def block(a, b):
    return a.post("/block", {"username": b.username})


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def carol(make_user):
    return make_user("carol")


@pytest.fixture
def friends(connect, alice, bob):
    """alice and bob, connected, with a conversation and a file shared each way."""
    connect(alice, bob)
    say(alice, bob, "hello bob")
    say(bob, alice, "hello alice")
    files = {"alice": share_with(alice, bob, b"alice's"), "bob": share_with(bob, alice, b"bob's")}
    return alice, bob, files


@pytest.fixture
def calls(monkeypatch, runtime):
    """Records streams woken (broker.publish) and erasures (Context.erase_deleted)."""
    seen: dict[str, list] = {"published": [], "erased": []}
    monkeypatch.setattr(runtime.broker, "publish", seen["published"].append)
    original = Context.erase_deleted

    def erase(ctx):
        seen["erased"].append(True)
        original(ctx)

    monkeypatch.setattr(Context, "erase_deleted", erase)
    return seen


# ---- withdraw ------------------------------------------------------------------


def test_sender_withdraws_a_pending_request_and_the_receiver_no_longer_sees_it(app, alice, bob):
    conn = ask(alice, bob)
    response = alice.post(f"/connect/withdraw/{conn['id']}")
    assert (response.status_code, response.get_json()) == (200, {"withdrawn": True})
    assert listed(bob)["received"] == [] and listed(alice)["sent"] == []
    assert rows(app, Connection) == 0


def test_after_withdrawing_either_side_can_ask_again(alice, bob):
    conn = ask(alice, bob)
    alice.post(f"/connect/withdraw/{conn['id']}")
    again = ask(bob, alice)
    assert alice.post(f"/connect/accept/{again['id']}").status_code == 200


@pytest.mark.parametrize("who", ["receiver", "stranger"])
def test_only_the_sender_can_withdraw_others_get_not_found(alice, bob, make_user, who):
    conn = ask(alice, bob)
    actor = bob if who == "receiver" else make_user("mallory")
    assert error_of(actor.post(f"/connect/withdraw/{conn['id']}")) == (404, "not_found")
    assert listed(bob)["received"] == ["alice"]


@pytest.mark.parametrize("conn_id", HUGE_IDS)
def test_withdrawing_an_unknown_request_is_not_found(alice, conn_id):
    assert error_of(alice.post(f"/connect/withdraw/{conn_id}")) == (404, "not_found")


@pytest.mark.parametrize("answer", ["accept", "deny"])
def test_withdrawing_an_answered_request_is_not_pending(app, alice, bob, answer):
    conn = ask(alice, bob)
    assert bob.post(f"/connect/{answer}/{conn['id']}").status_code == 200
    assert error_of(alice.post(f"/connect/withdraw/{conn['id']}")) == (409, "not_pending")
    assert rows(app, Connection) == 1


def test_accepting_a_withdrawn_request_is_not_found(alice, bob):
    conn = ask(alice, bob)
    alice.post(f"/connect/withdraw/{conn['id']}")
    assert error_of(bob.post(f"/connect/accept/{conn['id']}")) == (404, "not_found")


# ---- remove ----------------------------------------------------------------------


def test_remove_answers_removed_with_the_user(friends):
    alice, bob, _ = friends
    response = alice.post(f"/contacts/{bob.id}/remove")
    assert response.status_code == 200
    assert response.get_json() == {"removed": True, "user": {"id": bob.id, "username": "bob"}}


def test_remove_deletes_the_conversation_for_both(friends):
    alice, bob, _ = friends
    say(alice, bob, "not yet read")
    assert alice.post(f"/contacts/{bob.id}/remove").status_code == 200
    for me, other in ((alice, bob), (bob, alice)):
        assert error_of(me.get(f"/chat/{other.id}")) == (403, "not_connected")
        assert me.get("/chat/poll").get_json() == []
        assert listed(me) == {"sent": [], "received": [], "accepted": []}
    assert error_of(bob.post("/chat/send", {"receiver_id": alice.id, "message": "hi"})) == (
        403,
        "not_connected",
    )


def test_remove_deletes_every_row_between_the_two(app, friends):
    alice, bob, _ = friends
    assert pair_rows(app, alice, bob) == {"connection": 1, "contact": 2, "message": 2, "file_access": 2}
    bob.post(f"/contacts/{alice.id}/remove")
    assert pair_rows(app, alice, bob) == NOTHING


def test_remove_takes_back_shares_both_ways_but_keeps_the_files(friends):
    alice, bob, files = friends
    alice.post(f"/contacts/{bob.id}/remove")
    assert error_of(bob.get(f"/file/{files['alice']}")) == (404, "not_found")
    assert error_of(alice.get(f"/file/{files['bob']}")) == (404, "not_found")
    assert alice.get("/files").get_json()["shared"] == []
    assert [f["shared_with"] for f in alice.get("/files").get_json()["owned"]] == [[]]
    assert bob.get(f"/file/{files['bob']}").status_code == 200


def test_remove_leaves_other_contacts_alone(app, connect, friends, carol):
    alice, bob, _ = friends
    connect(alice, carol)
    say(carol, alice, "still here")
    carol_file = share_with(alice, carol)
    alice.post(f"/contacts/{bob.id}/remove")
    assert listed(alice)["accepted"] == ["carol"]
    assert [m["message"] for m in alice.get(f"/chat/{carol.id}").get_json()["messages"]] == ["still here"]
    assert carol.get(f"/file/{carol_file}").status_code == 200


@pytest.mark.parametrize("asker", ["remover", "removed"])
def test_after_removal_either_can_send_a_new_request(friends, asker):
    alice, bob, _ = friends
    alice.post(f"/contacts/{bob.id}/remove")
    a, b = (alice, bob) if asker == "remover" else (bob, alice)
    conn = ask(a, b)
    assert b.post(f"/connect/accept/{conn['id']}").status_code == 200
    assert a.get(f"/chat/{b.id}").get_json()["messages"] == []  # the old conversation is gone


def test_remove_wakes_both_streams_and_erases_what_it_deleted(friends, calls):
    alice, bob, _ = friends
    alice.post(f"/contacts/{bob.id}/remove")
    assert set(calls["published"]) >= {alice.id, bob.id}
    assert calls["erased"]


@pytest.mark.parametrize("whom", ["pending", "stranger", "myself", *HUGE_IDS])
def test_removing_anyone_but_an_accepted_contact_is_not_connected(app, alice, bob, whom):
    conn = ask(alice, bob)
    target = {"pending": bob.id, "stranger": bob.id + 100, "myself": alice.id}.get(whom, whom)
    assert error_of(alice.post(f"/contacts/{target}/remove")) == (403, "not_connected")
    assert rows(app, Connection, Connection.id == conn["id"]) == 1


def test_removing_twice_is_not_connected(friends):
    alice, bob, _ = friends
    alice.post(f"/contacts/{bob.id}/remove")
    assert error_of(bob.post(f"/contacts/{alice.id}/remove")) == (403, "not_connected")


def test_a_stranger_cannot_remove_someone_elses_contact(app, friends, make_user):
    alice, bob, _ = friends
    mallory = make_user("mallory")
    assert error_of(mallory.post(f"/contacts/{bob.id}/remove")) == (403, "not_connected")
    assert pair_rows(app, alice, bob)["message"] == 2


# ---- block -------------------------------------------------------------------------


def test_block_answers_the_blocked_user_and_records_who_blocks_whom(app, alice, bob):
    response = block(alice, bob)
    assert response.status_code == 200
    assert response.get_json() == {"blocked": {"id": bob.id, "username": "bob"}}
    with app.app_context():
        pairs = [(b.blocker_id, b.blocked_id) for b in db.session.scalars(select(Blacklist))]
    assert pairs == [(alice.id, bob.id)]


def test_block_finds_the_user_whatever_the_case(alice, bob):
    assert alice.post("/block", {"username": "BOB"}).get_json()["blocked"]["id"] == bob.id


def test_blocking_a_contact_removes_everything_between_the_two(app, friends, calls):
    alice, bob, files = friends
    assert block(alice, bob).status_code == 200
    assert pair_rows(app, alice, bob) == NOTHING
    assert error_of(bob.get(f"/chat/{alice.id}")) == (403, "not_connected")
    assert bob.get("/chat/poll").get_json() == []
    assert error_of(bob.get(f"/file/{files['alice']}")) == (404, "not_found")
    assert error_of(alice.get(f"/file/{files['bob']}")) == (404, "not_found")
    assert set(calls["published"]) >= {alice.id, bob.id} and calls["erased"]


@pytest.mark.parametrize("blocker", ["alice", "bob"])
def test_after_a_block_connect_share_and_search_are_refused_both_ways(friends, blocker):
    alice, bob, _ = friends
    people = {"alice": (alice, bob), "bob": (bob, alice)}
    block(*people[blocker])
    for me, other in ((alice, bob), (bob, alice)):
        assert error_of(me.post("/connect", {"username": other.username})) == (403, "blocked")
        file_id = me.upload().get_json()["id"]
        shared = me.post(f"/file/{file_id}/share", {"username": other.username})
        assert error_of(shared) == (403, "blocked")
        assert me.get(f"/search?q={other.username}").get_json()["results"] == []


@pytest.mark.parametrize("direction", ["mine", "theirs"])
def test_blocking_deletes_a_pending_request_either_way(app, alice, bob, direction):
    asker, target = (alice, bob) if direction == "mine" else (bob, alice)
    ask(asker, target)
    block(alice, bob)
    assert rows(app, Connection) == 0
    assert listed(alice)["sent"] == listed(bob)["received"] == []


def test_blocking_someone_who_denied_me_deletes_the_denied_request(app, alice, bob):
    conn = ask(alice, bob)
    bob.post(f"/connect/deny/{conn['id']}")
    assert block(alice, bob).status_code == 200
    assert rows(app, Connection) == 0
    assert rows(app, Blacklist) == 2


def test_blocking_a_stranger_needs_no_connection(app, alice, bob):
    assert block(bob, alice).status_code == 200
    assert [b["user"]["username"] for b in bob.get("/blocks").get_json()["blocked"]] == ["alice"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "missing_field"),
        ({"username": ""}, 400, "missing_field"),
        ({"username": 7}, 400, "invalid_field"),
        ({"username": "alice"}, 400, "cannot_block_self"),
        ({"username": "ALICE"}, 400, "cannot_block_self"),
        ({"username": "nobody_here"}, 404, "user_not_found"),
    ],
)
def test_block_refuses_bad_input(app, alice, body, status, code):
    assert error_of(alice.post("/block", body)) == (status, code)
    assert rows(app, Blacklist) == 0


def test_blocking_twice_is_already_blocked(app, alice, bob):
    block(alice, bob)
    assert error_of(block(alice, bob)) == (409, "already_blocked")
    assert rows(app, Blacklist) == 1


def test_a_deny_already_blocks_so_blocking_again_is_already_blocked(alice, bob):
    conn = ask(alice, bob)
    bob.post(f"/connect/deny/{conn['id']}")
    assert error_of(block(bob, alice)) == (409, "already_blocked")


# ---- the list of people I block ----------------------------------------------------


def test_blocks_lists_only_the_people_i_block_newest_first(alice, bob, carol, make_user, clock):
    dave = make_user("dave")
    block(alice, bob)
    clock.advance(minutes=5)
    block(alice, carol)
    block(dave, alice)  # someone who blocks me is never listed
    found = alice.get("/blocks").get_json()["blocked"]
    assert [b["user"] for b in found] == [
        {"id": carol.id, "username": "carol"},
        {"id": bob.id, "username": "bob"},
    ]
    assert found[0]["since"] == "2026-01-01T12:05:00+00:00"
    assert bob.get("/blocks").get_json() == {"blocked": []}


# ---- unblock -------------------------------------------------------------------------


def test_unblock_answers_and_lets_a_new_request_through(app, alice, bob):
    block(alice, bob)
    response = alice.post(f"/blocks/{bob.id}/unblock")
    assert response.status_code == 200
    assert response.get_json() == {"unblocked": True, "user": {"id": bob.id, "username": "bob"}}
    assert rows(app, Blacklist) == 0
    assert alice.get("/blocks").get_json() == {"blocked": []}
    conn = ask(bob, alice)
    assert alice.post(f"/connect/accept/{conn['id']}").status_code == 200


@pytest.mark.parametrize("asker", ["denied", "denier"])
def test_deny_then_unblock_then_either_can_ask_again(app, alice, bob, asker):
    conn = ask(alice, bob)
    bob.post(f"/connect/deny/{conn['id']}")
    assert bob.post(f"/blocks/{alice.id}/unblock").status_code == 200
    assert rows(app, Connection) == 0  # the denied request went with the block
    a, b = (alice, bob) if asker == "denied" else (bob, alice)
    again = ask(a, b)
    assert b.post(f"/connect/accept/{again['id']}").status_code == 200
    assert b.get(f"/search?q={a.username}").get_json()["results"] == [{"id": a.id, "username": a.username}]


def test_unblocking_leaves_the_other_sides_block_in_place(app, alice, bob):
    block(alice, bob)
    block(bob, alice)
    assert alice.post(f"/blocks/{bob.id}/unblock").status_code == 200
    assert error_of(alice.post("/connect", {"username": "bob"})) == (403, "blocked")
    assert [b["user"]["username"] for b in bob.get("/blocks").get_json()["blocked"]] == ["alice"]


def test_unblocking_someone_i_do_not_block_is_not_found(alice, bob):
    assert error_of(alice.post(f"/blocks/{bob.id}/unblock")) == (404, "not_found")


def test_the_blocked_person_cannot_unblock_themselves(app, alice, bob):
    block(alice, bob)
    assert error_of(bob.post(f"/blocks/{alice.id}/unblock")) == (404, "not_found")
    assert rows(app, Blacklist) == 1


def test_a_stranger_cannot_lift_someone_elses_block(app, alice, bob, carol):
    block(alice, bob)
    for target in (alice, bob):
        assert error_of(carol.post(f"/blocks/{target.id}/unblock")) == (404, "not_found")
    assert rows(app, Blacklist) == 1


@pytest.mark.parametrize("user_id", ["myself", *HUGE_IDS])
def test_unblocking_myself_or_an_unknown_id_is_not_found(alice, user_id):
    target = alice.id if user_id == "myself" else user_id
    assert error_of(alice.post(f"/blocks/{target}/unblock")) == (404, "not_found")


# ---- the contract's document ---------------------------------------------------------


def test_answers_match_the_openapi_document(friends, carol):
    alice, bob, _ = friends
    doc = openapi_document()

    def check(method: str, path: str, response) -> None:
        answers = doc["paths"][path][method]["responses"]
        assert str(response.status_code) in answers, (path, response.status_code)
        schema = answers[str(response.status_code)]["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(
            response.get_json()
        )

    pending = ask(carol, alice)
    check("post", "/connect/withdraw/{conn_id}", alice.post(f"/connect/withdraw/{pending['id']}"))
    check("post", "/connect/withdraw/{conn_id}", carol.post(f"/connect/withdraw/{pending['id']}"))
    check("post", "/contacts/{user_id}/remove", alice.post(f"/contacts/{bob.id}/remove"))
    check("post", "/contacts/{user_id}/remove", alice.post(f"/contacts/{bob.id}/remove"))
    for name in ("bob", "bob", "alice", "nobody_here", ""):
        check("post", "/block", alice.post("/block", {"username": name}))
    check("get", "/blocks", alice.get("/blocks"))
    check("post", "/blocks/{user_id}/unblock", alice.post(f"/blocks/{bob.id}/unblock"))
    check("post", "/blocks/{user_id}/unblock", alice.post(f"/blocks/{bob.id}/unblock"))


# ---- the browser face ------------------------------------------------------------------


def page(session, path: str) -> str:
    return session.client.get(path).get_data(as_text=True)


def submit(session, path: str, **form):
    """A browser form post with the page's hidden token, following the redirect."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', page(session, "/connections")).group(1)
    return session.client.post(path, data={"csrf_token": token, **form}, follow_redirects=True)


def buttons(html: str) -> list[str]:
    """Each button's accessible text, tags stripped."""
    return [re.sub(r"<[^>]+>", "", b).strip() for b in re.findall(r"<button[^>]*>(.*?)</button>", html)]


def test_connections_page_offers_withdraw_remove_and_block_named_and_explained(connect, alice, bob, carol):
    connect(alice, bob)
    ask(alice, carol)
    html = page(alice, "/connections")
    assert 'action="/connect/withdraw/' in html
    assert f'action="/contacts/{bob.id}/remove"' in html and 'action="/block"' in html
    assert {"Withdraw the request to carol", "Remove bob", "Block bob"} <= set(buttons(html))
    explanation = html.index("Removing bob deletes your conversation for both of you")
    assert explanation < html.index(f'action="/contacts/{bob.id}/remove"')
    assert "Blocking bob" in html and 'href="/blocks"' in html
    assert "<script>" not in html and " style=" not in html


def test_withdraw_through_the_form(alice, bob):
    ask(alice, bob)
    conn_id = re.search(r"/connect/withdraw/(\d+)", page(alice, "/connections")).group(1)
    response = submit(alice, f"/connect/withdraw/{conn_id}")
    assert response.request.path == "/connections"
    assert "Request to bob withdrawn." in response.get_data(as_text=True)
    assert listed(bob)["received"] == []


def test_withdrawing_an_answered_request_flashes_an_error(alice, bob):
    conn = ask(alice, bob)
    bob.post(f"/connect/accept/{conn['id']}")
    response = submit(alice, f"/connect/withdraw/{conn['id']}")
    assert response.request.path == "/connections"
    html = response.get_data(as_text=True)
    assert 'class="flash error"' in html and "already been answered" in html


def test_remove_through_the_form(app, friends):
    alice, bob, _ = friends
    response = submit(alice, f"/contacts/{bob.id}/remove")
    assert response.request.path == "/connections"
    assert "bob removed; your conversation is deleted." in response.get_data(as_text=True)
    assert pair_rows(app, alice, bob) == NOTHING


def test_block_through_the_form_and_unblock_from_the_blocks_page(app, friends):
    alice, bob, _ = friends
    response = submit(alice, "/block", username="bob")
    assert response.request.path == "/blocks"
    html = response.get_data(as_text=True)
    assert "bob is blocked." in html
    assert f'action="/blocks/{bob.id}/unblock"' in html and "Unblock bob" in buttons(html)
    assert pair_rows(app, alice, bob) == NOTHING
    response = submit(alice, f"/blocks/{bob.id}/unblock")
    assert response.request.path == "/blocks"
    html = response.get_data(as_text=True)
    assert "bob is no longer blocked." in html and "You block nobody." in html


def test_blocks_page_has_a_labelled_block_form(alice):
    html = page(alice, "/blocks")
    assert '<label for="block-username">Username</label>' in html
    assert 'id="block-username" name="username"' in html
    assert "<script>" not in html and " style=" not in html


@pytest.mark.parametrize(
    ("username", "message"),
    [("nobody_here", "No user has that name."), ("alice", "You cannot block yourself.")],
)
def test_block_form_errors_are_flashed_on_the_blocks_page(alice, username, message):
    response = submit(alice, "/block", username=username)
    assert response.request.path == "/blocks"
    html = response.get_data(as_text=True)
    assert 'class="flash error"' in html and message in html


def test_unblocking_someone_not_blocked_flashes_an_error(alice, bob):
    response = submit(alice, f"/blocks/{bob.id}/unblock")
    assert response.request.path == "/blocks"
    assert "You do not block that user." in response.get_data(as_text=True)


def test_removing_a_non_contact_flashes_an_error(alice, bob):
    response = submit(alice, f"/contacts/{bob.id}/remove")
    assert response.request.path == "/connections"
    assert "not one of your contacts" in response.get_data(as_text=True)


def test_message_ids_are_never_handed_out_again_after_a_conversation_goes(connect, make_user):
    """Stream cursors and Last-Event-ID assume ids only go up (migration 0004)."""
    alice, bob = connect(make_user(), make_user())
    alice, carol = connect(alice, make_user())
    newest = max(
        alice.post("/chat/send", {"receiver_id": bob.id, "message": f"soon gone {i}"}).get_json()["id"]
        for i in range(3)
    )
    assert alice.post(f"/contacts/{bob.id}/remove").status_code == 200
    after = alice.post("/chat/send", {"receiver_id": carol.id, "message": "after"}).get_json()["id"]
    assert after > newest
