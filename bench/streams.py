"""Idle streams: what a thousand open chat tabs cost the server, and whether chat stays
fast while they are open and people keep logging in.

Streams are spread over users, at most 10 per user (the server closes a user's oldest
stream beyond 10). Memory is the workers' summed RSS before and after opening them."""

from __future__ import annotations

import math
import queue
import time
from functools import partial

from bench.common import (
    PASSWORD,
    Figure,
    Http,
    Paced,
    StreamHub,
    check,
    count_lost,
    create_pairs,
    create_user,
    create_users,
    percentile,
    send_stamped,
    tally,
    workers_rss_kb,
)
from tests.live import LiveServer

SCENARIO = "idle streams"
STREAMS_PER_USER = 10
LOGINS_PER_SECOND = 10
LOGINS_IN_FLIGHT = 4  # beyond this the server is behind: further ticks are skipped, and counted
SENDS_PER_SECOND = 3  # per user of a pair: a steady trickle, so the figure is latency, not saturation
GRACE_SECONDS = 5.0
FULL_COUNT = 1000  # the count the memory target is set for


def run(server: LiveServer, streams: int, seconds: float, pairs: int = 8) -> list[Figure]:
    """Open `streams` idle streams, then run logins and `pairs` chatting pairs for `seconds`."""
    url = server.url
    label = f"{streams:,} streams" + (
        "" if streams == FULL_COUNT else f" (quick mode; full run {FULL_COUNT:,})"
    )
    users = create_users(url, "idle", math.ceil(streams / STREAMS_PER_USER))
    couples = create_pairs(url, "ip", pairs)
    login_user = create_user(url, "idlelogin")
    hub = StreamHub(url)
    # Both users of a pair talk, each with a stream of their own (which also gets their own
    # messages' copies for other tabs: the streams ignore those).
    talks = [*couples, *((b, a) for a, b in couples)]
    conns = [sender.http(url) for sender, _ in talks]
    login_conns = [login_user.http(url) for _ in range(LOGINS_IN_FLIGHT)]
    free: queue.SimpleQueue[Http] = queue.SimpleQueue()  # one connection per login in flight
    for conn in login_conns:
        free.put(conn)

    def login() -> bool:
        conn = free.get()
        try:
            return conn.ok("POST", "/login", 200, {"username": login_user.name, "password": PASSWORD})
        finally:
            free.put(conn)

    try:
        # The pairs' streams open first, so that the memory delta is the idle streams' alone.
        chat_streams = hub.open([receiver for _, receiver in talks])
        hub.wait_live(chat_streams, timeout=30)
        before_kb = workers_rss_kb(server)
        idle = hub.open([users[i % len(users)] for i in range(streams)], reconnect=False)
        opened = hub.wait_live(idle, timeout=120)
        time.sleep(1)  # let the workers finish whatever the opening burst left behind
        after_kb = workers_rss_kb(server)

        accepted: list[list[int]] = [[] for _ in talks]
        logins = Paced(login, LOGINS_PER_SECOND, seconds, concurrency=LOGINS_IN_FLIGHT)
        senders = [  # staggered: 16 users do not all press Enter in the same millisecond
            Paced(
                partial(send_stamped, conn, receiver, sent), SENDS_PER_SECOND, seconds, phase=i / len(talks)
            )
            for i, (conn, (_, receiver), sent) in enumerate(zip(conns, talks, accepted, strict=True))
        ]
        for load in [logins, *senders]:
            load.start()
        for load in [logins, *senders]:
            load.join()
        lost = count_lost(accepted, chat_streams, GRACE_SECONDS)
        dropped = sum(1 for stream in idle if stream.ended)
    finally:
        for conn in [*conns, *login_conns]:
            conn.close()
        hub.close()

    kb_per_stream = (after_kb - before_kb) / opened if opened else None
    latencies = [ms for stream in chat_streams for ms in stream.latencies_ms]
    p99 = percentile(latencies, 99)
    return [
        Figure(SCENARIO, f"{label}: opened", opened, target=f"{streams:,}", passed=opened == streams),
        Figure(SCENARIO, "workers' RSS before opening them", before_kb / 1024, "MB"),
        Figure(SCENARIO, "workers' RSS with all open", after_kb / 1024, "MB"),
        Figure(
            SCENARIO,
            f"{label}: memory per stream",
            kb_per_stream,
            "KB",
            target="1,000 streams < 64 KB each",
            passed=check(kb_per_stream, "<", 64),
        ),
        Figure(
            SCENARIO,
            f"right-password logins meanwhile, offered {LOGINS_PER_SECOND}/s for {seconds:g} s",
            logins.rate,
            "logins/s",
            detail=f"{logins.skipped} skipped with {LOGINS_IN_FLIGHT} in flight" if logins.skipped else "",
        ),
        Figure(SCENARIO, "failed logins", logins.failed, detail=tally(login_conns)),
        Figure(
            SCENARIO,
            f"{pairs} pairs, each user sending {SENDS_PER_SECOND} msg/s: delivery p50",
            percentile(latencies, 50),
            "ms",
        ),
        Figure(
            SCENARIO,
            f"{pairs} pairs: delivery p99",
            p99,
            "ms",
            target="delivery p99 < 100 ms while logins run",
            passed=check(p99, "<", 100),
        ),
        Figure(
            SCENARIO,
            f"{pairs} pairs: messages lost",
            lost,
            target="0",
            passed=lost == 0,
            detail=tally(chat_streams),
        ),
        Figure(SCENARIO, f"{pairs} pairs: failed sends", sum(s.failed for s in senders), detail=tally(conns)),
        Figure(
            SCENARIO,
            "idle streams dropped by the end",
            dropped,
            target="0",
            passed=dropped == 0,
            detail=tally(idle),
        ),
    ]
