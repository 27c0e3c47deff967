"""The live event stream of one browser tab: wait on the broker, check the
session, fetch what is new. The clock is injected, so tests drive the loop
through hours of pings and rechecks without sleeping; web/ only formats frames."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ..events import Subscription
from . import chat, conversations
from .context import Context, Runtime

PING_SECONDS = 15  # keeps proxies from closing a quiet stream, and finds a gone client


@dataclass(frozen=True)
class StreamEvent:
    """One thing to send: a `message` (with its id and data), another event (`request`,
    `contact`, `share`, `read`: data but no id, so that resuming stays message-based),
    or a `ping`."""

    kind: str
    id: int | None = None
    data: dict | None = None


PING = StreamEvent("ping")


def follow(
    contexts: Callable[[], AbstractContextManager[Context]],
    rt: Runtime,
    sub: Subscription,
    version: int,
    last_event_id: int | None,
) -> Iterator[StreamEvent]:
    """Yield the user's live events until the stream's lifetime, its session or its
    subscription (the per-user cap, a server stop, a gone client) ends.

    Every new message to or from the user arrives, whichever tab or process it
    came through (see chat.stream_batch), then whatever else is new for them (see
    conversations.news). The database is read only when the broker wakes the
    stream, and every `stream_recheck_seconds` as a safety net (0 = never) in case
    a wake-up was lost.
    """
    clock, settings = rt.clock, rt.settings
    now = clock.monotonic()
    deadline = now + settings.stream_seconds
    next_ping = now + PING_SECONDS
    recheck = settings.stream_recheck_seconds
    next_check = now + recheck if recheck else float("inf")
    position, news, woken = chat.StreamPosition(cursor=last_event_id), conversations.NewsPosition(), True
    while sub.closed is None and now < deadline:
        if woken or now >= next_check:
            sub.reset()  # wake-ups from here on mean news after this look
            events = _look(contexts, sub.user_id, version, position, news)
            if events is None:  # its session ended
                return
            next_check = now + recheck if recheck else float("inf")
            yield from events
        if now >= next_ping:
            next_ping = now + PING_SECONDS
            yield PING
        woken = clock.wait(sub.wait, min(deadline, next_ping, next_check) - clock.monotonic())
        now = clock.monotonic()


def _look(
    contexts: Callable[[], AbstractContextManager[Context]],
    me: int,
    version: int,
    position: chat.StreamPosition,
    news: conversations.NewsPosition,
) -> list[StreamEvent] | None:
    """One look: new messages first, then the other events (whose unread counts assume
    the messages before them were shown); None once the session has ended."""
    with contexts() as ctx:
        batch = chat.stream_batch(ctx, me, position, version)
        if batch is None:
            return None
        others = conversations.news(ctx, me, news, batch.marks, position.cursor or 0)
    events = [StreamEvent("message", message["id"], message) for message in batch.messages]
    return events + [StreamEvent(kind, None, data) for kind, data in others]
