"""Ceiling: requests/s of the cheapest authenticated route, the yardstick for every other rate.

`GET /search` without `q` does the session check and answers `{"query": "", "results": []}`:
all the per-request cost of the stack with no work of its own. Other throughput figures
are reported as a ratio to this one, measured on the same server in the same run, so they
say something on any machine."""

from __future__ import annotations

from functools import partial

from bench.common import Figure, Http, User, closed_loop, tally

SCENARIO = "ceiling"


def run(url: str, user: User, seconds: float, clients: int = 16) -> list[Figure]:
    """Closed loop of `clients` keep-alive connections for `seconds`; the first figure is the ceiling."""
    conns = [user.http(url) for _ in range(clients)]
    try:
        steps = [partial(Http.ok, conn, "GET", "/search", 200) for conn in conns]
        result = closed_loop(steps, seconds, max_each=1_000_000)
    finally:
        for conn in conns:
            conn.close()
    name = f"GET /search (empty), {clients} clients, {seconds:g} s"
    return [
        Figure(SCENARIO, name, result.rate, "req/s", ratio_of="(the ceiling)"),
        Figure(
            SCENARIO,
            "failed requests (not 200)",
            result.failed,
            target="0",
            passed=result.failed == 0,
            detail=tally(conns),
        ),
    ]
