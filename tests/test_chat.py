"""Chat: sending, polling, history, the HTML page and the event stream."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ghostcache.extensions import db
from ghostcache.models import Message
from ghostcache.services import chat
from ghostcache.services.context import Context

MESSAGE_FIELDS = {"id", "sender_id", "sender", "receiver_id", "message", "e2ee", "timestamp"}


@pytest.fixture
def pair(connect, make_user):
    """alice and bob, connected."""
    return connect(make_user("alice"), make_user("bob"))


@pytest.fixture
def alice(pair):
    return pair[0]


@pytest.fixture
def bob(pair):
    return pair[1]


@pytest.fixture
def bulk_send(app, runtime):
    """Store many messages through the service (no HTTP, no rate limit); returns their ids."""

    def send(sender, receiver, count: int) -> list[int]:
        with app.app_context():
            ctx = Context(db=db.session, rt=runtime)
            return [chat.send(ctx, sender.id, receiver.id, f"bulk {i}")["id"] for i in range(count)]

    return send


def send(sender, receiver, text: str = "hello"):
    return sender.post("/chat/send", {"receiver_id": receiver.id, "message": text})


def sent_id(sender, receiver, text: str = "hello") -> int:
    response = send(sender, receiver, text)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def error(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]


def history(session, other, **params):
    response = session.get(f"/chat/{other.id}", query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def frames(body: str) -> list[dict]:
    """The `event: message` frames of an SSE body, as {id, event, data}."""
    result = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":")
        )
        if fields.get("event") == "message":
            result.append({"id": int(fields["id"]), "data": json.loads(fields["data"])})
    return result


# ---- sending -----------------------------------------------------------------


def test_send_answers_queued_with_id_and_timestamp(alice, bob, clock):
    response = send(alice, bob, "hi bob")
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"status", "id", "timestamp"}
    assert body["status"] == "queued"
    assert isinstance(body["id"], int)
    assert body["timestamp"] == clock.now().isoformat(timespec="seconds")
    assert body["timestamp"].endswith("+00:00")


def test_form_fields_work_as_well_as_json(alice, bob):
    response = alice.client.post(
        "/chat/send", data={"receiver_id": str(bob.id), "message": "form"}, headers=alice.headers()
    )
    assert response.status_code == 201
    assert [m["message"] for m in bob.get("/chat/poll").get_json()] == ["form"]


@pytest.mark.parametrize(
    "body",
    [
        {"message": "no receiver"},
        {"receiver_id": "", "message": "empty receiver"},
        {"receiver_id": "BOB"},
        {"receiver_id": "BOB", "message": ""},
        {"receiver_id": "BOB", "message": "   \n "},
        {"receiver_id": "BOB", "message": None},
    ],
)
def test_missing_receiver_or_message_is_missing_field(alice, bob, body):
    body = {k: bob.id if v == "BOB" else v for k, v in body.items()}
    assert error(alice.post("/chat/send", body)) == (400, "missing_field")


@pytest.mark.parametrize(("length", "status"), [(10_000, 201), (10_001, 400)])
def test_messages_up_to_ten_thousand_characters(alice, bob, length, status):
    response = send(alice, bob, "x" * length)
    assert response.status_code == status
    if status == 400:
        assert response.get_json()["error"] == "message_too_long"
    else:
        assert len(bob.get("/chat/poll").get_json()[0]["message"]) == length


@pytest.mark.parametrize("receiver", [0, -1, "abc", "-1", 1.5, True, False, "SELF", [1], {"id": 1}])
def test_malformed_receiver_is_invalid_receiver(alice, bob, receiver):
    receiver = alice.id if receiver == "SELF" else receiver
    response = alice.post("/chat/send", {"receiver_id": receiver, "message": "hi"})
    assert error(response) == (400, "invalid_receiver")


def test_sending_to_yourself_by_string_id_is_invalid_receiver(alice, bob):
    response = alice.post("/chat/send", {"receiver_id": str(alice.id), "message": "hi"})
    assert error(response) == (400, "invalid_receiver")


@pytest.mark.parametrize("target", ["stranger", "pending", "unknown"])
def test_sending_without_an_accepted_connection_is_not_connected(alice, make_user, target):
    if target == "unknown":
        receiver_id = 99_999
    else:
        other = make_user()
        receiver_id = other.id
        if target == "pending":
            assert alice.post("/connect", {"username": other.username}).status_code == 201
    response = alice.post("/chat/send", {"receiver_id": receiver_id, "message": "hi"})
    assert error(response) == (403, "not_connected")


@pytest.mark.parametrize("receiver", [2**63, 2**70, str(2**70)])
def test_ids_beyond_the_database_range_are_not_connected_not_a_crash(alice, receiver):
    response = alice.post("/chat/send", {"receiver_id": receiver, "message": "hi"})
    assert error(response) == (403, "not_connected")


def test_sending_to_a_denied_requester_is_not_connected(make_user):
    asker, denier = make_user(), make_user()
    conn = asker.post("/connect", {"username": denier.username}).get_json()
    denier.post(f"/connect/deny/{conn['id']}")
    assert error(send(asker, denier)) == (403, "not_connected")
    assert error(send(denier, asker)) == (403, "not_connected")


def test_message_is_stored_encrypted(app, alice, bob):
    secret = "the treasure is under the old oak tree"
    message_id = sent_id(alice, bob, secret)
    with app.app_context():
        content = db.session.get(Message, message_id).content
    assert secret not in content
    assert "treasure" not in content
    assert bob.get("/chat/poll").get_json()[0]["message"] == secret


# ---- polling -----------------------------------------------------------------


def test_poll_returns_undelivered_messages_oldest_first_then_nothing(alice, bob, clock):
    first = sent_id(alice, bob, "one")
    clock.advance(seconds=5)
    second = sent_id(alice, bob, "two")
    messages = bob.get("/chat/poll").get_json()
    assert [m["id"] for m in messages] == [first, second]
    assert all(set(m) == MESSAGE_FIELDS for m in messages)
    assert messages[0] == {
        "id": first,
        "sender_id": alice.id,
        "sender": "alice",
        "receiver_id": bob.id,
        "message": "one",
        "e2ee": False,
        "timestamp": "2026-01-01T12:00:00+00:00",
    }
    assert messages[1]["timestamp"] == "2026-01-01T12:00:05+00:00"
    assert bob.get("/chat/poll").get_json() == []


def test_poll_returns_only_messages_to_you(alice, bob):
    sent_id(alice, bob, "to bob")
    sent_id(bob, alice, "to alice")
    assert [m["message"] for m in alice.get("/chat/poll").get_json()] == ["to alice"]
    assert [m["message"] for m in bob.get("/chat/poll").get_json()] == ["to bob"]


def test_poll_collects_from_every_contact(alice, bob, connect, make_user):
    carol, _ = connect(make_user("carol"), bob)
    sent_id(alice, bob, "from alice")
    sent_id(carol, bob, "from carol")
    assert [m["sender"] for m in bob.get("/chat/poll").get_json()] == ["alice", "carol"]


# ---- history -----------------------------------------------------------------


def test_history_shows_both_directions_oldest_first_with_delivered(alice, bob):
    a1 = sent_id(alice, bob, "a1")
    b1 = sent_id(bob, alice, "b1")
    a2 = sent_id(alice, bob, "a2")
    body = history(alice, bob)
    assert body["with"] == {"id": bob.id, "username": "bob"}
    messages = body["messages"]
    assert [m["id"] for m in messages] == [a1, b1, a2]
    assert all(set(m) == MESSAGE_FIELDS | {"delivered"} for m in messages)
    # alice looking delivers the one to her, not the ones she sent to bob
    assert [m["delivered"] for m in messages] == [False, True, False]
    assert [m["sender"] for m in messages] == ["alice", "bob", "alice"]


def test_history_before_and_limit_pick_the_newest_older_ones(alice, bob):
    ids = [sent_id(alice, bob, f"m{i}") for i in range(6)]
    body = history(bob, alice, before=ids[4], limit=2)
    assert [m["id"] for m in body["messages"]] == ids[2:4]
    assert [m["message"] for m in body["messages"]] == ["m2", "m3"]


def test_history_default_limit_is_fifty_newest(alice, bob, bulk_send):
    ids = bulk_send(alice, bob, 60)
    assert [m["id"] for m in history(alice, bob)["messages"]] == ids[-50:]


def test_history_limit_is_capped_at_two_hundred(alice, bob, bulk_send):
    ids = bulk_send(alice, bob, 205)
    assert [m["id"] for m in history(alice, bob, limit=500)["messages"]] == ids[-200:]


def test_history_huge_limit_is_capped_and_huge_before_means_everything(alice, bob, bulk_send):
    ids = bulk_send(alice, bob, 3)
    assert [m["id"] for m in history(alice, bob, limit=10**20)["messages"]] == ids
    assert [m["id"] for m in history(alice, bob, before=10**20)["messages"]] == ids


@pytest.mark.parametrize(
    "params",
    [
        {"before": "abc"},
        {"limit": "-1"},
        {"limit": "abc"},
        {"before": "1.5"},
        {"limit": "0"},
    ],
)
def test_history_non_integer_parameters_are_invalid(alice, bob, params):
    response = alice.get(f"/chat/{bob.id}", query_string=params)
    assert error(response) == (400, "invalid_parameter")


def test_history_marks_shown_messages_delivered_only(alice, bob):
    ids = [sent_id(alice, bob, f"m{i}") for i in range(3)]
    shown = history(bob, alice, limit=2)["messages"]
    assert [(m["id"], m["delivered"]) for m in shown] == [(ids[1], True), (ids[2], True)]
    assert [m["id"] for m in bob.get("/chat/poll").get_json()] == [ids[0]]
    assert [m["delivered"] for m in history(alice, bob)["messages"]] == [True, True, True]


def test_history_after_poll_shows_delivered(alice, bob):
    sent_id(alice, bob)
    bob.get("/chat/poll")
    assert [m["delivered"] for m in history(alice, bob)["messages"]] == [True]


@pytest.mark.parametrize("target", ["stranger", "pending", "unknown", "huge", "self"])
def test_history_without_an_accepted_connection_is_not_connected(alice, make_user, target):
    if target in ("unknown", "huge"):
        other_id = 99_999 if target == "unknown" else 2**70
    elif target == "self":
        other_id = alice.id
    else:
        other = make_user()
        other_id = other.id
        if target == "pending":
            alice.post("/connect", {"username": other.username})
    assert error(alice.get(f"/chat/{other_id}")) == (403, "not_connected")


# ---- POST /chat/<id> and the HTML page ------------------------------------------


def test_post_to_chat_page_sends_like_send(alice, bob):
    response = alice.post(f"/chat/{bob.id}", {"message": "via page"})
    assert response.status_code == 201
    assert response.get_json()["status"] == "queued"
    assert [m["message"] for m in bob.get("/chat/poll").get_json()] == ["via page"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": ""}, (400, "missing_field")),
        ({"message": "y" * 10_001}, (400, "message_too_long")),
    ],
)
def test_post_to_chat_page_validates_like_send(alice, bob, body, expected):
    assert error(alice.post(f"/chat/{bob.id}", body)) == expected


def test_post_to_chat_page_of_a_stranger_is_not_connected(alice, make_user):
    stranger = make_user()
    assert error(alice.post(f"/chat/{stranger.id}", {"message": "hi"})) == (403, "not_connected")


def test_post_to_own_chat_page_is_invalid_receiver(alice):
    assert error(alice.post(f"/chat/{alice.id}", {"message": "hi"})) == (400, "invalid_receiver")


def test_html_post_redirects_back_to_the_chat_page_showing_the_message(alice, bob):
    response = alice.client.post(f"/chat/{bob.id}", data={"csrf_token": alice.token, "message": "hey"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/chat/{bob.id}#latest")
    page = alice.client.get(f"/chat/{bob.id}").get_data(as_text=True)
    assert "hey" in page


def test_html_post_error_flashes_on_the_chat_page(alice, bob):
    response = alice.client.post(
        f"/chat/{bob.id}", data={"csrf_token": alice.token, "message": ""}, follow_redirects=True
    )
    assert response.status_code == 200
    assert response.request.path == f"/chat/{bob.id}"
    html = response.get_data(as_text=True)
    assert 'class="flash error"' in html and "message" in html


def test_html_send_redirects(alice, bob):
    response = alice.client.post(
        "/chat/send", data={"csrf_token": alice.token, "receiver_id": str(bob.id), "message": "x"}
    )
    assert response.status_code == 302


def test_chat_page_escapes_message_text(alice, bob):
    payload = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
    sent_id(alice, bob, payload)
    for viewer, other in ((bob, alice), (alice, bob)):
        response = viewer.client.get(f"/chat/{other.id}")
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(" in html


def test_chat_page_of_a_stranger_is_an_error_page_not_a_crash(alice, make_user):
    response = alice.client.get(f"/chat/{make_user().id}")
    assert response.status_code == 403
    assert "You can only chat with accepted contacts." in response.get_data(as_text=True)


# ---- the event stream ------------------------------------------------------------


def test_stream_sends_the_backlog_as_sse_frames_and_delivers_it(alice, bob):
    ids = [sent_id(alice, bob, f"s{i}") for i in range(3)]
    sent_id(bob, alice, "not for bob's stream")
    response = bob.client.get("/chat/stream")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    body = response.get_data(as_text=True)
    for message_id in ids:
        assert f"id: {message_id}\nevent: message\ndata: {{" in body
    got = frames(body)
    assert [f["id"] for f in got] == ids
    assert all(f["data"]["id"] == f["id"] and set(f["data"]) == MESSAGE_FIELDS | {"with"} for f in got)
    # Each event names its conversation, so any page can say who wrote.
    assert all(f["data"]["with"] == {"id": alice.id, "username": alice.username} for f in got)
    assert [f["data"]["message"] for f in got] == ["s0", "s1", "s2"]
    assert bob.get("/chat/poll").get_json() == []


def test_stream_reconnect_with_last_event_id_replays_later_messages(alice, bob):
    ids = [sent_id(alice, bob, f"r{i}") for i in range(3)]
    assert [f["id"] for f in frames(bob.client.get("/chat/stream").get_data(as_text=True))] == ids
    newer = sent_id(alice, bob, "while away")
    response = bob.client.get("/chat/stream", headers={"Last-Event-ID": str(ids[0])})
    assert [f["id"] for f in frames(response.get_data(as_text=True))] == [*ids[1:], newer]


def test_stream_without_backlog_sends_no_messages(alice, bob):
    response = bob.client.get("/chat/stream")
    assert response.status_code == 200
    assert frames(response.get_data(as_text=True)) == []


def test_stream_logged_out_is_login_required(app):
    response = app.test_client().get("/chat/stream", headers={"Accept": "application/json"})
    assert error(response) == (401, "login_required")


def test_delivered_flag_in_the_database_after_stream(app, alice, bob):
    message_id = sent_id(alice, bob)
    bob.client.get("/chat/stream")
    with app.app_context():
        assert db.session.scalar(select(Message.delivered).where(Message.id == message_id)) is True


def test_only_message_frames_carry_an_id_so_resuming_stays_message_based():
    from ghostcache.services.live import PING, StreamEvent
    from ghostcache.web.chat import _frames

    events = [
        StreamEvent("message", 7, {"id": 7}),
        StreamEvent("read", None, {"with": {"id": 2, "username": "bob"}, "unread": 0}),
        PING,
    ]
    body = "".join(_frames(iter(events)))
    assert body.endswith(
        'id: 7\nevent: message\ndata: {"id": 7}\n\n'
        'event: read\ndata: {"with": {"id": 2, "username": "bob"}, "unread": 0}\n\n'
        ": ping\n\n"
    )
