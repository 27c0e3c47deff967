"""The logs of a privacy messenger keep no client address, no username and no
user or file id, unless the operator turns the debugging access log on."""

from __future__ import annotations

import logging
import secrets
import socket

import pytest

from ghostcache.services import chat
from tests.live import LiveServer
from tests.test_chat_live import Client


def test_an_unexpected_error_logs_the_route_not_the_path(app, connect, make_user, monkeypatch, caplog):
    alice, bob = connect(make_user(), make_user())

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(chat, "history", broken)
    with caplog.at_level(logging.ERROR):
        assert bob.get(f"/chat/{alice.id}").status_code == 500
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/chat/<int:other_id>" in logged
    assert f"/chat/{alice.id}" not in logged


def _activity(server: LiveServer) -> dict[str, str]:
    """Requests that name users and files, an error gunicorn answers itself, and a 404."""
    alice = Client(server.url, "alice_" + secrets.token_hex(3)).signup()
    bob = Client(server.url, "bob_" + secrets.token_hex(3)).signup()
    conn = alice.post("/connect", {"username": bob.username}).json()
    assert bob.post(f"/connect/accept/{conn['id']}").status_code == 200
    alice.send(bob, "hello")
    assert bob.get(f"/chat/{alice.id}").status_code == 200
    file_id = alice.http.post(
        server.url + "/file/upload",
        files={"file": ("notes.txt", b"data")},
        headers={"X-CSRFToken": alice.token},
        timeout=30,
    ).json()["id"]
    assert alice.get(f"/file/{file_id}").status_code == 200
    assert alice.get("/file/987654").status_code == 404
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"GET /chat/24680 HTTP/1.1 trailing junk\r\nHost: x\r\n\r\n")
        assert raw.recv(1024).startswith(b"HTTP/1.1 400")
    return {
        "alice": alice.username,
        "bob": bob.username,
        "chat": f"/chat/{alice.id}",
        "file": f"/file/{file_id}",
    }


def _leaks(server: LiveServer, named: dict[str, str]) -> set[str]:
    # The server's own listening address is no client's.
    log = "\n".join(line for line in server.log().splitlines() if "Listening at:" not in line)
    found = {what for what, text in named.items() if text in log}
    found |= {marker for marker in ("127.0.0.1", "/chat/24680", "/file/987654") if marker in log}
    return found


@pytest.mark.live
@pytest.mark.parametrize("access_log", ["off", "on"])
def test_the_server_log_names_nobody_unless_debugging(tmp_path, access_log):
    server = LiveServer(tmp_path / "data", access_log=access_log).start()
    try:
        named = _activity(server)
    finally:
        server.stop()
    leaks = _leaks(server, named)
    if access_log == "off":
        assert leaks == set(), f"the log records {leaks}"
    else:  # the debugging log records addresses and paths: proof the check above can fail
        assert {"127.0.0.1", "chat", "file", "/file/987654"} <= leaks
