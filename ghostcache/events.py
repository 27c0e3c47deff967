"""The event Broker: wakes a user's open streams at once, whichever process or
machine the news came through, and keeps each user to a few open streams.

Events are small dicts: ``{"t": "wake", "u": user}`` (something new for the
user: a message, a session that ended), ``{"t": "open"|"close", "u": user, "s":
stream, "at": seconds}`` (stream bookkeeping for the per-user cap) and
``{"t": "resync"}`` (wake everyone: the transport may have missed events).
Events carry no content: a woken stream reads what is new from the database,
so a lost event delays a message (until the stream's recheck) but never loses it.

A Broker is a Hub (this process's open streams) plus a Transport that carries
events to the other processes: Unix datagram sockets on one machine
(`LocalTransport`) or Redis pub/sub across machines (`RedisTransport`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)
Deliver = Callable[[dict], None]


class Subscription:
    """One open stream's inbox: woken by its user's events, closed by the cap,
    a shutdown, or its client going away."""

    def __init__(self, user_id: int, stream_id: str, opened_at: float) -> None:
        self.user_id, self.stream_id, self.opened_at = user_id, stream_id, opened_at
        self.closed: str | None = None  # why it was closed, once it is
        self._event = threading.Event()

    def reset(self) -> None:
        """Forget earlier wake-ups: call just before looking for what is new."""
        self._event.clear()

    def wait(self, timeout: float) -> bool:
        """Block until woken (or closed) or `timeout` seconds pass; True if woken."""
        return self._event.wait(max(timeout, 0))

    def wake(self) -> None:
        self._event.set()

    def close(self, reason: str) -> None:
        self.closed = self.closed or reason
        self._event.set()


class Hub:
    """This process's subscriptions, and every process's open streams per user
    (learnt from open/close events) so that all agree which is the oldest."""

    def __init__(self, streams_per_user: int, stream_seconds: int) -> None:
        self.cap = streams_per_user
        # An entry whose close event was lost (a killed process) is forgotten once
        # that stream would have ended by its lifetime anyway.
        self.max_age = stream_seconds + 60
        self._local: dict[int, dict[str, Subscription]] = {}
        self._open: dict[int, dict[str, float]] = {}
        self._lock = threading.Lock()

    def add(self, sub: Subscription) -> None:
        with self._lock:
            self._local.setdefault(sub.user_id, {})[sub.stream_id] = sub

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            mine = self._local.get(sub.user_id, {})
            mine.pop(sub.stream_id, None)
            if not mine:
                self._local.pop(sub.user_id, None)

    def deliver(self, event: dict) -> None:
        """Apply one event from this process or another."""
        kind, user = event.get("t"), event.get("u")
        if kind == "resync":
            self.close_or_wake_all(None)
        elif not isinstance(user, int):
            return
        elif kind == "wake":
            for sub in self._subs(user):
                sub.wake()
        elif kind == "open":
            self._opened(user, str(event.get("s")), float(event.get("at", 0)))
        elif kind == "close":
            with self._lock:
                self._open.get(user, {}).pop(str(event.get("s")), None)

    def close_or_wake_all(self, reason: str | None) -> None:
        """Close every local subscription (reason given) or wake them all."""
        with self._lock:
            subs = [s for per_user in self._local.values() for s in per_user.values()]
        for sub in subs:
            sub.close(reason) if reason else sub.wake()

    def _subs(self, user: int) -> list[Subscription]:
        with self._lock:
            return list(self._local.get(user, {}).values())

    def _opened(self, user: int, stream: str, at: float) -> None:
        with self._lock:
            streams = self._open.setdefault(user, {})
            streams[stream] = at
            for old in [s for s, t in streams.items() if t < at - self.max_age]:
                del streams[old]
            excess = sorted(streams, key=lambda s: (streams[s], s))[: max(0, len(streams) - self.cap)]
            for old in excess:
                del streams[old]
            local = self._local.get(user, {})
            doomed = [local[s] for s in excess if s in local]
        for sub in doomed:
            sub.close("replaced by a newer stream")


class Transport(Protocol):
    def start(self, deliver: Deliver) -> None:
        """Begin receiving other processes' events."""

    def send(self, event: dict) -> None:
        """Carry an event to every other process (never back to this one)."""


class Broker:
    """Publish and subscribe for live events; local delivery first, then the transport."""

    def __init__(self, transport: Transport | None, streams_per_user: int, stream_seconds: int) -> None:
        self.hub = Hub(streams_per_user, stream_seconds)
        self._transport = transport
        self._started = False

    def start(self) -> None:
        """Connect to the other processes (server processes only; tests stay local)."""
        if self._transport is not None and not self._started:
            self._started = True
            self._transport.start(self.hub.deliver)

    def publish(self, user_id: int) -> None:
        """Something new waits for user_id: wake their streams everywhere."""
        self._emit({"t": "wake", "u": user_id})

    def subscribe(self, user_id: int) -> Subscription:
        """Register a new stream; the user's oldest streams beyond the cap are closed."""
        sub = Subscription(user_id, secrets.token_hex(8), time.time())
        self.hub.add(sub)
        self._emit({"t": "open", "u": user_id, "s": sub.stream_id, "at": sub.opened_at})
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.hub.remove(sub)
        self._emit({"t": "close", "u": sub.user_id, "s": sub.stream_id})

    def close_all(self, reason: str) -> None:
        """End every stream of this process now (a stop or reload: browsers reconnect)."""
        self.hub.close_or_wake_all(reason)

    def _emit(self, event: dict) -> None:
        self.hub.deliver(event)
        if self._started and self._transport is not None:
            self._transport.send(event)


def _encode(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def _run_forever(name: str, loop: Callable[[], None]) -> None:
    threading.Thread(target=loop, name=name, daemon=True).start()


class _Outbox:
    """`send` only queues: one sender thread (a greenlet under gevent) ships whatever
    has queued up as one batch, so a burst of a thousand events costs a few writes,
    no request ever waits on a busy peer or an unreachable Redis, and no two
    greenlets ever use one socket."""

    MAX_BATCH = 60_000  # bytes of JSON per datagram or message
    MAX_QUEUED = 50_000  # beyond this, events are dropped (streams catch up at their recheck)

    def __init__(self) -> None:
        self._outbox: list[dict] = []
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._running = False

    def send(self, event: dict) -> None:
        if not self._running:
            return
        with self._lock:
            if len(self._outbox) >= self.MAX_QUEUED:
                log.warning("event outbox full; dropping an event (streams catch up at their recheck)")
                return
            self._outbox.append(event)
        self._ready.set()

    def _start_shipping(self) -> None:
        self._running = True
        _run_forever("ghostcache-events-out", self._ship_forever)

    def _ship_forever(self) -> None:
        while True:
            self._ready.wait()
            with self._lock:
                events, self._outbox = self._outbox, []
                self._ready.clear()
            for batch in _batches(events, self.MAX_BATCH):
                self._ship(batch)

    def _ship(self, batch: bytes) -> None:
        raise NotImplementedError


class LocalTransport(_Outbox):
    """The other server processes on this machine, through Unix datagram sockets
    in one private folder (one socket per process; no extra service)."""

    SEND_TIMEOUT = 1.0

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self._path: Path | None = None
        self._out: socket.socket | None = None
        self._peers: list[str] = []
        self._peers_mtime = -1.0

    @staticmethod
    def folder_for(data_dir: Path) -> Path:
        """`<data dir>/run`, or a private temporary folder when that path is too long
        for a socket address (about 100 bytes)."""
        folder = data_dir.resolve() / "run"
        if len(str(folder)) <= 80:
            return folder
        digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"ghostcache-{os.getuid()}-{digest}"

    def start(self, deliver: Deliver) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.folder.stat().st_uid != os.getuid():
            raise RuntimeError(f"{self.folder} belongs to another user; refusing to use it")
        os.chmod(self.folder, 0o700)
        self._path = self.folder / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        receiver.bind(str(self._path))
        os.chmod(self._path, 0o600)  # only this user's processes may wake our streams

        def receive() -> None:
            while True:
                for event in _decode_batch(receiver.recv(65536)):
                    deliver(event)

        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._out.settimeout(self.SEND_TIMEOUT)
        _run_forever("ghostcache-events-in", receive)
        self._start_shipping()

    def _ship(self, batch: bytes) -> None:
        assert self._out is not None
        for peer in self._peer_paths():
            try:
                self._out.sendto(batch, peer)
            except (ConnectionRefusedError, FileNotFoundError):  # that process has ended
                Path(peer).unlink(missing_ok=True)
            except OSError as exc:  # its queue stayed full: it catches up at its recheck
                log.warning("events to another worker dropped (%s)", exc.__class__.__name__)

    def _peer_paths(self) -> list[str]:
        """The other processes' sockets, re-listed only when the folder changed."""
        try:
            mtime = self.folder.stat().st_mtime
        except FileNotFoundError:
            return []
        if mtime != self._peers_mtime:
            self._peers_mtime = mtime
            own = str(self._path)
            self._peers = [str(p) for p in self.folder.glob("*.sock") if str(p) != own]
        return self._peers


def _batches(events: list[dict], limit: int) -> Iterator[bytes]:
    """JSON arrays of events, each encoded under `limit` bytes."""
    batch: list[bytes] = []
    size = 2
    for event in events:
        encoded = _encode(event)
        if batch and size + len(encoded) + 1 > limit:
            yield b"[" + b",".join(batch) + b"]"
            batch, size = [], 2
        batch.append(encoded)
        size += len(encoded) + 1
    if batch:
        yield b"[" + b",".join(batch) + b"]"


def _decode_batch(data: bytes) -> list[dict]:
    try:
        events = json.loads(data)
    except ValueError:
        return []
    return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []


class RedisTransport(_Outbox):
    """Processes on any machine, through one Redis pub/sub channel. While Redis is
    unreachable, events are dropped (loudly logged) and streams fall back to their
    database recheck; on reconnecting, every local stream is woken to catch up."""

    CHANNEL = "ghostcache:events"

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._origin = secrets.token_hex(8).encode()
        self._client: Any = None
        self._failing = False

    def start(self, deliver: Deliver) -> None:
        import redis

        self._client = redis.Redis.from_url(self._url, socket_timeout=5, socket_connect_timeout=5)

        def receive() -> None:
            delay = 0.5
            while True:
                try:
                    self._listen(redis.Redis.from_url(self._url, socket_connect_timeout=5), deliver)
                except (redis.RedisError, OSError) as exc:
                    log.error(
                        "event bus (Redis) unreachable: %s; streams use their database "
                        "recheck until it is back",
                        exc,
                    )
                time.sleep(delay)
                delay = min(delay * 2, 10)

        _run_forever("ghostcache-redis-events", receive)
        self._start_shipping()

    def _listen(self, client: Any, deliver: Deliver) -> None:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.CHANNEL)
        log.info("event bus (Redis) connected")
        deliver({"t": "resync"})  # anything published while we were away
        for message in pubsub.listen():
            origin, _, batch = (message.get("data") or b"").partition(b" ")
            if origin != self._origin:
                for event in _decode_batch(batch):
                    deliver(event)

    def _ship(self, batch: bytes) -> None:
        import redis

        try:
            self._client.publish(self.CHANNEL, self._origin + b" " + batch)
            if self._failing:
                self._failing = False
                log.warning("event bus (Redis) publishing again")
        except (redis.RedisError, OSError) as exc:
            if not self._failing:
                log.error(
                    "event bus (Redis) publish failed: %s; streams elsewhere see new messages "
                    "at their database recheck",
                    exc,
                )
            self._failing = True


def broker_for(settings) -> Broker:
    """The Broker a deployment needs: Redis when configured, else this machine only."""
    transport: Transport = (
        RedisTransport(settings.redis_url)
        if settings.redis_url
        else LocalTransport(LocalTransport.folder_for(settings.data_dir))
    )
    return Broker(transport, settings.streams_per_user, settings.stream_seconds)
