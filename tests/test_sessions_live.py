"""Sessions against a real server: two gunicorn workers share them, and they survive a restart."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import DPASS, PASSWORD

pytestmark = pytest.mark.live
JSON = {"Accept": "application/json"}


class Browser:
    """A requests session speaking JSON with its CSRF token."""

    def __init__(self, url: str) -> None:
        self.url, self.http = url, requests.Session()
        self.token = self.get("/csrf").json()["csrf_token"]

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url + path, headers=JSON, timeout=30)

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return self.http.post(
            self.url + path, json=body or {}, timeout=30, headers={"X-CSRFToken": self.token, **JSON}
        )

    def join(self, username: str) -> dict:
        assert (
            self.post("/register", {"username": username, "password": PASSWORD, "d_pass": DPASS}).status_code
            == 201
        )
        response = self.post("/login", {"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        body = response.json()
        self.token = body["csrf_token"]
        return body


def test_a_login_session_works_on_every_worker_for_many_requests(live_server):
    alice, bob = Browser(live_server.url), Browser(live_server.url)
    alice.join("alice")
    bob.join("bob")
    for _ in range(40):  # plenty of requests, spread over both worker processes
        response = alice.get("/connections")
        assert response.status_code == 200, response.text
    assert alice.post("/connect", {"username": "bob"}).status_code == 201
    for _ in range(10):
        assert len(bob.get("/connections").json()["received"]) == 1


def test_a_session_and_its_csrf_token_survive_a_server_restart(live_server):
    alice, bob = Browser(live_server.url), Browser(live_server.url)
    me = alice.join("alice")
    bob.join("bob")
    live_server.stop()
    live_server.start()
    for _ in range(10):
        assert alice.get("/connections").status_code == 200
    conn = alice.post("/connect", {"username": "bob"})
    assert conn.status_code == 201, conn.text
    accepted = bob.post(f"/connect/accept/{conn.json()['id']}")
    assert accepted.status_code == 200 and accepted.json()["user"]["id"] == me["id"]
    assert alice.post("/logout").status_code == 200
    assert alice.get("/connections").json()["error"] == "login_required"
