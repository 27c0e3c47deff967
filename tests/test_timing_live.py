"""Logins with an unknown user, a wrong password, the right password and the
destruction password take the same time, measured against a running server."""

from __future__ import annotations

import statistics
import time

import pytest
import requests

pytestmark = pytest.mark.live

ROUNDS = 12
TOLERANCE = 0.25  # medians may differ by at most this fraction of the slowest
PASSWORD, DPASS = "the-right-password", "the-destruction-password"


def _client(url: str) -> tuple[requests.Session, dict]:
    session = requests.Session()
    token = session.get(url + "/csrf").json()["csrf_token"]
    return session, {"X-CSRFToken": token, "Accept": "application/json", "Connection": "close"}


def _register(url: str, name: str) -> None:
    session, headers = _client(url)
    answer = session.post(
        url + "/register", headers=headers, json={"username": name, "password": PASSWORD, "d_pass": DPASS}
    )
    assert answer.status_code == 201


def _timed_login(url: str, name: str, password: str) -> tuple[float, int, dict]:
    session, headers = _client(url)
    started = time.perf_counter()
    answer = session.post(url + "/login", headers=headers, json={"username": name, "password": password})
    elapsed = time.perf_counter() - started
    body = answer.json()
    return elapsed, answer.status_code, body


def test_login_outcomes_are_indistinguishable_by_time(live_server):
    url = live_server.url
    _register(url, "steady")
    victims = [f"victim{i}" for i in range(ROUNDS)]
    for name in victims:
        _register(url, name)
    cases = {
        "unknown user": lambda i: ("nobody-here", PASSWORD),
        "wrong password": lambda i: ("steady", "not-the-password"),
        "right password": lambda i: ("steady", PASSWORD),
        "destruction password": lambda i: (victims[i], DPASS),
    }
    timings: dict[str, list[float]] = {case: [] for case in cases}
    answers: dict[str, set] = {case: set() for case in cases}
    _timed_login(url, "steady", PASSWORD)  # warm up both workers' code paths
    for i in range(ROUNDS):  # interleaved, so drift on a noisy machine hits every case alike
        for case, credentials in cases.items():
            elapsed, status, body = _timed_login(url, *credentials(i))
            timings[case].append(elapsed)
            answers[case].add((status, body.get("error")))

    medians = {case: statistics.median(values) for case, values in timings.items()}
    print("login medians (ms):", {c: round(m * 1000, 1) for c, m in medians.items()})
    slowest, fastest = max(medians.values()), min(medians.values())
    assert (slowest - fastest) / slowest <= TOLERANCE, medians
    failing = answers["unknown user"] | answers["wrong password"] | answers["destruction password"]
    assert failing == {(401, "invalid_credentials")}
    assert answers["right password"] == {(200, None)}
    # and the destruction logins did delete their accounts
    elapsed, status, _ = _timed_login(url, victims[0], PASSWORD)
    assert status == 401
