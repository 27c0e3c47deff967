"""The live event stream of one browser tab: wait on the broker, check the
session, fetch what is new. The clock is injected, so tests drive the loop
through hours of pings and rechecks without sleeping; web/ only formats frames."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ..events import Subscription
from . import chat
from .context import Context, Runtime

PING_SECONDS = 15  # keeps proxies from closing a quiet stream, and finds a gone client


@dataclass(frozen=True)
class StreamEvent:
    """One thing to send: a `message` (with its id and data) or a `ping`."""

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
    came through (see chat.stream_batch). The database is read only when the
    broker wakes the stream, and every `stream_recheck_seconds` as a safety net
    (0 = never) in case a wake-up was lost.
    """
    clock, settings = rt.clock, rt.settings
    now = clock.monotonic()
    deadline = now + settings.stream_seconds
    next_ping = now + PING_SECONDS
    recheck = settings.stream_recheck_seconds
    next_check = now + recheck if recheck else float("inf")
    position, woken = chat.StreamPosition(cursor=last_event_id), True
    while sub.closed is None and now < deadline:
        if woken or now >= next_check:
            sub.reset()  # wake-ups from here on mean news after this look
            with contexts() as ctx:
                batch = chat.stream_batch(ctx, sub.user_id, position, version)
            if batch is None:  # its session ended
                return
            next_check = now + recheck if recheck else float("inf")
            for message in batch:
                yield StreamEvent("message", message["id"], message)
        if now >= next_ping:
            next_ping = now + PING_SECONDS
            yield PING
        woken = clock.wait(sub.wait, min(deadline, next_ping, next_check) - clock.monotonic())
        now = clock.monotonic()
