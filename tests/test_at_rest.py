"""Nothing secret at rest: after a real session, no plaintext, key or password is on disk."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from ghostcache.crypto import decrypt_for_user, unwrap_user_key
from ghostcache.extensions import db
from ghostcache.models import Connection, User
from tests.conftest import Session
from tests.databases import on_postgres


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def data_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def findings(root: Path, needles: dict[str, bytes]) -> list[str]:
    """'what in which file' for every needle found anywhere under root."""
    found = []
    for path in data_files(root):
        content = path.read_bytes()
        found += [
            f"{label} in {path.relative_to(root)}" for label, needle in needles.items() if needle in content
        ]
    return found


def _register(app, password: str, d_pass: str) -> Session:
    session = Session(app)
    name = "u" + uuid.uuid4().hex[:10]
    assert session.register(name, password=password, d_pass=d_pass).status_code == 201
    assert session.login(name, password=password).status_code == 200
    return session


def _pem_body(pem: bytes) -> list[bytes]:
    """The base64 lines of a PEM key, and the DER they encode."""
    lines = [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
    return [lines[len(lines) // 2], base64.b64decode(b"".join(lines))[64:128]]


@pytest.fixture
def scripted_session(app, runtime):
    """Two users connect, chat, upload, share and download; returns every secret involved."""
    tag = uuid.uuid4().hex
    secrets: dict[str, bytes] = {}
    passwords = {who: (f"pw-{who}-{tag}", f"dpass-{who}-{tag}") for who in ("alice", "bob")}
    alice = _register(app, *passwords["alice"])
    bob = _register(app, *passwords["bob"])
    for who, (password, d_pass) in passwords.items():
        secrets[f"{who} password"] = password.encode()
        secrets[f"{who} destruction password"] = d_pass.encode()

    conn = alice.post("/connect", {"username": bob.username}).get_json()
    assert bob.post(f"/connect/accept/{conn['id']}").status_code == 200
    for i, (sender, receiver) in enumerate([(alice, bob), (bob, alice), (alice, bob)]):
        marker = f"MARKER-CHAT-{i}-{tag}"
        secrets[f"chat message {i}"] = marker.encode()
        sent = sender.post("/chat/send", {"receiver_id": receiver.id, "message": marker})
        assert sent.status_code == 201
        assert marker in [m["message"] for m in receiver.get("/chat/poll").get_json()]
    history = alice.get(f"/chat/{bob.id}").get_json()["messages"]
    assert len(history) == 3

    content_marker = f"MARKER-FILE-{tag}".encode()
    content = b"header\n" + content_marker + b"\n" + b"body " * 2000
    secrets["file content"] = content_marker
    upload = alice.upload(content, "secret-plans.txt").get_json()
    secrets["file key"] = upload["key"].encode()
    assert alice.post(f"/file/{upload['id']}/share", {"username": bob.username}).status_code == 201
    downloaded = bob.get(f"/file/{upload['id']}")
    assert downloaded.status_code == 200 and content_marker not in downloaded.data

    with app.app_context():
        users = {u.id: u for u in db.session.scalars(select(User))}
        keys = {uid: unwrap_user_key(runtime.keyring, u.keys_database_key) for uid, u in users.items()}
        for uid, key in keys.items():
            secrets[f"user key of {users[uid].username}"] = _bytes(key.reveal())
            secrets[f"raw user key of {users[uid].username}"] = base64.urlsafe_b64decode(key.reveal())
        row = db.session.get(Connection, conn["id"])
        sender_key, receiver_key = keys[row.sender_id], keys[row.receiver_id]
        chat_key = _bytes(decrypt_for_user(sender_key, row.chat_key_enc_sender).reveal())
        assert chat_key == _bytes(decrypt_for_user(receiver_key, row.chat_key_enc_receiver).reveal())
        secrets["chat key"] = chat_key
        secrets["raw chat key"] = base64.urlsafe_b64decode(chat_key)
        for side, key, token in [
            ("sender", sender_key, row.sender_privkey_enc),
            ("receiver", receiver_key, row.receiver_privkey_enc),
        ]:
            pem = _bytes(decrypt_for_user(key, token).reveal())
            line, der = _pem_body(pem)
            secrets[f"{side} private key (PEM)"], secrets[f"{side} private key (DER)"] = line, der
    return secrets


def database_rows(app) -> bytes:
    """Every row of every table as text: on PostgreSQL the database is not in the data
    folder, so the scan reads what the server stores there."""
    with app.app_context():
        tables = db.metadata.sorted_tables
        return "\n".join(repr(row) for t in tables for row in db.session.execute(t.select())).encode()


def test_no_secret_is_in_any_row_of_the_database(app, scripted_session):
    stored = database_rows(app)
    assert b"$argon2id$" in stored  # the scan reads the rows (password hashes among them)
    assert [label for label, needle in scripted_session.items() if needle in stored] == []


def test_the_data_folder_holds_the_expected_kinds_of_files(app, settings, scripted_session):
    names = {p.name for p in data_files(settings.data_dir)}
    assert ("ghostcache.db" in names) == (not on_postgres())
    assert any(p.parent == settings.blob_path for p in data_files(settings.data_dir))


def test_no_message_file_content_key_or_password_is_anywhere_in_the_data_folder(
    app, settings, scripted_session
):
    assert len(scripted_session) >= 15
    assert findings(settings.data_dir, scripted_session) == []


def test_still_nothing_after_the_database_is_checkpointed_and_closed(app, settings, scripted_session):
    with app.app_context():
        db.session.remove()
        db.engine.dispose()  # folds the -wal into the main file
    assert findings(settings.data_dir, scripted_session) == []


def test_the_scan_would_find_a_secret_if_one_were_written(settings, scripted_session):
    leak = settings.data_dir / "leak.log"
    leak.write_bytes(b"debug: " + scripted_session["chat message 1"] + b"\n")
    assert findings(settings.data_dir, scripted_session) == ["chat message 1 in leak.log"]
