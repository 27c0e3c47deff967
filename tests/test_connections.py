"""Contact requests: asking, listing, accepting (with keys) and denying (which blocks)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ghostcache.crypto import decrypt_for_user, unwrap_user_key
from ghostcache.extensions import db
from ghostcache.models import Blacklist, Connection, Contact, User

KEY_FIELDS = (
    "sender_privkey_enc",
    "sender_pubkey_enc",
    "receiver_privkey_enc",
    "receiver_pubkey_enc",
    "chat_key_enc_sender",
    "chat_key_enc_receiver",
)


def request(a, b):
    """a asks b; returns the JSON response."""
    return a.post("/connect", {"username": b.username})


def pending(a, b) -> dict:
    response = request(a, b)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]


def html_post(session, path: str, **form):
    """A browser form post (no JSON Accept), following the redirect."""
    return session.client.post(path, data={"csrf_token": session.token, **form}, follow_redirects=True)


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


# ---- asking -----------------------------------------------------------------


def test_request_creates_a_pending_connection_naming_the_other_party(alice, bob):
    response = request(alice, bob)
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "pending"
    assert isinstance(body["id"], int)
    assert body["created_at"].endswith("+00:00")
    assert body["user"] == {"id": bob.id, "username": "bob"}


def test_request_finds_the_user_whatever_the_case(alice, bob):
    response = alice.post("/connect", {"username": "BoB"})
    assert response.status_code == 201
    assert response.get_json()["user"]["id"] == bob.id


@pytest.mark.parametrize("name", ["alice", "ALICE", "Alice"])
def test_cannot_connect_to_yourself_in_any_case(alice, name):
    response = alice.post("/connect", {"username": name})
    assert response.status_code == 400
    assert response.get_json()["error"] == "cannot_connect_to_self"


def test_request_to_an_unknown_user_is_user_not_found(alice):
    response = alice.post("/connect", {"username": "nobody_here"})
    assert response.status_code == 404
    assert response.get_json()["error"] == "user_not_found"


def test_request_without_username_is_missing_field(alice):
    response = alice.post("/connect", {})
    assert response.status_code == 400
    assert response.get_json()["error"] == "missing_field"


def test_after_a_deny_neither_side_can_ask_again(alice, bob):
    conn = pending(alice, bob)
    assert bob.post(f"/connect/deny/{conn['id']}").status_code == 200
    for asker, target in ((alice, bob), (bob, alice)):
        response = request(asker, target)
        assert response.status_code == 403
        assert response.get_json()["error"] == "blocked"


@pytest.mark.parametrize("accepted", [False, True], ids=["pending", "accepted"])
@pytest.mark.parametrize("second_asker", ["sender", "receiver"])
def test_a_second_request_between_the_same_pair_is_already_connected(alice, bob, accepted, second_asker):
    conn = pending(alice, bob)
    if accepted:
        assert bob.post(f"/connect/accept/{conn['id']}").status_code == 200
    asker, target = (alice, bob) if second_asker == "sender" else (bob, alice)
    response = request(asker, target)
    assert response.status_code == 409
    assert response.get_json()["error"] == "already_connected"


# ---- listing ----------------------------------------------------------------


def test_list_shows_pending_requests_to_each_side_with_the_other_party(alice, bob):
    conn = pending(alice, bob)
    mine = alice.get("/connections").get_json()
    theirs = bob.get("/connections").get_json()
    assert mine == {"sent": [conn], "received": [], "accepted": []}
    assert [c["user"]["username"] for c in theirs["received"]] == ["alice"]
    assert theirs["received"][0]["id"] == conn["id"]
    assert theirs["sent"] == [] and theirs["accepted"] == []


def test_accepted_connections_leave_the_pending_lists(alice, bob, make_user):
    carol = make_user("carol")
    first = pending(alice, bob)
    pending(carol, alice)
    assert bob.post(f"/connect/accept/{first['id']}").status_code == 200
    lists = alice.get("/connections").get_json()
    assert lists["sent"] == []
    assert [c["user"]["username"] for c in lists["received"]] == ["carol"]
    assert [(c["user"]["username"], c["status"]) for c in lists["accepted"]] == [("bob", "accepted")]
    assert [c["user"]["username"] for c in bob.get("/connections").get_json()["accepted"]] == ["alice"]


def test_denied_connections_are_not_listed(alice, bob):
    conn = pending(alice, bob)
    bob.post(f"/connect/deny/{conn['id']}")
    empty = {"sent": [], "received": [], "accepted": []}
    assert alice.get("/connections").get_json() == empty
    assert bob.get("/connections").get_json() == empty


# ---- accepting ---------------------------------------------------------------


def test_receiver_accepts_and_sees_the_sender(alice, bob):
    conn = pending(alice, bob)
    response = bob.post(f"/connect/accept/{conn['id']}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == conn["id"]
    assert body["status"] == "accepted"
    assert body["user"] == {"id": alice.id, "username": "alice"}


def test_accept_creates_two_mirror_contacts(app, alice, bob):
    conn = pending(alice, bob)
    bob.post(f"/connect/accept/{conn['id']}")
    with app.app_context():
        contacts = db.session.scalars(select(Contact)).all()
        pairs = sorted((c.owner_id, c.contact_id, c.connection_id) for c in contacts)
    assert pairs == sorted([(alice.id, bob.id, conn["id"]), (bob.id, alice.id, conn["id"])])


def test_accept_stores_every_key_encrypted(app, runtime, alice, bob):
    conn = pending(alice, bob)
    bob.post(f"/connect/accept/{conn['id']}")
    with app.app_context():
        row = db.session.get(Connection, conn["id"])
        fields = {name: getattr(row, name) for name in KEY_FIELDS}
        sender = db.session.get(User, alice.id)
        receiver = db.session.get(User, bob.id)
        sender_key = unwrap_user_key(runtime.keyring, sender.keys_database_key)
        receiver_key = unwrap_user_key(runtime.keyring, receiver.keys_database_key)
    assert all(fields.values()), fields
    chat_key = decrypt_for_user(sender_key, fields["chat_key_enc_sender"]).reveal()
    assert decrypt_for_user(receiver_key, fields["chat_key_enc_receiver"]).reveal() == chat_key
    private = decrypt_for_user(receiver_key, fields["receiver_privkey_enc"]).reveal()
    assert b"PRIVATE KEY" in private  # the stored value really is the key, encrypted
    for name, value in fields.items():
        assert "-----BEGIN" not in value, name
        assert "PRIVATE KEY" not in value and "PUBLIC KEY" not in value, name
        assert chat_key.decode() not in value, name
    assert len(set(fields.values())) == len(KEY_FIELDS)


@pytest.mark.parametrize("action", ["accept", "deny"])
@pytest.mark.parametrize("who", ["sender", "stranger"])
def test_only_the_receiver_can_answer_others_get_not_found(alice, bob, make_user, action, who):
    conn = pending(alice, bob)
    actor = alice if who == "sender" else make_user("mallory")
    response = actor.post(f"/connect/{action}/{conn['id']}")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    assert [c["status"] for c in bob.get("/connections").get_json()["received"]] == ["pending"]


@pytest.mark.parametrize("action", ["accept", "deny"])
@pytest.mark.parametrize("conn_id", [9999, 2**63, 2**70])
def test_answering_an_unknown_request_is_not_found(alice, action, conn_id):
    response = alice.post(f"/connect/{action}/{conn_id}")
    assert error_of(response) == (404, "not_found")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("accept", "accept"),
        ("accept", "deny"),
        ("deny", "accept"),
        ("deny", "deny"),
    ],
)
def test_answering_twice_is_not_pending(alice, bob, first, second):
    conn = pending(alice, bob)
    assert bob.post(f"/connect/{first}/{conn['id']}").status_code == 200
    response = bob.post(f"/connect/{second}/{conn['id']}")
    assert response.status_code == 409
    assert response.get_json()["error"] == "not_pending"


# ---- denying ------------------------------------------------------------------


def test_deny_answers_denied_and_the_receiver_blocks_the_sender(app, alice, bob):
    conn = pending(alice, bob)
    response = bob.post(f"/connect/deny/{conn['id']}")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["user"]["username"]) == ("denied", "alice")
    with app.app_context():
        blocks = [(b.blocker_id, b.blocked_id) for b in db.session.scalars(select(Blacklist))]
        contacts = db.session.scalars(select(Contact)).all()
    assert blocks == [(bob.id, alice.id)]
    assert contacts == []


def test_a_denied_sender_can_no_longer_find_the_receiver(alice, bob):
    conn = pending(alice, bob)
    bob.post(f"/connect/deny/{conn['id']}")
    assert alice.get("/search?q=bob").get_json()["results"] == []


# ---- the browser face -----------------------------------------------------------


def test_html_request_redirects_to_connections_with_a_flash(alice, bob):
    response = html_post(alice, "/connect", username="bob")
    assert response.status_code == 200
    assert response.request.path == "/connections"
    html = response.get_data(as_text=True)
    assert "Request sent to bob." in html
    assert alice.get("/connections").get_json()["sent"][0]["user"]["username"] == "bob"


def test_html_accept_redirects_with_a_flash(alice, bob):
    conn = pending(alice, bob)
    response = html_post(bob, f"/connect/accept/{conn['id']}")
    assert response.request.path == "/connections"
    assert "You and alice are now connected." in response.get_data(as_text=True)


def test_html_deny_redirects_with_a_flash(alice, bob):
    conn = pending(alice, bob)
    response = html_post(bob, f"/connect/deny/{conn['id']}")
    assert response.request.path == "/connections"
    assert "Request denied." in response.get_data(as_text=True)


def test_html_form_post_gets_a_redirect_not_json(alice, bob):
    response = alice.client.post("/connect", data={"csrf_token": alice.token, "username": "bob"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/connections")


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("alice", "You cannot send a request to yourself."),
        ("ghost_user", "No user has that name."),
    ],
)
def test_html_request_errors_are_flashed_on_the_redirected_page(alice, username, message):
    response = html_post(alice, "/connect", username=username)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'class="flash error"' in html
    assert message in html
    assert "Traceback" not in html


def test_html_accept_of_someone_elses_request_flashes_an_error(alice, bob, make_user):
    conn = pending(alice, bob)
    response = html_post(make_user("mallory"), f"/connect/accept/{conn['id']}")
    assert response.request.path == "/connections"
    html = response.get_data(as_text=True)
    assert 'class="flash error"' in html and "not yours to see" in html


def test_html_second_answer_flashes_already_answered(alice, bob):
    conn = pending(alice, bob)
    html_post(bob, f"/connect/accept/{conn['id']}")
    response = html_post(bob, f"/connect/deny/{conn['id']}")
    assert response.request.path == "/connections"
    assert "That request has already been answered." in response.get_data(as_text=True)


def test_connections_page_lists_requests_for_a_browser(alice, bob):
    pending(alice, bob)
    html = bob.client.get("/connections").get_data(as_text=True)
    assert "alice" in html and "wants to connect" in html
