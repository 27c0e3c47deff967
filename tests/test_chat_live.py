"""Chat on a real server (gunicorn, 2 worker processes): exactly-once delivery,
durability across a crash, and the event stream."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import DPASS, PASSWORD

pytestmark = pytest.mark.live

POLLERS = 4


class Client:
    """One user's script: a requests session carrying the CSRF token."""

    def __init__(self, base: str, username: str, http: requests.Session | None = None) -> None:
        self.base = base
        self.username = username
        self.http = http or requests.Session()
        self.http.headers["Accept"] = "application/json"
        self.token = self.http.get(base + "/csrf", timeout=10).json()["csrf_token"]
        self.id: int | None = None

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return self.http.post(
            self.base + path, json=body or {}, timeout=30, headers={"X-CSRFToken": self.token}
        )

    def get(self, path: str, **kw) -> requests.Response:
        return self.http.get(self.base + path, timeout=kw.pop("timeout", 30), **kw)

    def signup(self) -> Client:
        registered = self.post(
            "/register", {"username": self.username, "password": PASSWORD, "d_pass": DPASS}
        )
        assert registered.status_code == 201, registered.text
        login = self.post("/login", {"username": self.username, "password": PASSWORD})
        assert login.status_code == 200, login.text
        self.token, self.id = login.json()["csrf_token"], login.json()["id"]
        return self

    def twin(self) -> requests.Session:
        """Another connection with the same cookies (the same user, another tab)."""
        other = requests.Session()
        other.headers["Accept"] = "application/json"
        other.cookies.update(self.http.cookies)
        return other

    def send(self, receiver: Client, text: str) -> int:
        response = self.post("/chat/send", {"receiver_id": receiver.id, "message": text})
        assert response.status_code == 201, response.text
        return response.json()["id"]


@pytest.fixture
def pair(live_server):
    alice = Client(live_server.url, "alice").signup()
    bob = Client(live_server.url, "bob").signup()
    conn = alice.post("/connect", {"username": "bob"})
    assert conn.status_code == 201, conn.text
    accepted = bob.post(f"/connect/accept/{conn.json()['id']}")
    assert accepted.status_code == 200, accepted.text
    return alice, bob


def test_concurrent_pollers_receive_every_message_exactly_once(live_server, pair):
    alice, bob = pair
    total = 300
    received: list[list[int]] = [[] for _ in range(POLLERS)]
    failures: list[str] = []
    lock = threading.Lock()
    seen: set[int] = set()
    done = threading.Event()
    deadline = time.monotonic() + 60

    def poller(slot: int) -> None:
        http = bob.twin()
        while not done.is_set() and time.monotonic() < deadline:
            response = http.post(
                live_server.url + "/chat/poll", timeout=30, headers={"X-CSRFToken": bob.token}
            )
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:200]}")
                continue
            ids = [m["id"] for m in response.json()]
            received[slot].extend(ids)
            with lock:
                seen.update(ids)
                if len(seen) >= total:
                    done.set()

    with ThreadPoolExecutor(POLLERS) as pool:
        futures = [pool.submit(poller, slot) for slot in range(POLLERS)]
        sent = [alice.send(bob, f"message {i}") for i in range(total)]
        for future in futures:
            future.result()

    everything = [i for ids in received for i in ids]
    assert failures == []
    assert len(set(everything)) == len(everything), "a message was delivered twice"
    assert sorted(everything) == sorted(sent), "a message was lost"
    assert sum(1 for ids in received if ids) > 1, "the pollers did not race"


def test_accepted_messages_survive_a_killed_server(live_server, pair):
    alice, bob = pair
    sent = [alice.send(bob, f"before the crash {i}") for i in range(20)]
    live_server.kill()
    live_server.start()
    response = bob.post("/chat/poll")
    assert response.status_code == 200, (response.text, live_server.log()[-3000:])
    messages = response.json()
    assert [m["id"] for m in messages] == sent
    assert [m["message"] for m in messages] == [f"before the crash {i}" for i in range(20)]
    assert bob.post("/chat/poll").json() == []


def test_stream_delivers_a_message_sent_after_it_opened(live_server, pair):
    alice, bob = pair
    buffer = ""
    message_id = None
    found = None
    with bob.get(
        "/chat/stream", stream=True, timeout=10, headers={"Accept": "text/event-stream"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        chunks = response.iter_content(chunk_size=None, decode_unicode=True)
        buffer += next(chunks)  # the opening bytes: the stream is live
        assert buffer.startswith("retry:")
        message_id = alice.send(bob, "live hello")
        sent_at = time.monotonic()
        for chunk in chunks:
            buffer += chunk
            found = _frame(buffer, message_id)
            if found or time.monotonic() - sent_at > 8:
                break
    assert found is not None, f"message {message_id} not streamed; got {buffer!r}"
    assert time.monotonic() - sent_at < 5
    assert found["message"] == "live hello"
    assert found["sender"] == "alice"
    assert bob.post("/chat/poll").json() == []  # streamed means delivered


def _frame(buffer: str, message_id: int) -> dict | None:
    marker = f"id: {message_id}\nevent: message\ndata: "
    start = buffer.find(marker)
    if start < 0:
        return None
    end = buffer.find("\n\n", start)
    if end < 0:
        return None
    return json.loads(buffer[start + len(marker) : end])
