"""The serving model under abuse, on a real server (gunicorn, gevent workers): hundreds of
idle event streams, half-sent headers, a password-guessing storm and an oversized body do
not stop ordinary requests; a new message wakes streams in every worker process at once;
each user keeps a few streams; stalled headers and oversized bodies are cut off early; a
stop ends the streams at once.

Raw sockets are driven by `selectors` (tests.live.ConnectionPool), never a thread each.
Every loop is bounded in count and time; every socket goes to 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import selectors
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.live import ConnectionPool, LiveServer, RawConnection, http_request
from tests.test_chat_live import Client

pytestmark = pytest.mark.live

FRAME = re.compile(rb"id: (\d+)\nevent: message\ndata: ([^\n]*)\n\n")
MESSAGE_FIELDS = {"id", "sender_id", "sender", "receiver_id", "message", "e2ee", "timestamp", "with"}


# -- helpers --------------------------------------------------------------------------------


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start LiveServers with given settings; each is stopped (or killed) afterwards."""
    servers: list[LiveServer] = []

    def start(**settings: str | int) -> LiveServer:
        server = LiveServer(tmp_path / f"data{len(servers)}", **settings)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        try:
            server.stop()
        except subprocess.TimeoutExpired:
            server.kill()


def signup_all(url: str, names: list[str], threads: int = 8) -> list[Client]:
    """Register and log in users in parallel (each costs a few real Argon2 hashes)."""
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda name: Client(url, name).signup(), names))


def befriend(a: Client, b: Client) -> None:
    conn = a.post("/connect", {"username": b.username})
    assert conn.status_code == 201, conn.text
    accepted = b.post(f"/connect/accept/{conn.json()['id']}")
    assert accepted.status_code == 200, accepted.text


def cookie_header(client: Client) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in client.http.cookies)


def open_stream(server: LiveServer, client: Client) -> RawConnection:
    """GET /chat/stream on a new connection of its own; the request is sent, nothing read."""
    conn = RawConnection(server.port)
    conn.send(
        http_request("GET", "/chat/stream", {"Accept": "text/event-stream", "Cookie": cookie_header(client)})
    )
    return conn


def stream_opened(conn: RawConnection) -> bool:
    """The stream answered 200 and sent its opening bytes (`retry: 3000` and `: connected`)."""
    return conn.response.status == 200 and b": connected" in conn.response.body


def frames(conn: RawConnection) -> dict[int, dict]:
    """The message frames a stream has carried so far: id -> message."""
    return {int(m[1]): json.loads(m[2]) for m in FRAME.finditer(conn.response.body)}


def raw_send(server: LiveServer, sender: Client, receiver: Client, text: str) -> tuple[int, RawConnection]:
    """POST /chat/send on a new connection, mapped to its worker before the request goes;
    returns (worker pid, the connection with its request sent)."""
    conn = RawConnection(server.port)
    worker = server.worker_for(conn.local_port)
    body = json.dumps({"receiver_id": receiver.id, "message": text}).encode()
    conn.send(http_request("POST", "/chat/send", json_headers(sender), body))
    return worker, conn


def json_headers(client: Client | None = None, token: str | None = None, cookie: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if client is not None:
        token, cookie = client.token, cookie_header(client)
    if token:
        headers["X-CSRFToken"] = token
    if cookie:
        headers["Cookie"] = cookie
    return headers


def anonymous_csrf(url: str) -> tuple[str, str]:
    """A logged-out session's cookie and CSRF token, so that only a body's size can refuse it."""
    http = requests.Session()
    token = http.get(url + "/csrf", timeout=10).json()["csrf_token"]
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies), token


def log_tail(server: LiveServer, chars: int = 3000) -> str:
    return "\n--- server log (tail) ---\n" + server.log()[-chars:]


def summary(conns: list[RawConnection], limit: int = 5) -> str:
    return "\n".join(conn.describe() for conn in conns[:limit])


HALF_HEADER = b"GET /login HTTP/1.1\r\nHost: x\r\nX-Slow: "


def half_header(server: LiveServer) -> RawConnection:
    conn = RawConnection(server.port)
    conn.send(HALF_HEADER)
    return conn


def trickle_body(
    conn: RawConnection, total: int, piece: int, pause: float, seconds: float, content: bytes | None = None
) -> None:
    """Send `total` body bytes (`content`, or filler), `piece` at a time with `pause` between,
    reading the answer as it comes; stop at the answer, the connection's end, or after `seconds`."""
    deadline = time.monotonic() + seconds
    start = conn.sent
    filler = b"x" * piece
    with selectors.DefaultSelector() as selector:
        selector.register(conn.sock, selectors.EVENT_READ)
        while not conn.ended and time.monotonic() < deadline:
            if selector.select(pause):
                conn.read_available()
                continue
            done = conn.sent - start
            if done < total:
                conn.send_some(
                    content[done : done + piece] if content else filler[: min(piece, total - done)]
                )


# -- 1. the server keeps answering under abuse ----------------------------------------------

# Six users with fifty streams each, the per-user cap raised to exactly that: every stream
# stays open. (Thirty users at the default cap of ten would spend ~25 s on Argon2 signups.)
STREAM_USERS = 6
STREAMS_EACH = 50
SLOW_SOCKETS = 50
SLOW_REOPENS = 200  # half-header sockets reopened as the server cuts them (an attacker would)
STORM_THREADS = 4
STORM_MAX = 400  # logins per storm thread at most
BIG_BODY = 40 * 1024 * 1024
PROBE_ROUNDS = 5
PROBE_SECONDS = 3.0


def test_the_server_keeps_answering_under_abuse(serve):
    server = serve(workers=2, stream_seconds="120", streams_per_user=str(STREAMS_EACH))
    url = server.url
    users = signup_all(url, [f"crowd{i}" for i in range(STREAM_USERS)] + ["prober"])
    crowd, prober = users[:-1], users[-1]

    streams, slow = ConnectionPool(), ConnectionPool()
    stop = threading.Event()
    storm_statuses: Counter = Counter()
    storm_lock = threading.Lock()
    big: dict = {}
    threads: list[threading.Thread] = []
    slow_cut: Counter = Counter()
    try:
        # 300 idle streams, all open at once.
        for user in crowd:
            for _ in range(STREAMS_EACH):
                streams.add(open_stream(server, user))
        streams.wait(lambda: all(stream_opened(c) or c.ended for c in streams.connections), timeout=20)
        not_open = [c for c in streams.connections if not stream_opened(c) or c.ended]
        assert not not_open, (
            f"{len(not_open)} of {len(streams.connections)} streams did not open (or ended at once):\n"
            + summary(not_open)
            + log_tail(server)
        )

        # 50 sockets that sent half a request header and then nothing.
        for _ in range(SLOW_SOCKETS):
            slow.add(half_header(server))

        # A wrong-password storm: every attempt costs the server two Argon2 hashes.
        storm_deadline = time.monotonic() + 45

        def storm() -> None:
            http = requests.Session()
            http.headers["Accept"] = "application/json"
            try:
                token = http.get(url + "/csrf", timeout=10).json()["csrf_token"]
                for _ in range(STORM_MAX):
                    if stop.is_set() or time.monotonic() > storm_deadline:
                        return
                    try:
                        answer = http.post(
                            url + "/login",
                            json={"username": "crowd0", "password": "not the password"},
                            headers={"X-CSRFToken": token},
                            timeout=30,
                        )
                        outcome: object = answer.status_code
                    except requests.RequestException as exc:
                        outcome = type(exc).__name__
                    with storm_lock:
                        storm_statuses[outcome] += 1
            except Exception as exc:  # recorded and asserted on below
                with storm_lock:
                    storm_statuses[f"storm thread failed: {exc!r}"] += 1

        # One anonymous 40 MB body, trickled: the server must refuse it from its Content-Length.
        def big_body() -> None:
            cookie, token = anonymous_csrf(url)
            conn = RawConnection(server.port)
            try:
                headers = json_headers(token=token, cookie=cookie) | {"Content-Length": str(BIG_BODY)}
                conn.send(http_request("POST", "/login", headers))
                head_bytes = conn.sent
                started = time.monotonic()
                trickle_body(conn, BIG_BODY, piece=64 * 1024, pause=0.05, seconds=15)
                big.update(
                    status=conn.response.status,
                    eof=conn.eof,
                    error=conn.error,
                    body_sent=conn.sent - head_bytes,
                    seconds=(conn.ended_at or time.monotonic()) - started,
                    answer=conn.describe(),
                )
            finally:
                conn.close()

        threads = [threading.Thread(target=storm, daemon=True) for _ in range(STORM_THREADS)]
        threads.append(threading.Thread(target=big_body, daemon=True))
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # let the storm get going

        # Meanwhile: an anonymous page and a signed-in JSON list, several times each.
        probes: list[tuple[str, object, float]] = []
        reopened = 0
        for _ in range(PROBE_ROUNDS):
            for path, http in (("/login", requests), ("/files", prober.http)):
                started = time.monotonic()
                try:
                    answer = http.get(url + path, timeout=10)  # prober.http asks for JSON
                    outcome: object = answer.status_code
                    if path == "/files" and answer.status_code == 200:
                        assert set(answer.json()) == {"owned", "shared"}, answer.text
                except requests.RequestException as exc:
                    outcome = type(exc).__name__
                probes.append((path, outcome, round(time.monotonic() - started, 2)))
            streams.pump(0.3)
            slow.pump(0.2)
            for conn in [c for c in slow.connections if c.ended]:  # cut: reconnect, as an attacker would
                slow_cut[conn.response.status or "closed"] += 1
                slow.remove(conn)
                if reopened < SLOW_REOPENS:
                    slow.add(half_header(server))
                    reopened += 1
            time.sleep(0.5)

        stop.set()
        for thread in threads:
            thread.join(timeout=35)
        streams.pump(0.5)
        ended = [c for c in streams.connections if c.ended]

        context = (
            f"\nprobes (path, status, seconds): {probes}\nstorm: {dict(storm_statuses)}"
            f"\nhalf-header sockets cut: {dict(slow_cut)}\n40 MB body: {big}" + log_tail(server)
        )
        slow_probes = [p for p in probes if p[1] != 200 or p[2] > PROBE_SECONDS]
        assert not slow_probes, f"requests not answered 200 within {PROBE_SECONDS}s: {slow_probes}" + context
        assert big, "the 40 MB sender did not finish" + context
        refused = big["status"] == 413 or (big["status"] is None and big["eof"])
        assert refused, "the 40 MB body was not refused (413, or the connection closed)" + context
        assert big["seconds"] < 5, f"the 40 MB body was refused only after {big['seconds']:.1f}s" + context
        assert big["body_sent"] < BIG_BODY, "the whole 40 MB body went out" + context
        assert storm_statuses[401] > 0, "no wrong-password login was answered" + context
        assert set(storm_statuses) == {401}, (
            f"the storm got other answers than 401: {storm_statuses}" + context
        )
        assert not ended, (
            f"{len(ended)} of {len(streams.connections)} streams ended during the abuse:\n"
            + summary(ended)
            + context
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=35)
        streams.close()
        slow.close()


# -- 2. a message wakes streams in every worker, with the database recheck off --------------

BOB_STREAMS = 8
SENDS = 5
DELIVERY_SECONDS = 1.0


def test_a_message_reaches_every_stream_in_every_worker_at_once(serve):
    server = serve(workers=2, stream_recheck_seconds="0", stream_seconds="60")
    alice, bob = signup_all(server.url, ["alice", "bob"], threads=2)
    befriend(alice, bob)
    pool = ConnectionPool()
    try:
        bob_streams: dict[RawConnection, int] = {}  # stream -> the worker serving it
        for _ in range(BOB_STREAMS):
            conn = pool.add(open_stream(server, bob))
            bob_streams[conn] = server.worker_for(conn.local_port)
            assert pool.wait(lambda c=conn: stream_opened(c) or c.ended, timeout=5) and not conn.ended, (
                f"stream did not open: {conn.describe()}" + log_tail(server)
            )
        stream_workers = set(bob_streams.values())

        send_workers: list[int] = []
        timings: list[tuple[int, int, float]] = []  # (message id, send worker, slowest stream seconds)
        for n in range(SENDS):
            for _attempt in range(20):  # a send served where some stream is not, at least once
                worker, conn = raw_send(server, alice, bob, f"cross-worker {n}")
                if n > 0 or stream_workers - {worker}:
                    break
                conn.close()  # all streams are on this worker: try another connection
            else:
                pytest.fail(
                    f"20 sends all landed on worker {worker}, where every stream is" + log_tail(server)
                )
            try:
                assert conn.wait(lambda c: c.ended, timeout=5) and conn.response.status == 201, (
                    f"send {n}: {conn.describe()}" + log_tail(server)
                )
                sent_at = conn.ended_at
                message_id = conn.response.json()["id"]
            finally:
                conn.close()
            send_workers.append(worker)

            def arrived(mid: int = message_id) -> bool:
                return all(mid in frames(c) for c in bob_streams)

            pool.wait(arrived, timeout=DELIVERY_SECONDS + 2)
            slowest = time.monotonic() - sent_at  # pool.wait returns as soon as every stream has it
            late = [
                f"stream on worker {stream_worker}: {c.describe()}"
                for c, stream_worker in bob_streams.items()
                if message_id not in frames(c)
            ]
            timings.append((message_id, worker, round(slowest, 3)))
            assert not late, (
                f"message {message_id} (sent via worker {worker}) did not reach every stream of bob "
                f"within {DELIVERY_SECONDS + 2}s; streams per worker {Counter(bob_streams.values())}:\n"
                + "\n".join(late)
                + log_tail(server)
            )
            assert slowest <= DELIVERY_SECONDS, (
                f"message {message_id} (sent via worker {worker}) took {slowest:.2f}s to reach all "
                f"{BOB_STREAMS} streams (limit {DELIVERY_SECONDS}s); timings so far {timings}"
                + log_tail(server)
            )
            for c in bob_streams:
                found = frames(c)[message_id]
                assert set(found) == MESSAGE_FIELDS, f"message fields {sorted(found)}"
                assert found["message"] == f"cross-worker {n}" and found["sender"] == "alice", found
                assert found["receiver_id"] == bob.id and found["sender_id"] == alice.id, found
                assert found["with"] == {"id": alice.id, "username": "alice"}, found

        crossing = {(s, w) for s in stream_workers for w in send_workers if s != w}
        assert crossing, (
            f"streams on workers {sorted(stream_workers)}, sends on {sorted(set(send_workers))}: "
            f"nothing crossed between worker processes (workers: {server.worker_pids()})"
        )
        assert not [c for c in bob_streams if c.ended], "a stream ended: " + summary(list(bob_streams))
    finally:
        pool.close()


# -- 3. a user keeps a few streams: the oldest closes beyond the cap ------------------------


def test_the_oldest_stream_closes_beyond_the_per_user_cap(serve):
    server = serve(workers=2, streams_per_user="3", stream_seconds="60")
    alice, bob = signup_all(server.url, ["alice", "bob"], threads=2)
    befriend(alice, bob)
    pool = ConnectionPool()
    try:
        opened: list[RawConnection] = []
        workers: list[int] = []
        for n in range(4):
            conn = pool.add(open_stream(server, bob))
            workers.append(server.worker_for(conn.local_port))
            assert pool.wait(lambda c=conn: stream_opened(c) or c.ended, timeout=5) and stream_opened(conn), (
                f"stream {n + 1} did not open: {conn.describe()}" + log_tail(server)
            )
            opened.append(conn)
            if n == 2:
                pool.pump(0.5)
                early = [i + 1 for i, c in enumerate(opened) if c.ended]
                assert not early, f"streams {early} ended with only 3 open (cap 3)" + log_tail(server)
        fourth_at = time.monotonic()
        first = opened[0]
        pool.wait(lambda: first.ended, timeout=5)
        where = f"(workers serving streams 1-4: {workers})"
        assert first.ended, (
            f"the oldest stream still open 5s after the 4th opened {where}: {first.describe()}"
            + log_tail(server)
        )
        took = first.ended_at - fourth_at
        message_id = alice.send(bob, "after the cap")
        rest = opened[1:]
        pool.wait(lambda: all(message_id in frames(c) for c in rest), timeout=3)
        for n, conn in enumerate(rest, start=2):
            assert not conn.ended, f"stream {n} ended {where}: {conn.describe()}" + log_tail(server)
            assert message_id in frames(conn), (
                f"stream {n} did not get message {message_id} within 3s {where}: {conn.describe()}"
                + log_tail(server)
            )
        assert message_id not in frames(first)
        assert took < 3, f"the oldest stream ended {took:.1f}s after the 4th opened {where}"
    finally:
        pool.close()


# -- 4. a stalled header is cut off ---------------------------------------------------------

STALLED = 10


def test_a_stalled_header_is_cut_off_while_others_are_answered(serve):
    server = serve(workers=2, header_timeout_seconds="2")
    pool = ConnectionPool()
    try:
        stalled = [pool.add(half_header(server)) for _ in range(STALLED)]
        sent_at = time.monotonic()
        answers: list[tuple[int | str, float]] = []
        while time.monotonic() - sent_at < 6 and not all(c.ended for c in stalled):
            started = time.monotonic()
            try:
                status: int | str = requests.get(server.url + "/login", timeout=5).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            answers.append((status, round(time.monotonic() - started, 2)))
            pool.pump(0.3)
        cut = sorted(round(c.ended_at - sent_at, 2) for c in stalled if c.ended)
        context = f"\ncut after (s): {cut}\n" + summary(stalled, STALLED) + log_tail(server)
        still_open = [c for c in stalled if not c.ended]
        assert not still_open, f"{len(still_open)} stalled headers still open after 6s" + context
        wrong = [c for c in stalled if c.response.status not in (None, 408)]
        assert not wrong, "a stalled header got an answer other than 408" + context
        assert all(1.0 <= c.ended_at - sent_at <= 4.5 for c in stalled), (
            "a stalled header was cut outside 1-4.5s (header timeout 2s)" + context
        )
        assert answers and all(s == 200 and t < 2 for s, t in answers), (
            f"GET /login while headers stalled (status, seconds): {answers}" + context
        )
    finally:
        pool.close()


# -- 5. body limits at the edge -------------------------------------------------------------


def test_an_oversized_content_length_is_refused_before_the_body(serve):
    server = serve(workers=2)
    cookie, token = anonymous_csrf(server.url)
    conn = RawConnection(server.port)
    try:
        headers = json_headers(token=token, cookie=cookie) | {"Content-Length": "50000000"}
        conn.send(http_request("POST", "/login", headers))
        started = time.monotonic()
        conn.wait(lambda c: c.ended, timeout=5)
        took = time.monotonic() - started
        assert conn.response.status == 413 and conn.response.complete, (
            f"no 413 within {took:.1f}s of the headers (no body sent): {conn.describe()}" + log_tail(server)
        )
        assert took < 3, f"413 took {took:.1f}s"
        assert conn.response.json()["error"] == "too_large", conn.describe()
    finally:
        conn.close()


def test_a_300_kb_message_is_refused(serve):
    server = serve(workers=2)
    (alice,) = signup_all(server.url, ["alice"], threads=1)
    body = json.dumps({"receiver_id": alice.id + 1, "message": "x" * 300_000}).encode()
    conn = RawConnection(server.port)
    try:
        conn.send(
            http_request("POST", "/chat/send", json_headers(alice) | {"Content-Length": str(len(body))})
        )
        head = conn.sent
        trickle_body(conn, len(body), piece=64 * 1024, pause=0.01, seconds=5, content=body)
        conn.wait(lambda c: c.ended, timeout=5)
        assert conn.response.status == 413 and conn.response.complete, (
            f"a 300 KB /chat/send body ({conn.sent - head} bytes sent): {conn.describe()}" + log_tail(server)
        )
        assert conn.response.json()["error"] == "too_large", conn.describe()
    finally:
        conn.close()


CHUNKED_CAP = 32 * 1024 * 1024


def test_an_endless_chunked_login_body_is_cut_off(serve):
    server = serve(workers=2)
    cookie, token = anonymous_csrf(server.url)
    conn = RawConnection(server.port)
    try:
        headers = json_headers(token=token, cookie=cookie) | {"Transfer-Encoding": "chunked"}
        conn.send(http_request("POST", "/login", headers))
        head = conn.sent
        opening = b'{"username": "alice", "password": "'
        conn.send(b"%x\r\n%s\r\n" % (len(opening), opening))
        conn.sock.setblocking(False)
        piece = b"x" * 16384
        chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
        started = time.monotonic()
        pending = b""
        with selectors.DefaultSelector() as selector:
            selector.register(conn.sock, selectors.EVENT_READ)
            # Never a last chunk: a server that reads it all would wait for more.
            while not conn.ended and conn.sent - head < CHUNKED_CAP and time.monotonic() - started < 6:
                if selector.select(0.002):
                    conn.read_available()
                    continue
                pending = pending or chunk
                pending = pending[conn.send_some(pending) :]
        conn.wait(lambda c: c.ended, timeout=max(0.1, 6 - (time.monotonic() - started)))
        took = time.monotonic() - started
        sent = conn.sent - head
        assert conn.ended, (
            f"an endless chunked /login body: no answer after {took:.1f}s and {sent} bytes sent: "
            f"{conn.describe()}" + log_tail(server)
        )
        assert conn.response.status in (None, 413), conn.describe() + log_tail(server)
        if conn.response.status == 413 and conn.response.complete:
            assert conn.response.json()["error"] == "too_large", conn.describe()
        assert sent < CHUNKED_CAP, f"the server took all {sent} bytes before refusing"
    finally:
        conn.close()


# -- 6. a graceful stop ends the streams at once --------------------------------------------


def test_a_stop_ends_open_streams_at_once(serve):
    server = serve(workers=2, stream_seconds="60")
    (bob,) = signup_all(server.url, ["bob"], threads=1)
    pool = ConnectionPool()
    stopper: threading.Thread | None = None
    try:
        opened = [pool.add(open_stream(server, bob)) for _ in range(5)]
        pool.wait(lambda: all(stream_opened(c) or c.ended for c in opened), timeout=10)
        assert all(stream_opened(c) and not c.ended for c in opened), summary(opened) + log_tail(server)

        stopped_at = time.monotonic()
        stopper = threading.Thread(target=server.stop, daemon=True)  # SIGTERM, then waits
        stopper.start()
        exited_at: float | None = None
        while time.monotonic() - stopped_at < 8:
            pool.pump(0.05)
            if exited_at is None and server.process.poll() is not None:
                exited_at = time.monotonic()
            if exited_at is not None and all(c.eof for c in opened):
                break

        def after(moment: float | None) -> float | None:
            return None if moment is None else round(moment - stopped_at, 2)

        # A stream's response may end (last chunk) before its connection closes (EOF); a
        # connection left open for keep-alive holds the worker until the keep-alive runs out.
        timings = (
            "seconds after SIGTERM (None = not within 8s): "
            f"responses ended {[after(c.ended_at) for c in opened]}, "
            f"connections closed {[after(c.closed_at) for c in opened]}, server exited {after(exited_at)}"
        )
        assert all(c.eof and c.closed_at - stopped_at <= 3 for c in opened), (
            "streams did not reach EOF within 3s; " + timings + log_tail(server)
        )
        assert exited_at is not None and exited_at - stopped_at <= 5, (
            "the server did not exit within 5s; " + timings + log_tail(server)
        )
    finally:
        if stopper is not None:
            stopper.join(timeout=35)
        pool.close()


# -- 7. a stalled body is answered 408; a closed tab frees its place at once -----------------


def test_a_stalled_body_is_answered_408(serve):
    server = serve(workers=2, body_timeout_seconds="2")
    cookie, token = anonymous_csrf(server.url)
    conn = RawConnection(server.port)
    try:
        headers = json_headers(token=token, cookie=cookie) | {"Content-Length": "200"}
        conn.send(http_request("POST", "/login", headers) + b'{"username": "al')  # then nothing
        started = time.monotonic()
        conn.wait(lambda c: c.ended, timeout=6)
        took = time.monotonic() - started
        assert conn.response.status == 408, f"no 408 within {took:.1f}s: {conn.describe()}" + log_tail(server)
        assert conn.response.json()["error"] == "request_timeout", conn.describe()
        assert 1.5 <= took < 4.5, f"the stalled body was cut after {took:.1f}s (body timeout 2s)"
    finally:
        conn.close()


def test_a_closed_tab_is_noticed_at_once_and_frees_its_place(serve):
    # Cap 2: A and B open, B's tab closes, C opens. Had the server not noticed B go,
    # it would count three streams and close the oldest, A.
    server = serve(workers=2, streams_per_user="2", stream_seconds="60")
    (bob,) = signup_all(server.url, ["bob"], threads=1)
    pool = ConnectionPool()
    try:
        first = pool.add(open_stream(server, bob))
        assert pool.wait(lambda: stream_opened(first), timeout=5), first.describe()
        second = open_stream(server, bob)
        assert second.wait(stream_opened, timeout=5), second.describe()
        second.close()  # the tab is gone; the server must notice without writing to it
        time.sleep(1)
        third = pool.add(open_stream(server, bob))
        assert pool.wait(lambda: stream_opened(third), timeout=5), third.describe()
        pool.pump(2)
        assert not first.ended, "the oldest stream was closed: the closed tab still counted" + log_tail(
            server
        )
        assert not third.ended, third.describe()
    finally:
        pool.close()
