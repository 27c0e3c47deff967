"""Onion mode (GHOSTCACHE_ONION): no HSTS, cookies Tor Browser keeps, nothing loaded from
elsewhere, no address in any log line, and abuse limits that do not rest on addresses."""

from __future__ import annotations

import logging
import re
import secrets
import socket
import sys

import pytest
import requests

from ghostcache import create_app
from ghostcache.database import upgrade
from ghostcache.settings import SettingsError, load_settings
from ghostcache.worker import NoAddresses, redact_addresses
from tests.conftest import BufferedClient, Session
from tests.live import LiveServer

CIRCUIT_V4, CIRCUIT_V6 = "10.66.77.88", "fc00:dead:beef:4dad::1"
HTML = {"Accept": "text/html"}


def _app(settings, clock, **overrides):
    app = create_app(settings.with_overrides(**overrides), clock=clock)
    app.test_client_class = BufferedClient
    upgrade(app)
    return app


@pytest.fixture
def onion(settings, clock):
    return _app(settings, clock, onion=True, trusted_proxies=1)


def circuit(n: int) -> dict:
    """The header nginx adds for tor's circuit number n."""
    return {"X-Forwarded-For": f"fc00:dead:beef:4dad::{n:x}"}


# ---- settings ----------------------------------------------------------------------------


def test_onion_mode_refuses_the_access_log():
    env = {"GHOSTCACHE_ONION": "on", "GHOSTCACHE_TRUSTED_PROXIES": "1", "GHOSTCACHE_ACCESS_LOG": "on"}
    with pytest.raises(SettingsError, match="GHOSTCACHE_ONION is on.*unset GHOSTCACHE_ACCESS_LOG"):
        load_settings(env)


def test_onion_mode_refuses_to_run_without_the_proxy_that_tells_circuits_apart(settings, clock):
    with pytest.raises(SettingsError, match="GHOSTCACHE_TRUSTED_PROXIES=1"):
        load_settings({"GHOSTCACHE_ONION": "on"})
    with pytest.raises(SettingsError, match="GHOSTCACHE_TRUSTED_PROXIES"):
        create_app(settings.with_overrides(onion=True), clock=clock)


def test_onion_mode_with_a_trusted_proxy_starts():
    settings = load_settings({"GHOSTCACHE_ONION": "on", "GHOSTCACHE_TRUSTED_PROXIES": "1"})
    assert settings.onion and not settings.access_log


# ---- headers and cookies -----------------------------------------------------------------


@pytest.mark.parametrize("base_url", ["http://abcdefghijklmnop.onion", "https://abcdefghijklmnop.onion"])
def test_onion_mode_never_sends_hsts(onion, base_url):
    response = onion.test_client().get("/csrf", base_url=base_url)
    assert "Strict-Transport-Security" not in response.headers
    proxied = onion.test_client().get("/csrf", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in proxied.headers


def test_clearnet_https_still_gets_hsts(app):
    response = app.test_client().get("/csrf", base_url="https://example.org")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_the_session_cookie_suits_tor_browser_over_http(onion):
    cookie = onion.test_client().get("/csrf", base_url="http://abcdefghijklmnop.onion").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # a Secure cookie over plain http is dropped by other clients
    assert "Domain=" not in cookie  # host-only: it goes to this onion address alone


def test_the_session_cookie_is_secure_when_the_onion_is_served_over_https(onion):
    direct = onion.test_client().get("/csrf", base_url="https://abcdefghijklmnop.onion")
    proxied = onion.test_client().get("/csrf", headers={"X-Forwarded-Proto": "https"})
    for response in (direct, proxied):
        assert "Secure" in response.headers["Set-Cookie"]


# ---- nothing loaded from elsewhere -------------------------------------------------------

_REFERENCE = re.compile(r"""\b(?:src|href|action|srcset|poster|data)\s*=\s*["']([^"']*)["']""", re.I)


def _foreign(html: str, host: str) -> list[str]:
    found = []
    for target in _REFERENCE.findall(html):
        match = re.match(r"(?:https?:)?//([^/?#]+)", target.strip(), re.I)
        if match and match.group(1).lower() != host:
            found.append(target)
    return found


def test_no_page_refers_to_another_host(onion):
    alice, bob = Session(onion), Session(onion)
    for user, name in ((alice, "alice"), (bob, "bob")):
        assert user.register(name).status_code == 201
        assert user.login(name).status_code == 200
    conn = alice.post("/connect", {"username": "bob"}).get_json()
    bob.post(f"/connect/accept/{conn['id']}")
    file = alice.upload(b"data").get_json()
    values = {"other_id": bob.id, "user_id": bob.id, "file_id": file["id"], "conn_id": conn["id"]}
    pages = {"/invites"}
    for rule in onion.url_map.iter_rules():
        if "GET" in rule.methods and rule.endpoint not in {"static", "chat.stream", "chat.poll"}:
            pages.add(re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), rule.rule))
    checked = 0
    for path in sorted(pages):
        for client in (alice.client, onion.test_client()):
            response = client.get(path, headers=HTML, base_url="http://abcdefghijklmnop.onion")
            if response.mimetype == "text/html":
                checked += 1
                assert _foreign(response.get_data(as_text=True), "abcdefghijklmnop.onion") == [], path
    assert checked > 20
    css = onion.test_client().get("/static/app.css").get_data(as_text=True)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", css) and "@import" not in css


def test_the_scan_above_finds_a_foreign_reference():
    page = '<script src="https://cdn.example.com/x.js"></script><a href="/help">'
    assert _foreign(page, "abcdefghijklmnop.onion") == ["https://cdn.example.com/x.js"]
    assert _foreign('<img src="//evil.example/p.png">', "a.onion") == ["//evil.example/p.png"]


# ---- limits that do not rest on addresses ------------------------------------------------


def test_one_username_gets_twenty_wrong_logins_an_hour_from_any_number_of_circuits(onion):
    alice = Session(onion)
    assert alice.register("alice").status_code == 201
    assert Session(onion).register("bob").status_code == 201
    guesser = Session(onion)
    wrong = {"username": "alice", "password": "wrong password!"}
    answers = [guesser.post("/login", wrong, headers=circuit(n)).status_code for n in range(21)]
    assert answers == [401] * 20 + [429]
    refused = guesser.post("/login", {"username": "ALICE", "password": "x" * 9}, headers=circuit(99))
    assert refused.status_code == 429 and refused.get_json()["error"] == "rate_limited"
    bob = Session(onion).post(
        "/login", {"username": "bob", "password": "correct horse battery"}, headers=circuit(1)
    )
    assert bob.status_code == 200  # another name, even from a guessing circuit, still gets in


def test_registrations_share_a_global_budget_across_circuits(settings, clock):
    app = _app(settings, clock, onion=True, trusted_proxies=1, ratelimits={"register_global": "3/hour"})
    answers = [Session(app).register(f"person{n}", headers=circuit(n)).status_code for n in range(4)]
    assert answers == [201, 201, 201, 429]


def test_each_circuit_has_its_own_address_budget(settings, clock):
    app = _app(settings, clock, onion=True, trusted_proxies=1, ratelimits={"register": "1/hour"})
    assert [Session(app).register(f"p{n}x", headers=circuit(n)).status_code for n in range(3)] == [201] * 3
    assert Session(app).register("p9x", headers=circuit(1)).status_code == 429


# ---- logs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"from {CIRCUIT_V4} and {CIRCUIT_V6}", "from <address> and <address>"),
        ("circuit fc00:dead:beef:4dad::ab:cd,10.0.0.1", "circuit <address>,<address>"),
        (
            "[2026-12-03 02:45:31 +0000] [12] [INFO] Booting",
            "[2026-12-03 02:45:31 +0000] [12] [INFO] Booting",
        ),
        ("listening on [::]:5000 and ::1", "listening on [<address>]:5000 and <address>"),
        ("2001:db8:0:0:0:0:0:1 version 1.2.3.4.5", "<address> version 1.2.3.4.5"),
    ],
)
def test_addresses_are_redacted_and_times_are_not(text, expected):
    assert redact_addresses(text) == expected


def test_the_log_filter_redacts_arguments_and_tracebacks():
    try:
        raise RuntimeError(f"peer {CIRCUIT_V6} went away")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "from %s", (CIRCUIT_V4,), sys.exc_info())
    assert NoAddresses().filter(record)
    line = logging.Formatter().format(record)
    assert "RuntimeError" in line and "<address>" in line
    assert CIRCUIT_V4 not in line and "4dad" not in line


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(request)
        return raw.recv(1024)


@pytest.mark.live
def test_a_real_onion_server_logs_no_address_of_a_circuit(tmp_path):
    server = LiveServer(
        tmp_path / "data",
        onion="on",
        trusted_proxies="1",
        ratelimit="on",
        ratelimits="register=1/hour,login=1/minute",
        log_level="DEBUG",
    ).start()
    try:
        for forwarded in (CIRCUIT_V4, CIRCUIT_V6):
            http = requests.Session()
            headers = {"X-Forwarded-For": forwarded, "Accept": "application/json"}
            headers["X-CSRFToken"] = http.get(server.url + "/csrf", headers=headers, timeout=10).json()[
                "csrf_token"
            ]
            statuses = set()
            for _ in range(6):  # two workers count on their own: enough tries for both to refuse
                name = "n" + secrets.token_hex(4)
                body = {"username": name, "password": "correct horse battery", "d_pass": "destroy it all now"}
                statuses.add(
                    http.post(server.url + "/register", json=body, headers=headers, timeout=30).status_code
                )
                wrong = {"username": name, "password": "wrong password!"}
                statuses.add(
                    http.post(server.url + "/login", json=wrong, headers=headers, timeout=30).status_code
                )
            assert 429 in statuses
            assert http.get(server.url + "/file/987654", headers=headers, timeout=10).status_code in (
                401,
                404,
            )
            assert (
                http.post(
                    server.url + "/login",
                    data="{",
                    headers=headers | {"Content-Type": "application/json"},
                    timeout=10,
                ).status_code
                < 500
            )
            assert _raw(
                server.port, f"GET /x HTTP/1.1 junk\r\nX-Forwarded-For: {forwarded}\r\n\r\n".encode()
            ).startswith(b"HTTP/1.1 400")
            assert _raw(
                server.port, f"GET /x HTTP/1.1\r\nX-Forwarded-For {forwarded}\r\n\r\n".encode()
            ).startswith(b"HTTP/1.1 400")
    finally:
        server.stop()
    log = server.log()
    assert "Booting worker" in log  # the log is there to be read...
    for marker in (CIRCUIT_V4, CIRCUIT_V6, "4dad", "10.66."):
        assert marker not in log, f"the log names {marker}"  # ...and names no circuit
