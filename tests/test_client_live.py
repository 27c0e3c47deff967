"""The command-line client against a real server, driven as a user would drive it
(`python -m ghostcache.client` in a subprocess, one profile folder per person)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess

import pytest

from tests.client_helpers import (
    PASSWORD,
    REPO,
    Proxy,
    User,
    client_command,
    client_env,
    contacts,
    http_session,
    run_client,
)

pytestmark = pytest.mark.live


@pytest.fixture
def alice(live_server, tmp_path) -> User:
    return User(live_server.url, tmp_path, "alice").signup()


@pytest.fixture
def bob(live_server, tmp_path, alice) -> User:
    bob = User(live_server.url, tmp_path, "bob").signup()
    contacts(alice, bob)
    return bob


@pytest.fixture
def e2ee_pair(alice, bob) -> tuple[User, User]:
    """alice and bob, contacts with identities, their conversation end-to-end encrypted."""
    alice.setup_e2ee()
    bob.setup_e2ee()
    assert "end-to-end encrypted since" in alice.ok("e2ee", "enable", "bob")
    return alice, bob


def bodies(history: str) -> list[str]:
    """The text of each message line of `history` output."""
    return [line.split(": ", 1)[1] for line in history.splitlines() if line.startswith("#")]


def test_plain_chat_between_two_contacts(alice, bob):
    assert "not end-to-end encrypted" in alice.ok("send", "bob", "hello bob")
    bob.ok("send", "alice", "hi alice")
    assert bodies(bob.ok("history", "alice")) == ["hello bob", "hi alice"]
    assert "bob (user" in alice.ok("contacts")
    refused = alice.run("e2ee", "enable", "bob")  # nobody has an identity yet: the server says so
    assert refused.returncode == 1 and "published an identity" in refused.stderr


def test_e2ee_chat_both_ways_shows_only_envelopes_to_the_server(live_server, e2ee_pair):
    alice, bob = e2ee_pair
    assert "(end-to-end encrypted)" in alice.ok("send", "bob", "canary-from-alice")
    assert "(end-to-end encrypted)" in bob.ok("send", "alice", "canary-from-bob")

    for user in (alice, bob):
        history = user.ok("history", "bob" if user is alice else "alice")
        assert bodies(history) == ["canary-from-alice", "canary-from-bob"]
        assert all("[e2ee]" in line for line in history.splitlines() if line.startswith("#"))

    # The server's own JSON holds envelopes only.
    http, _ = http_session(live_server.url, "bob")
    alice_id = http.get(live_server.url + "/connections", timeout=10).json()["accepted"][0]["user"]["id"]
    raw = http.get(f"{live_server.url}/chat/{alice_id}", timeout=10)
    assert "canary" not in raw.text
    for message in raw.json()["messages"]:
        assert (
            message["e2ee"] is True
            and "message" not in message
            and set(message["envelope"]) >= {"ct", "skid"}
        )

    # A stream from the start shows both, decrypted.
    out = bob.ok("stream", "--since", "0", "--count", "2", "--timeout", "20", timeout=40)
    assert bodies(out) == ["canary-from-alice", "canary-from-bob"]


def test_stream_shows_a_message_as_it_arrives(e2ee_pair):
    alice, bob = e2ee_pair
    follower = subprocess.Popen(
        client_command(bob.server, bob.profile, "stream", "--count", "1", "--timeout", "30"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=client_env(),
    )
    try:
        assert follower.stderr is not None
        assert "following" in follower.stderr.readline()  # connected: what is sent now arrives live
        alice.ok("send", "bob", "live canary")
        out, err = follower.communicate(timeout=40)
    finally:
        follower.kill()
        follower.wait(timeout=10)
    assert follower.returncode == 0, err
    assert bodies(out) == ["live canary"]


def test_a_device_without_the_key_cannot_send_plain_text_to_an_e2ee_chat(tmp_path, e2ee_pair):
    alice, bob = e2ee_pair
    laptop = User(bob.server, tmp_path, "bob")
    laptop.profile = tmp_path / "bob-laptop"
    laptop.ok("login", "bob", "--password-stdin", stdin=f"{PASSWORD}\n")
    refused = laptop.run("send", "alice", "would be plain")
    assert refused.returncode != 0 and "e2ee restore" in refused.stderr
    assert "would be plain" not in alice.ok("history", "bob")
    history = laptop.ok("history", "alice")  # no key: each shown as undecryptable, no crash
    assert history == "" or "[could not decrypt:" in history


def test_restore_in_a_fresh_profile_reads_old_messages(tmp_path, e2ee_pair):
    alice, bob = e2ee_pair
    alice.ok("send", "bob", "before the new laptop")
    laptop = User(bob.server, tmp_path, "bob")
    laptop.profile = tmp_path / "bob-laptop"
    laptop.ok("login", "bob", "--password-stdin", stdin=f"{PASSWORD}\n")

    assert bob.recovery is not None
    typed = bob.recovery.lower().replace("-", " ")  # case, spaces and dashes do not matter
    restored = laptop.ok("e2ee", "restore", "--recovery-stdin", stdin=typed + "\n")
    old_kid = re.search(r"this device: (\S+)", bob.ok("e2ee", "status")).group(1)
    assert f"restored identity {old_kid}" in restored
    assert bodies(laptop.ok("history", "alice")) == ["before the new laptop"]
    assert bob.recovery not in restored  # shown by setup only

    wrong = laptop.run("e2ee", "restore", "--recovery-stdin", stdin="A" * 51 + "Q\n")
    assert wrong.returncode == 1 and "does not open your backup" in wrong.stderr


def test_safety_numbers_are_equal_on_both_sides(e2ee_pair):
    alice, bob = e2ee_pair
    mine, theirs = alice.ok("safety", "bob"), bob.ok("safety", "alice", "--verify")
    number = re.compile(r"^(\d{5}(?: \d{5}){11})$", re.MULTILINE)
    assert number.findall(mine) == number.findall(theirs) and len(number.findall(mine)) == 1
    assert "not verified" in mine and ": verified" in theirs
    assert ": verified" in bob.ok("safety", "alice")


def test_a_shared_file_downloads_and_decrypts_to_the_same_bytes(tmp_path, alice, bob):
    folder = tmp_path / "files"
    folder.mkdir()
    original = folder / "report.bin"
    original.write_bytes(os.urandom(300_000))
    out = alice.ok("upload", str(original), "--share", "bob", "--expiry-days", "3")
    file_id = re.search(r"uploaded file #(\d+)", out).group(1)
    key = re.search(r"(AGE-SECRET-KEY-1[0-9A-Z]+)", out).group(1)
    assert out.count(key) == 1 and "shared with bob" in out

    target = folder / "got.bin"
    bob.ok("download", file_id, "--key", "-", "-o", str(target), stdin=key + "\n")
    assert target.read_bytes() == original.read_bytes()

    other_key = re.search(r"(AGE-SECRET-KEY-1[0-9A-Z]+)", alice.ok("upload", str(original))).group(1)
    failed = bob.run("download", file_id, "--key", other_key, "-o", str(folder / "bad.bin"))
    assert failed.returncode == 1 and "could not be decrypted" in failed.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["got.bin", "report.bin"]


def test_api_errors_show_the_servers_message_not_a_traceback(tmp_path, alice):
    missing = alice.run("connect", "nobody-here")
    assert (
        missing.returncode == 1 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
    )
    down = run_client(
        "http://127.0.0.1:9", tmp_path / "nowhere", "login", "x-y-z", "--password-stdin", stdin="pw\n"
    )
    assert down.returncode == 1 and "Could not reach" in down.stderr and "pw" not in down.stderr


def test_check_js_passes_against_the_real_server(alice):
    out = alice.ok("check-js")
    assert "MISMATCH" not in out and "ok app.js" in out and "ok e2ee.js" in out


def test_check_js_reports_a_served_script_that_differs(live_server, tmp_path):
    def tamper(method: str, path: str, body: bytes) -> bytes:
        return body + b"\n/* injected */" if path.startswith("/static/app.js") else body

    with Proxy(live_server.url, tamper) as proxy:
        done = run_client(proxy.url, tmp_path / "p", "check-js")
    assert done.returncode == 1
    assert "MISMATCH app.js" in done.stdout and "ok e2ee.js" in done.stdout


def test_check_js_checks_integrity_attributes_when_present(live_server, tmp_path):
    digest = base64.b64encode(
        hashlib.sha384((REPO / "ghostcache/static/app.js").read_bytes()).digest()
    ).decode()

    def add_integrity(value: str):
        def rewrite(method: str, path: str, body: bytes) -> bytes:
            if path.split("?")[0] != "/login":
                return body
            return re.sub(  # the page's own attribute, replaced
                rb'(<script src="/static/app\.js" integrity=")[^"]*"', rb"\g<1>" + value.encode() + b'"', body
            )

        return rewrite

    with Proxy(live_server.url, add_integrity(f"sha384-{digest}")) as proxy:
        right = run_client(proxy.url, tmp_path / "p", "check-js")
        proxy.rewrite = add_integrity("sha384-" + "A" * 64)
        wrong = run_client(proxy.url, tmp_path / "p", "check-js")
    assert right.returncode == 0 and "ok app.js" in right.stdout, right.stdout
    assert wrong.returncode == 1 and "MISMATCH app.js (integrity attribute on /login" in wrong.stdout


def test_the_password_never_reaches_output_or_profile_files(tmp_path, alice):
    again = alice.run("login", "alice", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert PASSWORD not in again.stdout + again.stderr
    alice.setup_e2ee()
    for path in alice.profile.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
