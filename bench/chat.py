"""Chat over Server-Sent Events: N sender/receiver pairs, every receiver holding one open
`GET /chat/stream`, senders posting back to back. Measures what a user feels (delivery
latency from just before the send request to the frame on the stream) and what must never
happen (a message accepted but lost, or shown twice)."""

from __future__ import annotations

from functools import partial

from bench.common import (
    Figure,
    StreamHub,
    check,
    closed_loop,
    count_lost,
    create_pairs,
    percentile,
    send_stamped,
    tally,
)

GRACE_SECONDS = 5.0  # after sending stops, how long an accepted message may still take to show up


def run(
    url: str, ceiling: float | None, pairs: int, seconds: float, max_per_sender: int = 20_000
) -> list[Figure]:
    """Open the receivers' streams, send closed-loop for `seconds` (at most `max_per_sender`
    each), wait out the grace period, then count. The latency and throughput targets are
    those of the 16-pair run; exactly-once holds for every run (docs/API.md)."""
    scenario = f"chat SSE, {pairs} pairs"
    couples = create_pairs(url, f"c{pairs}u", pairs)
    hub = StreamHub(url)
    conns = [sender.http(url) for sender, _ in couples]
    try:
        streams = hub.open([receiver for _, receiver in couples])
        live = hub.wait_live(streams, timeout=30)
        accepted: list[list[int]] = [[] for _ in couples]
        steps = [
            partial(send_stamped, conn, receiver, sent)
            for conn, (_, receiver), sent in zip(conns, couples, accepted, strict=True)
        ]
        result = closed_loop(steps, seconds, max_per_sender)
        lost = count_lost(accepted, streams, GRACE_SECONDS)
    finally:
        for conn in conns:
            conn.close()
        hub.close()

    duplicated = sum(stream.duplicates for stream in streams)
    latencies = [ms for stream in streams for ms in stream.latencies_ms]
    p99 = percentile(latencies, 99)
    ratio = result.rate / ceiling if ceiling else None
    strict = pairs == 16
    return [
        Figure(scenario, "streams open before sending", live, target=f"{pairs}", passed=live == pairs),
        Figure(
            scenario,
            f"send throughput (201s), {seconds:g} s closed loop",
            result.rate,
            "msg/s",
            ratio=ratio,
            ratio_of="ceiling",
            target="≥ 0.5 × ceiling" if strict else "",
            passed=check(ratio, ">=", 0.5) if strict else None,
        ),
        Figure(scenario, "delivery p50", percentile(latencies, 50), "ms"),
        Figure(scenario, "delivery p95", percentile(latencies, 95), "ms"),
        Figure(
            scenario,
            "delivery p99",
            p99,
            "ms",
            target="< 50 ms" if strict else "",
            passed=check(p99, "<", 50) if strict else None,
        ),
        Figure(
            scenario, f"lost (unseen {GRACE_SECONDS:g} s after sending)", lost, target="0", passed=lost == 0
        ),
        Figure(
            scenario, "duplicated (an id twice on a stream)", duplicated, target="0", passed=duplicated == 0
        ),
        Figure(
            scenario,
            "failed sends (not 201)",
            result.failed,
            target="0",
            passed=result.failed == 0,
            detail=tally(conns),
        ),
        Figure(
            scenario,
            "streams ended by the server (reopened unless refused)",
            sum(stream.ended for stream in streams),
            detail=tally(streams),
        ),
    ]
