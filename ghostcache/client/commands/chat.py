"""send, history, stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import requests
import sseclient

from .. import contacts
from ..contacts import Contact
from ..context import Context
from ..e2ee_session import Opened
from ..errors import ApiError, ClientError
from ..render import event_line, message_line
from .contacts import contact


def run_send(ctx: Context) -> int:
    """Encrypted when the conversation is end-to-end encrypted, else plain. Plain text is
    never sent to an encrypted conversation (the server would refuse it too)."""
    peer = contact(ctx, ctx.args.username)
    text = ctx.args.text
    if contacts.e2ee_since(ctx.api, peer.user_id):
        sent = ctx.e2ee.send(peer, text)
        ctx.say(f"sent #{sent['id']} to {peer.username} (end-to-end encrypted)")
        return 0
    try:
        sent = ctx.api.post("/chat/send", {"receiver_id": peer.user_id, "message": text})
    except ApiError as exc:
        if exc.code != "e2ee_required":  # it turned encrypted in the meantime
            raise
        sent = ctx.e2ee.send(peer, text)
        ctx.say(f"sent #{sent['id']} to {peer.username} (end-to-end encrypted)")
        return 0
    ctx.say(f"sent #{sent['id']} to {peer.username} (not end-to-end encrypted)")
    return 0


class Shown:
    """Messages shown in this run: GCE1 lets a server replay an envelope, so a `mid`
    seen already is dropped (docs/E2EE.md)."""

    def __init__(self) -> None:
        self.mids: set[str] = set()

    def line(self, ctx: Context, message: dict[str, Any], peer: Contact | None) -> str | None:
        if not message.get("e2ee"):
            return message_line(message, ctx.user_id, None)
        mid = str((message.get("envelope") or {}).get("mid", ""))
        if mid and mid in self.mids:
            return None
        self.mids.add(mid)
        opened = ctx.e2ee.open(message, peer) if peer else Opened(None, "not a contact any more")
        return message_line(message, ctx.user_id, opened)


def run_history(ctx: Context) -> int:
    """GET /chat/<id>: the newest --limit messages, oldest first, decrypted here."""
    peer = contact(ctx, ctx.args.username)
    params = {"limit": ctx.args.limit} | ({"before": ctx.args.before} if ctx.args.before else {})
    page = ctx.api.get(f"/chat/{peer.user_id}", params=params)
    shown = Shown()
    for message in page.get("messages", []):
        line = shown.line(ctx, message, peer)
        if line is not None:
            ctx.say(line)
    return 0


def run_stream(ctx: Context) -> int:
    """Follow GET /chat/stream, reconnecting with Last-Event-ID when the server recycles
    it, until --count messages were shown or --timeout seconds passed."""
    ctx.require_login()
    deadline = time.monotonic() + ctx.args.timeout if ctx.args.timeout else None
    follower = _Follower(ctx, ctx.args.since)
    while not follower.done(ctx.args.count):
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        follower.follow_once(left, ctx.args.count)
        if not follower.done(ctx.args.count):
            time.sleep(0.5 if left is None else max(0.0, min(0.5, deadline - time.monotonic())))  # type: ignore[operator]
    if ctx.args.count and not follower.done(ctx.args.count):
        raise ClientError(
            f"Timed out after {ctx.args.timeout:g} s with {follower.count} of {ctx.args.count} messages."
        )
    return 0


class _Follower:
    """One stream, possibly over several connections."""

    def __init__(self, ctx: Context, since: int | None) -> None:
        self.ctx = ctx
        self.last_id = since
        self.count = 0
        self.shown = Shown()
        self.peers: dict[int, Contact] = contacts.by_user_id(ctx.api)
        self.announced = False

    def done(self, wanted: int | None) -> bool:
        return bool(wanted) and self.count >= (wanted or 0)

    def follow_once(self, left: float | None, wanted: int | None) -> None:
        """One connection, until it ends, times out or enough messages came."""
        headers = {"Accept": "text/event-stream"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = str(self.last_id)
        read_timeout = 30.0 if left is None else max(0.1, min(left, 30.0))  # pings come every 15 s
        response = self.ctx.api.request(
            "GET", "/chat/stream", headers=headers, stream=True, timeout=(10, read_timeout)
        )
        if not self.announced:
            self.ctx.note(f"following {self.ctx.server}/chat/stream (Ctrl-C to stop)")
            self.announced = True
        try:
            for event in sseclient.SSEClient(_Chunks(response)).events():
                self._show(event.event, event.data, event.id)
                if self.done(wanted):
                    return
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
            pass  # a read timeout or a dropped connection: the caller reconnects or stops
        finally:
            response.close()

    def _show(self, kind: str, data: str, event_id: str | None) -> None:
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if kind != "message":
            line = event_line(kind, payload)
            if kind == "contact":
                self.peers = contacts.by_user_id(self.ctx.api)
            if line:
                self.ctx.say(line)
            return
        if event_id and event_id.isdigit():
            self.last_id = int(event_id)
        other = int((payload.get("with") or {}).get("id") or 0)
        if other not in self.peers:
            self.peers = contacts.by_user_id(self.ctx.api)
        line = self.shown.line(self.ctx, payload, self.peers.get(other))
        if line is not None:
            self.count += 1
            self.ctx.say(line)


class _Chunks:
    """The body as it arrives (iter_content(None) yields each chunk at once; the
    response's own iterator waits for 128 bytes), with close() for SSEClient."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self._chunks = response.iter_content(chunk_size=None)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return bytes(next(self._chunks))

    def close(self) -> None:
        self.response.close()
