"""The live stream loop (services/live.py) and the broker, driven by a fake clock:
hours of pings, rechecks and lifetimes pass without a single sleep."""

from __future__ import annotations

import dataclasses
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import delete, select

from ghostcache.events import Broker, Hub, LocalTransport, Subscription
from ghostcache.extensions import db
from ghostcache.models import Connection
from ghostcache.services import live
from ghostcache.services.context import Context
from tests.conftest import Session

HOUR = 3600


def open_stream(app, runtime, user: Session, stream_seconds: int = HOUR, recheck: int = 30, after=None):
    """A stream for `user` as GET /chat/stream makes one, on the app's fake clock."""
    rt = dataclasses.replace(
        runtime,
        settings=runtime.settings.with_overrides(
            stream_seconds=stream_seconds, stream_recheck_seconds=recheck
        ),
    )

    @contextmanager
    def contexts():
        with app.app_context():
            yield Context(db=db.session, rt=rt)

    with app.app_context():
        from ghostcache.models import User

        version = db.session.get(User, user.id).session_version
    sub = runtime.broker.subscribe(user.id)
    return live.follow(contexts, rt, sub, version, after)


def messages_until_ping(stream) -> list[dict]:
    """The messages the stream yields before its next ping."""
    found = []
    for event in stream:
        if event.kind == "ping":
            return found
        found.append(event.data)
    return found


def events_until_ping(stream) -> list[tuple[str, int | None, dict]]:
    """Every event (kind, id, data) the stream yields before its next ping."""
    found = []
    for event in stream:
        if event.kind == "ping":
            return found
        found.append((event.kind, event.id, event.data))
    return found


def quiet(*streams) -> None:
    """Each stream's first look and ping: nothing to report."""
    for stream in streams:
        assert events_until_ping(stream) == []


@pytest.fixture
def pair(connect):
    return connect()


def test_pings_every_15_seconds_and_ends_at_its_lifetime_without_sleeping(app, runtime, clock, make_user):
    started = clock.monotonic()
    events = list(open_stream(app, runtime, make_user(), stream_seconds=60))
    assert [e.kind for e in events] == ["ping"] * 3  # at 15, 30 and 45 s; at 60 s it ends
    assert clock.monotonic() - started == 60


def test_a_message_sent_while_open_arrives_once_with_its_conversation(app, runtime, pair):
    alice, bob = pair
    stream = open_stream(app, runtime, bob)
    assert messages_until_ping(stream) == []
    sent = alice.post("/chat/send", {"receiver_id": bob.id, "message": "hi bob"}).get_json()
    got = messages_until_ping(stream)
    assert [(m["id"], m["message"]) for m in got] == [(sent["id"], "hi bob")]
    assert got[0]["with"] == {"id": alice.id, "username": alice.username}
    assert messages_until_ping(stream) == []  # not again
    assert bob.get("/chat/poll").get_json() == []  # streamed means delivered


def test_every_open_tab_shows_each_message_once_and_it_is_delivered_once(app, runtime, pair):
    alice, bob = pair
    tabs = [open_stream(app, runtime, bob) for _ in range(3)]
    for tab in tabs:
        assert messages_until_ping(tab) == []
    ids = [
        alice.post("/chat/send", {"receiver_id": bob.id, "message": f"m{i}"}).get_json()["id"]
        for i in range(4)
    ]
    for tab in tabs:
        assert [m["id"] for m in messages_until_ping(tab)] == ids
    assert bob.get("/chat/poll").get_json() == []


def test_my_own_message_sent_from_another_tab_shows_in_my_stream(app, runtime, pair):
    alice, bob = pair
    stream = open_stream(app, runtime, alice)
    assert messages_until_ping(stream) == []
    sent = alice.post("/chat/send", {"receiver_id": bob.id, "message": "from my phone"}).get_json()
    got = messages_until_ping(stream)
    assert [m["id"] for m in got] == [sent["id"]]
    assert got[0]["with"] == {"id": bob.id, "username": bob.username}
    # Showing my own message to me does not mark it delivered to bob.
    assert [m["id"] for m in bob.get("/chat/poll").get_json()] == [sent["id"]]


def test_a_message_sent_while_nobody_listens_arrives_on_the_next_connect(app, runtime, pair):
    alice, bob = pair
    sent = alice.post("/chat/send", {"receiver_id": bob.id, "message": "later"}).get_json()
    assert [m["id"] for m in messages_until_ping(open_stream(app, runtime, bob))] == [sent["id"]]


def test_reconnecting_with_last_event_id_loses_nothing(app, runtime, pair):
    alice, bob = pair
    first = open_stream(app, runtime, bob)
    ids = [
        alice.post("/chat/send", {"receiver_id": bob.id, "message": f"m{i}"}).get_json()["id"]
        for i in range(3)
    ]
    assert [m["id"] for m in messages_until_ping(first)] == ids
    first.close()  # the connection dropped, perhaps before the browser saw the last two
    later = alice.post("/chat/send", {"receiver_id": bob.id, "message": "while away"}).get_json()["id"]
    again = open_stream(app, runtime, bob, after=ids[0])
    assert [m["id"] for m in messages_until_ping(again)] == [*ids[1:], later]


def test_without_a_wake_up_only_the_recheck_finds_a_message(app, runtime, pair, monkeypatch):
    alice, bob = pair
    stream = open_stream(app, runtime, bob, recheck=40)
    assert messages_until_ping(stream) == []  # t = 15 s
    monkeypatch.setattr(Broker, "publish", lambda self, user_id: None)  # a lost wake-up
    sent = alice.post("/chat/send", {"receiver_id": bob.id, "message": "lost wake"}).get_json()
    assert messages_until_ping(stream) == []  # t = 30 s: not yet
    assert [m["id"] for m in messages_until_ping(stream)] == [sent["id"]]  # found at the 40 s recheck


def test_a_closed_subscription_ends_the_stream(app, runtime, make_user):
    stream = open_stream(app, runtime, make_user())
    assert next(stream).kind == "ping"
    runtime.broker.close_all("the server is restarting")
    assert list(stream) == []


def test_the_oldest_stream_closes_when_a_user_opens_more_than_the_cap():
    hub = Hub(streams_per_user=3, stream_seconds=300)
    subs = [Subscription(7, f"s{i}", 100.0 + i) for i in range(4)]
    for sub in subs:
        hub.add(sub)
        hub.deliver({"t": "open", "u": 7, "s": sub.stream_id, "at": sub.opened_at})
    assert [s.closed is not None for s in subs] == [True, False, False, False]


def test_hubs_agree_on_the_oldest_stream_whichever_process_holds_it():
    a, b = Hub(2, 300), Hub(2, 300)
    on_a, on_b = Subscription(7, "x", 1.0), Subscription(7, "y", 2.0)
    a.add(on_a)
    b.add(on_b)
    opens = [{"t": "open", "u": 7, "s": s, "at": at} for s, at in (("x", 1.0), ("y", 2.0), ("z", 3.0))]
    for event in opens:  # every process sees every open event
        a.deliver(event)
        b.deliver(event)
    assert on_a.closed and not on_b.closed


def test_local_transport_wakes_a_stream_in_another_process(tmp_path):
    folder = tmp_path / "run"
    sender, receiver = (Broker(LocalTransport(folder), 10, 300) for _ in range(2))
    sender.start()
    receiver.start()
    sub = receiver.subscribe(42)
    woken = threading.Event()
    threading.Thread(target=lambda: sub.wait(5) and woken.set(), daemon=True).start()
    sender.publish(42)
    assert woken.wait(5), "the other broker's stream was not woken"


def test_local_transport_folder_is_private_and_short(tmp_path):
    long_dir = tmp_path / ("x" * 120)
    folder = LocalTransport.folder_for(long_dir)
    assert len(str(folder)) < 90  # socket addresses hold about 100 bytes
    LocalTransport(folder).start(lambda event: None)
    assert folder.stat().st_mode & 0o777 == 0o700


def _woken_within(sub: Subscription, seconds: float) -> threading.Event:
    woken = threading.Event()
    threading.Thread(target=lambda: sub.wait(seconds) and woken.set(), daemon=True).start()
    return woken


def test_redis_transport_wakes_a_stream_on_another_node_and_resyncs_after_a_restart(tmp_path):
    from ghostcache.events import RedisTransport
    from tests.services import start_redis

    server, url = start_redis(tmp_path)
    try:
        node_a, node_b = (Broker(RedisTransport(url), 10, 300) for _ in range(2))
        node_a.start()
        node_b.start()
        sub = node_b.subscribe(42)
        time.sleep(0.5)  # both subscribed to the channel
        woken = _woken_within(sub, 5)
        node_a.publish(42)
        assert woken.wait(5), "a wake-up published on node A did not reach node B"
        port = url.rsplit(":", 1)[1].split("/")[0]
        server.kill()
        server.wait()
        sub.reset()
        server, _ = start_redis(tmp_path, port=int(port))  # Redis restarts on the same port
        woken = _woken_within(sub, 15)
        assert woken.wait(15), "after Redis came back, node B's streams were not woken to catch up"
    finally:
        server.kill()


# ---- events besides messages ---------------------------------------------------------


def test_a_request_arrives_once_on_every_stream_of_its_receiver_and_no_other(app, runtime, make_user):
    alice, bob, carol = make_user(), make_user(), make_user()
    bobs = [open_stream(app, runtime, bob) for _ in range(2)]
    others = [open_stream(app, runtime, alice), open_stream(app, runtime, carol)]
    quiet(*bobs, *others)
    conn = alice.post("/connect", {"username": bob.username}).get_json()
    for stream in bobs:
        assert events_until_ping(stream) == [
            ("request", None, conn | {"user": {"id": alice.id, "username": alice.username}})
        ]
        assert events_until_ping(stream) == []  # once
    quiet(*others)


def test_an_accepted_request_arrives_as_a_contact_on_both_sides_only(app, runtime, make_user):
    alice, bob, carol = make_user(), make_user(), make_user()
    conn = alice.post("/connect", {"username": bob.username}).get_json()
    alices, bobs, carols = ([open_stream(app, runtime, u) for _ in range(2)] for u in (alice, bob, carol))
    quiet(*alices, *bobs, *carols)
    accepted = bob.post(f"/connect/accept/{conn['id']}").get_json()
    with_bob = accepted | {"user": {"id": bob.id, "username": bob.username}}
    for stream in alices:  # the sender learns that the request was accepted
        assert events_until_ping(stream) == [("contact", None, with_bob)]
    for stream in bobs:  # and the receiver's other tabs drop the request
        [(kind, event_id, data)] = events_until_ping(stream)
        assert (kind, event_id, data["id"], data["status"]) == ("contact", None, conn["id"], "accepted")
        assert data["user"] == {"id": alice.id, "username": alice.username}
    quiet(*alices, *bobs, *carols)


def test_a_share_arrives_once_on_every_stream_of_the_grantee_only(app, runtime, connect):
    alice, bob = connect()
    file = alice.upload(b"numbers", "q3.txt").get_json()
    bobs = [open_stream(app, runtime, bob) for _ in range(2)]
    alices = [open_stream(app, runtime, alice)]
    quiet(*bobs, *alices)
    assert alice.post(f"/file/{file['id']}/share", {"username": bob.username}).status_code == 201
    (shared,) = bob.get("/files").get_json()["shared"]
    for stream in bobs:
        assert events_until_ping(stream) == [("share", None, shared)]
        assert events_until_ping(stream) == []
    quiet(*alices)


def test_reading_in_one_tab_clears_the_count_on_every_tab_of_mine_and_tells_nobody_else(app, runtime, pair):
    alice, bob = pair
    bobs = [open_stream(app, runtime, bob) for _ in range(2)]
    alices = [open_stream(app, runtime, alice)]
    quiet(*bobs, *alices)
    ids = [
        alice.post("/chat/send", {"receiver_id": bob.id, "message": f"m{i}"}).get_json()["id"]
        for i in range(2)
    ]
    for stream in bobs:
        assert [(kind, event_id) for kind, event_id, _ in events_until_ping(stream)] == [
            ("message", ids[0]),
            ("message", ids[1]),
        ]
    assert len(events_until_ping(alices[0])) == 2  # her own messages, from her other tab
    assert bob.post(f"/chat/{alice.id}/read", {"upto": ids[0]}).get_json()["unread"] == 1
    with_alice = {"id": alice.id, "username": alice.username}
    for stream in bobs:
        assert events_until_ping(stream) == [("read", None, {"with": with_alice, "unread": 1})]
    bob.client.get(f"/chat/{alice.id}")  # the chat page, shown: read up to the newest
    for stream in bobs:
        assert events_until_ping(stream) == [("read", None, {"with": with_alice, "unread": 0})]
    assert bob.post(f"/chat/{alice.id}/read").status_code == 200  # nothing moves: no event
    quiet(*bobs, *alices)  # read markers are private: alice learns nothing


def test_a_read_count_includes_the_messages_shown_before_it_in_the_same_look(app, runtime, pair, monkeypatch):
    alice, bob = pair
    stream = open_stream(app, runtime, bob)
    quiet(stream)
    first = alice.post("/chat/send", {"receiver_id": bob.id, "message": "one"}).get_json()["id"]
    assert [e[1] for e in events_until_ping(stream)] == [first]
    with monkeypatch.context() as lost:  # two wake-ups lost: one look finds both changes
        lost.setattr(Broker, "publish", lambda self, user_id: None)
        second = alice.post("/chat/send", {"receiver_id": bob.id, "message": "two"}).get_json()["id"]
        bob.post(f"/chat/{alice.id}/read", {"upto": first})
    runtime.broker.publish(bob.id)
    found = events_until_ping(stream)
    assert [(kind, event_id) for kind, event_id, _ in found] == [("message", second), ("read", None)]
    assert found[1][2]["unread"] == 1  # "two", which a page adds before it applies the count


def test_the_first_look_replays_no_requests_contacts_shares_or_reads(app, runtime, connect, make_user):
    alice, bob = connect()
    alice.post("/chat/send", {"receiver_id": bob.id, "message": "hi"})
    bob.post(f"/chat/{alice.id}/read")
    file = alice.upload().get_json()
    alice.post(f"/file/{file['id']}/share", {"username": bob.username})
    make_user().post("/connect", {"username": bob.username})
    stream = open_stream(app, runtime, bob)
    assert [kind for kind, _, _ in events_until_ping(stream)] == ["message"]  # the undelivered one
    runtime.broker.publish(bob.id)
    assert events_until_ping(stream) == []


def test_a_stream_shows_new_messages_after_a_deleted_conversation(app, runtime, connect, make_user):
    alice, bob = connect()
    stream = open_stream(app, runtime, alice)
    quiet(stream)
    ids = [
        alice.post("/chat/send", {"receiver_id": bob.id, "message": f"m{i}"}).get_json()["id"]
        for i in range(3)
    ]
    assert [e[1] for e in events_until_ping(stream)] == ids
    with app.app_context(), Context(db=db.session, rt=runtime).write() as session:
        session.execute(delete(Connection).where(Connection.id == _connection_id(session, alice, bob)))
    runtime.broker.publish(alice.id)  # as removing or blocking a contact does
    assert events_until_ping(stream) == []
    _, carol = connect(alice, make_user())
    again = alice.post("/chat/send", {"receiver_id": carol.id, "message": "to carol"}).get_json()["id"]
    assert again > ids[-1]  # message ids are never handed out again (migration 0004)
    found = events_until_ping(stream)
    assert [(kind, data["message"]) for kind, _, data in found if kind == "message"] == [
        ("message", "to carol")
    ]


def _connection_id(session, a, b) -> int:
    low, high = sorted((a.id, b.id))
    return session.scalar(
        select(Connection.id).where(Connection.pair_low == low, Connection.pair_high == high)
    )
