"""End-to-end encryption, the server's part: identities, backups, turning a conversation
E2EE, sending envelopes (made by ghostcache.e2ee, as a real client makes them), what
polls, streams and history show, and that a destruction leaves none of it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import func, select

from ghostcache import e2ee as gce1
from ghostcache.extensions import db
from ghostcache.models import Connection, E2EEBackup, Identity, KeyEvent, Message, User
from ghostcache.openapi import openapi_document
from ghostcache.services import chat, conversations
from ghostcache.services.context import Context
from tests.conftest import DPASS, PASSWORD, Session


class Client:
    """One user's end-to-end encrypting client: a session plus an identity key."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.key = gce1.generate_identity()

    @property
    def id(self) -> int:
        assert self.session.id is not None
        return self.session.id

    @property
    def pub(self) -> bytes:
        return gce1.public_raw(self.key)

    def publish(self):
        return self.session.post("/e2ee/identity", {"pub": gce1.b64u(self.pub)})

    def envelope(self, other: Client, conn_id: int, body: str, **changes: str) -> dict:
        sealed = gce1.encrypt_message(self.key, self.id, other.pub, other.id, conn_id, body)
        return sealed | changes

    def send(self, other: Client, envelope: dict):
        return self.session.post("/chat/send", {"receiver_id": other.id, "envelope": envelope})

    def open(self, sender: Client, conn_id: int, envelope: dict) -> str:
        return gce1.decrypt_message(
            self.key,
            envelope,
            expected_sender_id=sender.id,
            expected_receiver_id=self.id,
            expected_conv=conn_id,
            sender_pub=sender.pub,
        )


def error(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def conn_id(app, a: Client, b: Client) -> int:
    with app.app_context():
        low, high = sorted((a.id, b.id))
        return db.session.scalar(
            select(Connection.id).where(Connection.pair_low == low, Connection.pair_high == high)
        )


def count(app, model, **where) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return db.session.scalar(query) or 0


def sse_events(body: str) -> list[tuple[str, dict]]:
    """(event, data) of every frame with data in an SSE body."""
    found = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":")
        )
        if "event" in fields and "data" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def stream(session: Session) -> list[tuple[str, dict]]:
    """What one stream shows in its (test) lifetime, opened with a cursor at message 0."""
    response = session.get("/chat/stream?last_event_id=0")
    return sse_events(response.get_data(as_text=True))


@pytest.fixture
def alice(make_user) -> Client:
    return Client(make_user("alice"))


@pytest.fixture
def bob(make_user) -> Client:
    return Client(make_user("bob"))


@pytest.fixture
def pair(connect, alice, bob) -> tuple[Client, Client]:
    connect(alice.session, bob.session)
    return alice, bob


@pytest.fixture
def e2ee_pair(app, pair) -> tuple[Client, Client, int]:
    """alice and bob, both with an identity, their conversation end-to-end encrypted."""
    alice, bob = pair
    ok(alice.publish(), 201)
    ok(bob.publish(), 201)
    ok(alice.session.post(f"/chat/{bob.id}/e2ee"))
    return alice, bob, conn_id(app, alice, bob)


# ---- identities ----------------------------------------------------------------


def test_publish_answers_the_identity_with_the_kid_the_server_computed(alice):
    body = ok(alice.publish(), 201)
    assert body["kid"] == gce1.kid(alice.pub)
    assert body["pub"] == gce1.b64u(alice.pub)
    assert body["user_id"] == alice.id and body["username"] == "alice"
    assert body["created_at"].endswith("+00:00")


def test_a_second_publish_is_identity_exists(alice):
    ok(alice.publish(), 201)
    assert error(alice.publish()) == (409, "identity_exists")


@pytest.mark.parametrize(
    "pub", ["", None, "abc", gce1.b64u(bytes(31)), gce1.b64u(bytes(33)), 7, "A" * 43 + "="]
)
def test_a_pub_that_is_not_32_bytes_of_base64url_is_refused(alice, pub):
    response = alice.session.post("/e2ee/identity", {"pub": pub})
    assert response.status_code == 400
    assert response.get_json()["error"] in {"missing_field", "invalid_key"}


# X25519 points of small order: every secret agreed with one is all zeros, so a key like
# this would let a malicious client (or server) make "encrypted" messages readable by all.
LOW_ORDER_POINTS = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=lambda p: p.hex()[:8])
def test_a_low_order_pub_is_refused_on_publish_and_on_reset(alice, point):
    response = alice.session.post("/e2ee/identity", {"pub": gce1.b64u(point)})
    assert error(response) == (400, "invalid_key")
    ok(alice.publish(), 201)
    reset = alice.session.post("/e2ee/identity/reset", {"pub": gce1.b64u(point), "password": PASSWORD})
    assert error(reset) == (400, "invalid_key")


def test_a_reset_to_the_current_key_is_refused_and_warns_nobody(app, alice):
    ok(alice.publish(), 201)
    body = {"pub": gce1.b64u(alice.pub), "password": PASSWORD}
    assert error(alice.session.post("/e2ee/identity/reset", body)) == (400, "invalid_key")
    assert count(app, KeyEvent) == 0


def test_identities_are_seen_by_yourself_and_accepted_contacts_only(pair, make_user):
    alice, bob = pair
    stranger = Client(make_user())
    for client in (alice, bob, stranger):
        ok(client.publish(), 201)
    assert ok(bob.session.get(f"/e2ee/identity/{alice.id}"))["kid"] == gce1.kid(alice.pub)
    assert ok(alice.session.get(f"/e2ee/identity/{alice.id}"))["username"] == "alice"
    for path in (f"/e2ee/identity/{alice.id}", "/e2ee/identity/99999", "/e2ee/identity/0"):
        assert error(stranger.session.get(path)) == (404, "not_found")


def test_a_contact_without_an_identity_is_the_same_404(pair):
    alice, bob = pair
    assert error(bob.session.get(f"/e2ee/identity/{alice.id}")) == (404, "not_found")


def test_identity_routes_need_a_login_and_the_csrf_token(app, alice):
    anonymous = Session(app)
    assert error(anonymous.get(f"/e2ee/identity/{alice.id}")) == (401, "login_required")
    response = alice.session.post(
        "/e2ee/identity", {"pub": gce1.b64u(alice.pub)}, headers={"X-CSRFToken": "x"}
    )
    assert error(response) == (400, "csrf_failed")


def test_reset_needs_the_password_and_records_a_key_event(app, alice):
    ok(alice.publish(), 201)
    old_kid = gce1.kid(alice.pub)
    alice.key = gce1.generate_identity()
    body = {"pub": gce1.b64u(alice.pub), "password": "wrong password"}
    assert error(alice.session.post("/e2ee/identity/reset", body)) == (401, "invalid_credentials")
    assert count(app, KeyEvent) == 0
    reset = ok(alice.session.post("/e2ee/identity/reset", body | {"password": PASSWORD}))
    assert reset["kid"] == gce1.kid(alice.pub)
    with app.app_context():
        event = db.session.scalars(select(KeyEvent)).one()
        assert (event.user_id, event.old_kid, event.new_kid) == (alice.id, old_kid, reset["kid"])


def test_reset_without_an_identity_is_no_identity(alice):
    body = {"pub": gce1.b64u(alice.pub), "password": PASSWORD}
    assert error(alice.session.post("/e2ee/identity/reset", body)) == (409, "no_identity")


def test_a_reset_shows_in_the_contacts_conversation_list(e2ee_pair):
    alice, bob, _ = e2ee_pair
    assert ok(bob.session.get("/conversations"))["conversations"][0]["key_changed_at"] is None
    alice.key = gce1.generate_identity()
    ok(alice.session.post("/e2ee/identity/reset", {"pub": gce1.b64u(alice.pub), "password": PASSWORD}))
    (row,) = ok(bob.session.get("/conversations"))["conversations"]
    assert row["key_changed_at"] is not None and row["e2ee_since"] is not None


# ---- backups -------------------------------------------------------------------


def backup_body(user: Client, recovery: bytes, ctr: int, password: str = PASSWORD) -> dict:
    sealed = gce1.seal_backup(recovery, user.id, ctr, gce1.private_pkcs8(user.key), {"bob": "kid"})
    return sealed | {"ctr": ctr, "password": password}


def put_backup(user: Client, body: dict):
    return user.session.client.put("/e2ee/backup", json=body, headers=user.session.headers())


def test_a_backup_roundtrips_and_opens_with_the_recovery_key(alice):
    assert error(alice.session.get("/e2ee/backup")) == (404, "not_found")
    recovery = gce1.new_recovery_key()
    stored = ok(put_backup(alice, backup_body(alice, recovery, 1)))
    fetched = ok(alice.session.get("/e2ee/backup"))
    assert fetched == stored and fetched["ctr"] == 1
    restored = gce1.open_backup(recovery, alice.id, fetched["ctr"], fetched)
    assert restored.ik_pkcs8 == gce1.private_pkcs8(alice.key)


def test_the_backup_counter_only_increases(alice):
    recovery = gce1.new_recovery_key()
    ok(put_backup(alice, backup_body(alice, recovery, 5)))
    for ctr in (5, 4):
        assert error(put_backup(alice, backup_body(alice, recovery, ctr))) == (409, "stale_backup")
    assert ok(put_backup(alice, backup_body(alice, recovery, 6)))["ctr"] == 6


def test_writing_a_backup_needs_the_password(app, alice):
    body = backup_body(alice, gce1.new_recovery_key(), 1, password="wrong password")
    assert error(put_backup(alice, body)) == (401, "invalid_credentials")
    assert count(app, E2EEBackup) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("ctr", 0), ("ctr", "x"), ("ctr", 2**31), ("salt", "AAAA"), ("iv", "!!"), ("blob", "A" * 90_000)],
)
def test_malformed_backup_fields_are_invalid_backup(alice, field, value):
    body = backup_body(alice, gce1.new_recovery_key(), 1) | {field: value}
    assert error(put_backup(alice, body)) == (400, "invalid_backup")


def test_a_backup_is_its_owners_only(pair):
    alice, bob = pair
    ok(put_backup(alice, backup_body(alice, gce1.new_recovery_key(), 1)))
    assert error(bob.session.get("/e2ee/backup")) == (404, "not_found")


# ---- switching a conversation ----------------------------------------------------


def test_switching_needs_both_identities_and_names_the_side_without(pair):
    alice, bob = pair
    response = alice.session.post(f"/chat/{bob.id}/e2ee")
    assert error(response) == (409, "no_identity") and "You" in response.get_json()["message"]
    ok(alice.publish(), 201)
    response = alice.session.post(f"/chat/{bob.id}/e2ee")
    assert error(response) == (409, "no_identity") and "bob" in response.get_json()["message"]


def test_switching_a_stranger_is_not_connected(alice, make_user):
    stranger = Client(make_user())
    ok(alice.publish(), 201)
    ok(stranger.publish(), 201)
    assert error(alice.session.post(f"/chat/{stranger.id}/e2ee")) == (403, "not_connected")


def test_both_sides_see_the_switch_in_their_conversation_lists(e2ee_pair):
    alice, bob, _ = e2ee_pair
    again = ok(bob.session.post(f"/chat/{alice.id}/e2ee"))  # idempotent: the same moment
    for me in (alice, bob):
        (row,) = ok(me.session.get("/conversations"))["conversations"]
        assert row["e2ee_since"] == again["e2ee_since"]


def test_a_switch_reaches_a_stream_that_was_already_open(app, pair):
    alice, bob = pair
    ok(alice.publish(), 201)
    ok(bob.publish(), 201)
    position, seen = chat.StreamPosition(), conversations.NewsPosition()
    assert look(app, bob, position, seen) == []  # the first look only notes where things stand
    ok(alice.session.post(f"/chat/{bob.id}/e2ee"))
    events = look(app, bob, position, seen)
    assert [(kind, data["with"]["username"]) for kind, data in events] == [("e2ee", "alice")]
    assert look(app, bob, position, seen) == []  # once


def look(app, user: Client, position: chat.StreamPosition, seen: conversations.NewsPosition) -> list:
    """The events besides messages that one look of a stream reports (see live.follow)."""
    with app.app_context():
        ctx = Context(db=db.session, rt=app.extensions["ghostcache"])
        version = db.session.get(User, user.id).session_version
        batch = chat.stream_batch(ctx, user.id, position, version)
        assert batch is not None
        return conversations.news(ctx, user.id, seen, batch.marks, position.cursor or 0)


# ---- sending -------------------------------------------------------------------


def test_plaintext_is_refused_after_the_switch(e2ee_pair):
    alice, bob, _ = e2ee_pair
    response = alice.session.post("/chat/send", {"receiver_id": bob.id, "message": "in the clear"})
    assert error(response) == (409, "e2ee_required")
    assert error(alice.session.post(f"/chat/{bob.id}", {"message": "again"})) == (409, "e2ee_required")


def test_an_envelope_is_delivered_once_and_shown_in_history(e2ee_pair):
    alice, bob, conv = e2ee_pair
    envelope = alice.envelope(bob, conv, "meet at noon")
    message_id = ok(alice.send(bob, envelope), 201)["id"]
    (polled,) = ok(bob.session.get("/chat/poll"))
    assert polled["id"] == message_id and polled["e2ee"] is True and "message" not in polled
    assert polled["envelope"] == envelope
    assert bob.open(alice, conv, polled["envelope"]) == "meet at noon"
    assert ok(bob.session.get("/chat/poll")) == []
    (shown,) = ok(alice.session.get(f"/chat/{bob.id}"))["messages"]
    assert shown["envelope"] == envelope and shown["delivered"] is True and shown["e2ee"] is True


def test_the_conversation_list_shows_no_text_for_an_envelope(e2ee_pair):
    alice, bob, conv = e2ee_pair
    ok(alice.send(bob, alice.envelope(bob, conv, "secret")), 201)
    (row,) = ok(bob.session.get("/conversations"))["conversations"]
    assert row["last_message"]["e2ee"] is True and row["last_message"]["preview"] is None
    assert "Encrypted message" in bob.session.client.get("/").get_data(as_text=True)


def test_a_stream_shows_the_envelope(e2ee_pair):
    alice, bob, conv = e2ee_pair
    envelope = alice.envelope(bob, conv, "streamed")
    ok(alice.send(bob, envelope), 201)
    messages = [data for kind, data in stream(bob.session) if kind == "message"]
    assert [m["envelope"] for m in messages] == [envelope]
    assert bob.open(alice, conv, messages[0]["envelope"]) == "streamed"


@pytest.mark.parametrize("field", ["sid", "rid", "conv"])
def test_an_envelope_naming_another_sender_receiver_or_conversation_is_bad_envelope(e2ee_pair, field):
    alice, bob, conv = e2ee_pair
    wrong = {"sid": str(bob.id), "rid": str(alice.id), "conv": f"c{conv + 1}"}[field]
    response = alice.send(bob, alice.envelope(bob, conv, "hi", **{field: wrong}))
    assert error(response) == (400, "bad_envelope")


@pytest.mark.parametrize(
    "change",
    [{"v": "2"}, {"ct": "AAAA"}, {"iv": "!"}, {"extra": "x"}, {"mid": 5}, {"ct": "A" * 100_000}],
)
def test_a_misshapen_envelope_is_bad_envelope(e2ee_pair, change):
    alice, bob, conv = e2ee_pair
    response = alice.send(bob, alice.envelope(bob, conv, "hi") | change)
    assert response.status_code in (400, 413)
    if response.status_code == 400:
        assert response.get_json()["error"] == "bad_envelope"


def test_message_and_envelope_together_are_refused(e2ee_pair):
    alice, bob, conv = e2ee_pair
    body = {"receiver_id": bob.id, "message": "both", "envelope": alice.envelope(bob, conv, "hi")}
    assert error(alice.session.post("/chat/send", body)) == (400, "bad_envelope")


def test_a_stale_receiver_key_is_stale_key(e2ee_pair):
    alice, bob, conv = e2ee_pair
    old_bob_pub = bob.pub
    bob.key = gce1.generate_identity()
    ok(bob.session.post("/e2ee/identity/reset", {"pub": gce1.b64u(bob.pub), "password": PASSWORD}))
    stale = gce1.encrypt_message(alice.key, alice.id, old_bob_pub, bob.id, conv, "old key")
    assert error(alice.send(bob, stale)) == (409, "stale_key")
    ok(alice.send(bob, alice.envelope(bob, conv, "new key")), 201)


def test_an_envelope_to_a_conversation_that_is_not_e2ee_is_e2ee_off(app, pair):
    alice, bob = pair
    ok(alice.publish(), 201)
    ok(bob.publish(), 201)
    envelope = alice.envelope(bob, conn_id(app, alice, bob), "too early")
    assert error(alice.send(bob, envelope)) == (409, "e2ee_off")


# ---- destruction and what the server holds -------------------------------------


def test_destruction_removes_identity_backup_key_events_and_envelopes(app, e2ee_pair):
    alice, bob, conv = e2ee_pair
    ok(alice.send(bob, alice.envelope(bob, conv, "before the end")), 201)
    ok(put_backup(alice, backup_body(alice, gce1.new_recovery_key(), 1)))
    alice.key = gce1.generate_identity()
    ok(alice.session.post("/e2ee/identity/reset", {"pub": gce1.b64u(alice.pub), "password": PASSWORD}))
    assert count(app, KeyEvent, user_id=alice.id) == 1
    assert Session(app).login("alice", DPASS).status_code == 401  # the destruction login
    for model in (Identity, E2EEBackup, KeyEvent):
        assert count(app, model, user_id=alice.id) == 0, model
    assert count(app, Message) == 0
    assert count(app, Identity, user_id=bob.id) == 1


def test_a_canary_sent_end_to_end_is_nowhere_on_the_server(app, settings, e2ee_pair):
    alice, bob, conv = e2ee_pair
    canary = f"canary-{uuid.uuid4().hex}"
    ok(alice.send(bob, alice.envelope(bob, conv, canary)), 201)
    (polled,) = ok(bob.session.get("/chat/poll"))
    assert bob.open(alice, conv, polled["envelope"]) == canary
    ok(alice.session.get(f"/chat/{bob.id}"))
    needle = canary.encode()
    assert needle not in _database_rows(app)
    assert [p for p in _files(settings.data_dir) if needle in p.read_bytes()] == []


def _database_rows(app) -> bytes:
    with app.app_context():
        tables = db.metadata.sorted_tables
        return "\n".join(repr(row) for t in tables for row in db.session.execute(t.select())).encode()


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_the_answers_match_the_openapi_document(e2ee_pair):
    alice, bob, conv = e2ee_pair
    doc = openapi_document()

    def check(method: str, path: str, response) -> None:
        documented = doc["paths"][path][method]["responses"][str(response.status_code)]
        schema = documented["content"]["application/json"]["schema"]
        validator = jsonschema.Draft202012Validator({**schema, "components": doc["components"]})
        validator.validate(response.get_json())

    check("get", "/e2ee/identity/{user_id}", bob.session.get(f"/e2ee/identity/{alice.id}"))
    check("get", "/e2ee/identity/{user_id}", bob.session.get("/e2ee/identity/99999"))
    check("post", "/e2ee/identity", alice.publish())
    check("post", "/chat/{other_id}/e2ee", bob.session.post(f"/chat/{alice.id}/e2ee"))
    check("put", "/e2ee/backup", put_backup(alice, backup_body(alice, gce1.new_recovery_key(), 1)))
    check("get", "/e2ee/backup", alice.session.get("/e2ee/backup"))
    check("post", "/chat/send", alice.send(bob, alice.envelope(bob, conv, "checked")))
    check("post", "/chat/send", alice.send(bob, alice.envelope(bob, conv, "x", sid="1")))
    check("post", "/chat/send", alice.session.post("/chat/send", {"receiver_id": bob.id, "message": "plain"}))
    check("get", "/conversations", bob.session.get("/conversations"))
    check("get", "/chat/{other_id}", bob.session.get(f"/chat/{alice.id}"))
    check("post", "/chat/poll", alice.session.post("/chat/poll"))
    alice.key = gce1.generate_identity()
    reset = alice.session.post("/e2ee/identity/reset", {"pub": gce1.b64u(alice.pub), "password": PASSWORD})
    check("post", "/e2ee/identity/reset", reset)
