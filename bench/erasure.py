"""What erasing a destroyed account costs everyone else.

Every deletion of user data ends with a truncating WAL checkpoint (docs/SECURITY.md §4),
which holds back writers while it runs. Senders post messages back to back in three
phases of equal length on one server: nothing else happening; one wrong-password login
a second (the same two Argon2 runs as a destruction login, so the CPU they take is the
same); one destruction-password login a second, each deleting an account with a
conversation of its own. The third against the second isolates what deletion and the
checkpoint add to a message's send time."""

from __future__ import annotations

import threading
import time
from functools import partial

from bench.common import DPASS, Figure, Http, User, check, closed_loop, create_pairs, percentile

SENDERS = 8
VICTIM_MESSAGES = 20  # each victim's conversation, so that its deletion frees real pages


def run(url: str, seconds: float) -> list[Figure]:
    """Three phases of `seconds` each; figures are the third phase's ratios to the second."""
    scenario = "erasure: sends while accounts are destroyed"
    couples = create_pairs(url, "e", SENDERS)
    victims = _victims(url, 2 * int(seconds) + 4)  # one a second in each of two phases
    phases = {
        "quiet": None,
        "wrong-password logins 1/s": partial(_login, url, "not the password at all"),
        "destruction logins 1/s": partial(_login, url, DPASS),
    }
    results = {name: _phase(url, couples, seconds, action, victims) for name, action in phases.items()}
    figures = []
    base = results["wrong-password logins 1/s"]
    for name, (rate, p50, p99) in results.items():
        figures += [
            Figure(scenario, f"send throughput, {name}", rate, "msg/s"),
            Figure(scenario, f"send p50, {name}", p50, "ms"),
            Figure(scenario, f"send p99, {name}", p99, "ms"),
        ]
    rate, _, p99 = results["destruction logins 1/s"]
    ratio = rate / base[0] if base[0] else None
    figures += [
        Figure(
            scenario,
            "throughput with destructions / with wrong logins",
            ratio,
            ratio=ratio,
            ratio_of="wrong-login phase",
            target="≥ 0.8",
            passed=check(ratio, ">=", 0.8),
        ),
        Figure(
            scenario,
            "send p99 with destructions / with wrong logins",
            p99 / base[2] if p99 and base[2] else None,
            target="< 2",
            passed=check(p99 / base[2] if p99 and base[2] else None, "<", 2),
        ),
    ]
    return figures


def _victims(url: str, count: int) -> list[User]:
    """Accounts to destroy, each with a contact and a conversation."""
    pairs = create_pairs(url, "v", count)
    for victim, contact in pairs:
        conn = victim.http(url)
        try:
            for i in range(VICTIM_MESSAGES):
                conn.ok(
                    "POST", "/chat/send", 201, {"receiver_id": contact.id, "message": f"to be erased {i}"}
                )
        finally:
            conn.close()
    return [victim for victim, _ in pairs]


def _login(url: str, password: str, victims: list[User]) -> None:
    """One login as the next victim with `password` (401 either way)."""
    victim = victims.pop()
    conn = Http(url)
    try:
        _, body = conn.request("GET", "/csrf")
        conn.headers["Cookie"], conn.headers["X-CSRFToken"] = conn.set_cookie, body.get("csrf_token", "")
        conn.request("POST", "/login", {"username": victim.name, "password": password})
    finally:
        conn.close()


def _phase(
    url, couples, seconds: float, action, victims: list[User]
) -> tuple[float, float | None, float | None]:
    """Senders back to back for `seconds`, with `action` run once a second meanwhile."""
    conns = [sender.http(url) for sender, _ in couples]
    latencies: list[float] = []
    lock = threading.Lock()

    def send(conn: Http, receiver: User) -> bool:
        started = time.perf_counter()
        ok = conn.ok("POST", "/chat/send", 201, {"receiver_id": receiver.id, "message": "hello"})
        with lock:
            latencies.append((time.perf_counter() - started) * 1000)
        return ok

    stop = threading.Event()

    def background() -> None:
        while action is not None and victims and not stop.wait(1.0):
            action(victims)

    thread = threading.Thread(target=background, daemon=True)
    thread.start()
    try:
        steps = [partial(send, conn, receiver) for conn, (_, receiver) in zip(conns, couples, strict=True)]
        result = closed_loop(steps, seconds, 100_000)
    finally:
        stop.set()
        thread.join(30)
        for conn in conns:
            conn.close()
    return result.rate, percentile(latencies, 50), percentile(latencies, 99)
