"""A signed-in page during a login storm: Argon2 is deliberately slow, and a flood of
wrong-password logins must not make the site slow for people already signed in."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from bench.common import Figure, Http, User, closed_loop, create_user, percentile, tally

SCENARIO = "login storm"
STORM_THREADS = 4


def _page_latencies(conn: Http, seconds: float, max_count: int = 100_000) -> tuple[list[float], int]:
    """Sequential `GET /files` for `seconds`: (latencies in ms of the 200s, number of failures)."""
    latencies: list[float] = []
    failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(latencies) + failed < max_count:
        started = time.perf_counter()
        if conn.ok("GET", "/files", 200):
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            failed += 1
    return latencies, failed


def run(url: str, reader: User, ceiling: float | None, seconds: float) -> list[Figure]:
    """`GET /files` latency alone, then while STORM_THREADS send wrong-password logins."""
    victim = create_user(url, "stormvictim")
    page = reader.http(url)
    storm = [victim.http(url) for _ in range(STORM_THREADS)]
    wrong = {"username": victim.name, "password": "not the password"}
    try:
        alone, alone_failed = _page_latencies(page, seconds)
        with ThreadPoolExecutor(1) as pool:
            steps = [partial(conn.ok, "POST", "/login", 401, wrong) for conn in storm]
            attack = pool.submit(closed_loop, steps, seconds + 1, 1_000_000)
            time.sleep(0.5)  # the storm is under way before the first measured request
            during, during_failed = _page_latencies(page, seconds)
            logins = attack.result()
    finally:
        for conn in [page, *storm]:
            conn.close()

    figures = [Figure(SCENARIO, f"GET /files alone: requests in {seconds:g} s, one client", len(alone))]
    for q in (50, 99):
        quiet, loud = percentile(alone, q), percentile(during, q)
        figures += [
            Figure(SCENARIO, f"GET /files alone: p{q}", quiet, "ms"),
            Figure(
                SCENARIO,
                f"GET /files during the storm: p{q}",
                loud,
                "ms",
                ratio=loud / quiet if quiet and loud is not None else None,
                ratio_of=f"p{q} alone",
            ),
        ]
    failed = alone_failed + during_failed
    return figures + [
        Figure(SCENARIO, "GET /files during the storm: requests", len(during)),
        Figure(SCENARIO, "GET /files failures", failed, target="0", passed=failed == 0, detail=tally([page])),
        Figure(
            SCENARIO,
            f"wrong-password logins, {STORM_THREADS} threads",
            logins.rate,
            "logins/s",
            ratio=logins.rate / ceiling if ceiling else None,
            ratio_of="ceiling",
        ),
        Figure(SCENARIO, "storm logins not answered 401", logins.failed, detail=tally(storm)),
    ]
