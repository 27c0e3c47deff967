"""Several worker processes writing SQLite at once never fail with 'database is locked'."""

from __future__ import annotations

import threading
import time

import pytest
import requests

pytestmark = pytest.mark.live

THREADS = 8
SENDS_PER_THREAD = 25


def _session(url: str, username: str) -> tuple[requests.Session, dict]:
    session = requests.Session()
    token = session.get(url + "/csrf").json()["csrf_token"]
    creds = {"username": username, "password": "password-123", "d_pass": "destroy-123"}
    assert session.post(url + "/register", json=creds, headers={"X-CSRFToken": token}).ok
    body = session.post(url + "/login", json=creds, headers={"X-CSRFToken": token}).json()
    return session, {"X-CSRFToken": body["csrf_token"], "Accept": "application/json", "id": str(body["id"])}


def test_parallel_writers_across_workers_all_succeed(live_server):
    url = live_server.url
    hub, hub_headers = _session(url, "hub")
    hub_id = int(hub_headers.pop("id"))
    statuses: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        session, headers = _session(url, f"writer{n}")
        headers.pop("id")
        conn = session.post(url + "/connect", json={"username": "hub"}, headers=headers).json()
        accepted = hub.post(f"{url}/connect/accept/{conn['id']}", headers=hub_headers)
        results = [accepted.status_code]
        deadline = time.monotonic() + 60
        for i in range(SENDS_PER_THREAD):
            if time.monotonic() > deadline:
                break
            answer = session.post(
                url + "/chat/send", headers=headers, json={"receiver_id": hub_id, "message": f"m{n}-{i}"}
            )
            results.append(answer.status_code)
            results.append(session.get(url + "/chat/poll", headers=headers).status_code)
        with lock:
            statuses.extend(results)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(statuses) == THREADS * (1 + 2 * SENDS_PER_THREAD)
    assert set(statuses) <= {200, 201}, sorted(set(statuses))
    received = hub.get(url + "/chat/poll", headers=hub_headers).json()
    assert len(received) == THREADS * SENDS_PER_THREAD
    assert "database is locked" not in live_server.log()
