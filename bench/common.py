"""Shared benchmark helpers: the server, users, a lean HTTP client, a raw-socket SSE
reader, load loops, percentiles, worker memory and the results table.

The client shares two cores with the server, so everything here is built to cost
the client as little as possible: keep-alive `http.client` connections instead of
`requests`, and one thread with `selectors` for every open event stream.
"""

from __future__ import annotations

import http.client
import json
import math
import queue
import resource
import selectors
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.live import LiveServer

PASSWORD = "bench password 1"
DPASS = "bench destroy 1"
STAMP = "t="  # message text starts with t=<perf_counter_ns> taken just before the send request


# --- the server ------------------------------------------------------------------------------------


def raise_nofile_limit() -> None:
    """A thousand streams plus their server side need more descriptors than the usual soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextmanager
def running_server(workers: int = 2, **settings: str) -> Iterator[LiveServer]:
    """A fresh server with its own data dir on 127.0.0.1, always stopped on the way out.

    Rate limits off (LiveServer), 600 s streams, otherwise the server's defaults (real Argon2
    cost). The server log's tail is printed if anything fails: the data dir is deleted after."""
    settings = {"host": "127.0.0.1", "stream_seconds": "600", **settings}  # loopback, whatever the env says
    with tempfile.TemporaryDirectory(prefix="ghostcache-bench-") as tmp:
        server = LiveServer(Path(tmp) / "data", workers, **settings)
        try:
            yield server.start()
        except BaseException:
            print(f"--- server log tail ({server.log_path}) ---\n{server.log()[-4000:]}", file=sys.stderr)
            raise
        finally:
            try:
                server.stop()
            except Exception:  # a stuck graceful stop must not leave the server behind
                server.kill()


def worker_pids(server: LiveServer) -> list[int]:
    """The gunicorn master's children (its worker processes), from every thread of the master."""
    assert server.process is not None, "server not started"
    children: set[int] = set()
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        children.update(int(pid) for pid in (task / "children").read_text().split())
    return sorted(children)


def proc_status_kb(pid: int, key: str) -> int:
    """One kB figure from /proc/<pid>/status, e.g. VmRSS (resident now) or VmHWM (peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak_rss(pid: int) -> None:
    """Restart VmHWM from the current RSS, so the next peak is this step's alone (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def workers_rss_kb(server: LiveServer) -> int:
    """Resident memory of all workers together (the master holds no connections)."""
    return sum(proc_status_kb(pid, "VmRSS") for pid in worker_pids(server))


# --- HTTP --------------------------------------------------------------------------------------------


class Http:
    """One keep-alive HTTP/1.1 connection sending a fixed Cookie and CSRF token, as JSON.

    Much cheaper per request than `requests`; not thread-safe (one per thread)."""

    def __init__(self, url: str, cookie: str = "", token: str = "") -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        self.headers = {"Accept": "application/json", "Cookie": cookie, "X-CSRFToken": token}
        self.set_cookie = ""  # the session cookie the last answer set, if any
        self.errors: Counter[str] = Counter()  # unexpected answers, by status or exception name

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """Send one request; returns (status, JSON body or {}), status 0 if the connection broke."""
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            raw = response.read()
            is_json = response.getheader("Content-Type", "").startswith("application/json")
            answer = json.loads(raw) if is_json and raw else {}
        except (http.client.HTTPException, OSError, ValueError) as exc:
            self.conn.close()  # the next request reconnects
            self.errors[type(exc).__name__] += 1
            return 0, {}
        for value in response.headers.get_all("Set-Cookie") or []:
            self.set_cookie = value.split(";", 1)[0]
        return response.status, answer

    def call(self, method: str, path: str, expect: int, body: dict | None = None) -> dict | None:
        """The JSON answer if the status is `expect`; otherwise None, and the status is tallied."""
        status, answer = self.request(method, path, body)
        if status == expect:
            return answer
        if status:
            self.errors[f"HTTP {status}"] += 1
        return None

    def ok(self, method: str, path: str, expect: int, body: dict | None = None) -> bool:
        """True if the request got the `expect` status."""
        return self.call(method, path, expect, body) is not None

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True)
class User:
    """A registered, logged-in user: enough to act as them from any connection."""

    name: str
    id: int
    cookie: str
    token: str

    def http(self, url: str) -> Http:
        return Http(url, self.cookie, self.token)


def create_user(url: str, name: str) -> User:
    """Register and log in (two real Argon2 hashes on the server)."""
    http_ = Http(url)
    try:
        _, body = http_.request("GET", "/csrf")
        http_.headers["Cookie"], http_.headers["X-CSRFToken"] = http_.set_cookie, body["csrf_token"]
        creds = {"username": name, "password": PASSWORD, "d_pass": DPASS}
        status, body = http_.request("POST", "/register", creds)
        if status != 201:
            raise RuntimeError(f"register {name}: {status} {body}")
        status, body = http_.request("POST", "/login", creds)
        if status != 200:
            raise RuntimeError(f"login {name}: {status} {body}")
        return User(name, body["id"], http_.set_cookie, body["csrf_token"])
    finally:
        http_.close()


def create_users(url: str, prefix: str, count: int, parallel: int = 8) -> list[User]:
    """`count` users named prefix0000, prefix0001, ... registered in parallel (Argon2 dominates)."""
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda i: create_user(url, f"{prefix}{i:04d}"), range(count)))


def connect(url: str, a: User, b: User) -> None:
    """An accepted connection between a and b (accepting generates RSA keys: not free either)."""
    ha, hb = a.http(url), b.http(url)
    try:
        status, body = ha.request("POST", "/connect", {"username": b.name})
        if status != 201:
            raise RuntimeError(f"connect {a.name}->{b.name}: {status} {body}")
        status, body = hb.request("POST", f"/connect/accept/{body['id']}")
        if status != 200:
            raise RuntimeError(f"accept {a.name}->{b.name}: {status} {body}")
    finally:
        ha.close()
        hb.close()


def create_pairs(url: str, prefix: str, count: int, parallel: int = 8) -> list[tuple[User, User]]:
    """`count` (sender, receiver) pairs, each with an accepted connection."""
    users = create_users(url, prefix, 2 * count, parallel)
    pairs = list(zip(users[0::2], users[1::2], strict=True))
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda pair: connect(url, *pair), pairs))
    return pairs


def send_stamped(conn: Http, receiver: User, accepted: list[int]) -> bool:
    """Send one message carrying its send time; on 201 append its id to `accepted`."""
    text = f"{STAMP}{time.perf_counter_ns()} bench"
    answer = conn.call("POST", "/chat/send", 201, {"receiver_id": receiver.id, "message": text})
    if answer is None:
        return False
    accepted.append(answer["id"])
    return True


def tally(sources: Iterable[Http | Stream]) -> str:
    """What went wrong on these connections or streams, e.g. 'HTTP 500 ×3, RemoteDisconnected ×1'."""
    total = sum((source.errors for source in sources), Counter())
    return ", ".join(f"{what} ×{count}" for what, count in total.most_common())


# --- load loops ---------------------------------------------------------------------------------------


@dataclass
class LoopResult:
    ok: int
    failed: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def closed_loop(steps: Sequence[Callable[[], bool]], seconds: float, max_each: int) -> LoopResult:
    """Run each step function in its own thread, back to back, until `seconds` pass or it
    has run `max_each` times; a step returns True on success."""
    ok, failed = [0] * len(steps), [0] * len(steps)
    deadline = time.monotonic() + seconds

    def run(slot: int) -> None:
        for _ in range(max_each):
            if time.monotonic() >= deadline:
                return
            if steps[slot]():
                ok[slot] += 1
            else:
                failed[slot] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(slot,), daemon=True) for slot in range(len(steps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)  # a request in flight at the deadline may take a while
    return LoopResult(sum(ok), sum(failed), time.monotonic() - started)


class Paced:
    """Starts `step` `rate` times a second for `seconds` from a background thread, at most
    `concurrency` at once. Open loop: a slow server does not slow the ticks; a tick that finds
    every slot busy is skipped and counted (the server is falling behind)."""

    def __init__(
        self, step: Callable[[], bool], rate: float, seconds: float, concurrency: int = 1, phase: float = 0.0
    ) -> None:
        """`phase` (0 to 1) shifts the ticks by that part of an interval, so that several
        paced loads spread out as independent users would, instead of firing together."""
        self.step, self.interval, self.duration = step, 1 / rate, seconds
        self.phase = phase
        self.ok = self.failed = self.skipped = 0
        self._slots = threading.Semaphore(concurrency)
        self._pool = ThreadPoolExecutor(concurrency)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        """Wait for the last tick and for the steps still in flight."""
        self._thread.join(self.duration + 60)
        self._pool.shutdown(wait=True)

    @property
    def rate(self) -> float:
        return self.ok / self.duration

    def _tick(self) -> None:
        started = time.monotonic()
        for tick in range(round(self.duration / self.interval)):
            time.sleep(max(0.0, started + (tick + self.phase) * self.interval - time.monotonic()))
            if self._slots.acquire(blocking=False):
                self._pool.submit(self._one)
            else:
                self.skipped += 1

    def _one(self) -> None:
        try:
            good = self.step()
        finally:
            self._slots.release()
        with self._lock:
            if good:
                self.ok += 1
            else:
                self.failed += 1


# --- Server-Sent Events on raw sockets -----------------------------------------------------------------


class Stream:
    """One user's `GET /chat/stream`, read by a StreamHub. Counts only messages *to* this user
    (the server also echoes a user's own sent messages to their other tabs)."""

    MAX_RECONNECTS = 20

    def __init__(self, user: User, reconnect: bool) -> None:
        self.user = user
        self.reconnect = reconnect  # reopen with Last-Event-ID when the server ends it
        self.status = 0  # HTTP status of the current connection; 0 until its headers arrive
        self.live = False  # body bytes arrived: the server is holding the stream open
        self.ended = 0  # times the connection closed under us
        self.last_id: int | None = None
        self.seen: set[int] = set()
        self.duplicates = 0
        self.latencies_ms: list[float] = []
        self.errors: Counter[str] = Counter()  # why it closed or failed to open
        self.sock: socket.socket | None = None
        self._raw = b""  # bytes of headers or chunk framing not parsed yet
        self._text = b""  # decoded body not yet split into events
        self._chunked = False
        self._chunk_left = 0

    def request(self, host: str) -> bytes:
        last = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id is not None else ""
        return (
            f"GET /chat/stream HTTP/1.1\r\nHost: {host}\r\nCookie: {self.user.cookie}\r\n"
            f"Accept: text/event-stream\r\nCache-Control: no-cache\r\n{last}\r\n"
        ).encode()

    def reset(self) -> None:
        self.status, self.live = 0, False
        self._raw = self._text = b""
        self._chunked, self._chunk_left = False, 0

    def feed(self, data: bytes) -> bool:
        """Take bytes from the socket; returns False once the response is complete."""
        self._raw += data
        if not self.status:
            head, sep, rest = self._raw.partition(b"\r\n\r\n")
            if not sep:
                return True
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            headers = {
                k.strip().lower(): v.strip().lower() for k, _, v in (x.partition(":") for x in lines[1:])
            }
            self._chunked = "chunked" in headers.get("transfer-encoding", "")
            self._raw = rest
            if self.status != 200:
                self.errors[f"HTTP {self.status}"] += 1
                return False
        body, complete = self._dechunk() if self._chunked else (self._raw, False)
        if not self._chunked:
            self._raw = b""
        if body:
            self.live = True
            self._text += body
            while (end := self._text.find(b"\n\n")) >= 0:
                self._event(self._text[:end])
                self._text = self._text[end + 2 :]
        return not complete

    def _dechunk(self) -> tuple[bytes, bool]:
        body = b""
        while self._raw:
            if self._chunk_left == 0:
                self._raw = self._raw.lstrip(b"\r\n")  # the CRLF that closes the previous chunk
                end = self._raw.find(b"\r\n")
                if end < 0:
                    break
                size = int(self._raw[:end].split(b";")[0], 16)
                self._raw = self._raw[end + 2 :]
                if size == 0:
                    return body, True
                self._chunk_left = size
            piece = self._raw[: self._chunk_left]
            self._raw = self._raw[len(piece) :]
            self._chunk_left -= len(piece)
            body += piece
        return body, False

    def _event(self, block: bytes) -> None:
        fields: dict[bytes, bytes] = {}
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if not line or line.startswith(b":"):
                continue  # a comment (keep-alive ping)
            name, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if name == b"data":
                data.append(value)
            else:
                fields[name] = value
        if b"id" in fields and fields[b"id"].isdigit():
            self.last_id = int(fields[b"id"])
        if fields.get(b"event", b"message") != b"message" or not data:
            return
        message = json.loads(b"\n".join(data))
        if message["receiver_id"] != self.user.id:
            return  # a copy of a message this user sent, meant for their other tabs
        if message["id"] in self.seen:
            self.duplicates += 1
            return
        self.seen.add(message["id"])
        text = message["message"]
        if text.startswith(STAMP):
            sent_ns = int(text[len(STAMP) :].split(" ", 1)[0])
            self.latencies_ms.append((time.perf_counter_ns() - sent_ns) / 1e6)


class StreamHub:
    """Reads any number of event streams from a single thread with `selectors`, so a thousand
    idle streams cost the client next to nothing and the server is what gets measured."""

    CONNECTS_PER_ROUND = 50  # interleave opening many streams with reading the open ones

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.host = parts.netloc
        self._selector = selectors.DefaultSelector()
        self._pending: queue.SimpleQueue[Stream] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def open(self, users: list[User], reconnect: bool = True) -> list[Stream]:
        """One new stream per user (repeat a user for several tabs); opened by the hub thread."""
        streams = [Stream(user, reconnect) for user in users]
        for stream in streams:
            self._pending.put(stream)
        return streams

    @staticmethod
    def wait_live(streams: list[Stream], timeout: float) -> int:
        """Wait until every stream is live (or timeout); returns how many are."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(s.live for s in streams):
            time.sleep(0.05)
        return sum(s.live for s in streams)

    def close(self) -> None:
        """Stop reading and close every stream."""
        self._stopping.set()
        self._thread.join(10)
        for key in list(self._selector.get_map().values()):
            key.data.sock.close()
        self._selector.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            for _ in range(self.CONNECTS_PER_ROUND):
                try:
                    self._connect(self._pending.get_nowait())
                except queue.Empty:
                    break
            for key, _ in self._selector.select(timeout=0.05):
                self._read(key.data)

    def _connect(self, stream: Stream) -> None:
        stream.reset()
        try:
            sock = socket.create_connection(self.address, timeout=10)
            sock.sendall(stream.request(self.host))
        except OSError as exc:
            stream.errors[f"connect: {type(exc).__name__}"] += 1
            return
        sock.setblocking(False)
        stream.sock = sock
        self._selector.register(sock, selectors.EVENT_READ, stream)

    def _read(self, stream: Stream) -> None:
        assert stream.sock is not None
        try:
            data = stream.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            stream.errors[f"recv: {type(exc).__name__}"] += 1
            data = b""
        try:
            if data and stream.feed(data):
                return
        except Exception as exc:  # a frame we cannot read must not stop the hub for every stream
            stream.errors[f"unreadable: {exc!r}"[:120]] += 1
            stream.status = 0  # not worth reconnecting
        # The server ended the response (or the connection): note it, reopen if asked to.
        self._selector.unregister(stream.sock)
        stream.sock.close()
        stream.ended += 1
        was_ok = stream.status == 200
        stream.live = False
        if stream.reconnect and was_ok and stream.ended <= Stream.MAX_RECONNECTS:
            self._connect(stream)


def count_lost(accepted: list[list[int]], streams: list[Stream], grace: float) -> int:
    """Wait up to `grace` seconds for every accepted id to show on its receiver's stream
    (accepted[i] were sent to streams[i]'s user); returns how many never did."""
    pairs = list(zip(accepted, streams, strict=True))
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not all(set(ids) <= stream.seen for ids, stream in pairs):
        time.sleep(0.05)
    return sum(len(set(ids) - stream.seen) for ids, stream in pairs)


# --- figures and the results table ---------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), interpolating between neighbours; None when there is no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Figure:
    """One measured number: a row of the results table."""

    scenario: str
    name: str
    value: float | None
    unit: str = ""
    ratio: float | None = None  # value / reference (the ceiling, or the baseline named in ratio_of)
    ratio_of: str = ""
    target: str = ""
    passed: bool | None = None  # None: no target
    detail: str = ""  # e.g. what the failures were


def check(value: float | None, op: str, limit: float) -> bool:
    """Does a figure meet its target (op '<' or '>=')? A missing figure does not."""
    if value is None:
        return False
    return value < limit if op == "<" else value >= limit


@dataclass
class Report:
    """A whole run: what was run (mode, plan), every figure, and notes."""

    mode: str
    started: str
    plan: dict = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def markdown_table(report: Report) -> str:
    """The results as a Markdown table, one row per figure."""
    rows = [
        f"# GhostCache benchmark ({report.mode} run, {report.started})",
        "",
        "| scenario | figure | value | ceiling/ratio | target | pass/fail |",
        "|---|---|---|---|---|---|",
    ]
    for f in report.figures:
        ratio = f"{f.ratio:.2f} × {f.ratio_of}" if f.ratio is not None else f.ratio_of
        verdict = {True: "pass", False: "**FAIL**", None: ""}[f.passed]
        value = f"{_fmt(f.value)} {f.unit}".strip()
        name = f"{f.name} ({f.detail})" if f.detail else f.name
        rows.append(f"| {f.scenario} | {name} | {value} | {ratio} | {f.target} | {verdict} |")
    rows += [""] + [f"- {note}" for note in report.notes]
    return "\n".join(rows) + "\n"


def write_results(report: Report, folder: Path) -> str:
    """Write latest.json and latest.md into folder; returns the Markdown."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    table = markdown_table(report)
    (folder / "latest.md").write_text(table)
    return table
