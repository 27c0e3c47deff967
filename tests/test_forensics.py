"""An account purged for inactivity leaves nothing readable in the data folder.

In-process (the app on a real SQLite file with its WAL under tmp_path/"data"): the
victim talks with a contact and shares a file, goes idle past GHOSTCACHE_INACTIVITY_DAYS
while the contact stays active, and the purge deletes the victim. A copy of the data
folder attacked with tests.forensics must then give away none of the victim's messages
(both directions), username, password hashes or filename, and the victim's file key must
open no blob. The contact's own account and data may stay.

The same attack on a copy taken before the purge must read all of it (positive control).
"""

from __future__ import annotations

import secrets
import sqlite3
from contextlib import closing

import pytest
from cryptography.fernet import Fernet

from ghostcache.app import service_context
from ghostcache.services import maintenance
from tests import forensics
from tests.conftest import Session
from tests.databases import on_postgres
from tests.forensics import Thief, Victim, canary

# The attacker reads SQLite's pages and WAL frames in a copy of the data folder; on
# PostgreSQL the database lives elsewhere and erasing its dead tuples is the operator's
# part (docs/SECURITY.md), so these run on SQLite only.
SQLITE_ONLY = pytest.mark.skipif(on_postgres(), reason="SQLite only: reads the database file's pages")

WAIT_SECONDS, EVERY_SECONDS = 10.0, 0.5


def converse(victim: Session, contact: Session, messages: list[str]) -> None:
    """Messages alternate victim -> contact, contact -> victim; both read them."""
    for i, text in enumerate(messages):
        sender, receiver = (victim, contact) if i % 2 == 0 else (contact, victim)
        assert sender.post("/chat/send", {"receiver_id": receiver.id, "message": text}).status_code == 201
    for reader in (contact, victim):
        assert reader.get("/chat/poll").status_code == 200
    history = contact.get(f"/chat/{victim.id}").get_json()
    assert [m["message"] for m in history["messages"]] == messages


def upload_and_share(victim: Session, contact: Session, filename: str, content: bytes) -> str:
    """The victim's file, shared with the contact; returns its key."""
    uploaded = victim.upload(content, filename)
    assert uploaded.status_code == 201, uploaded.get_json()
    file = uploaded.get_json()
    assert victim.post(f"/file/{file['id']}/share", {"username": contact.username}).status_code == 201
    assert contact.get(f"/file/{file['id']}").status_code == 200
    return file["key"]


@SQLITE_ONLY
def test_account_purged_for_inactivity_leaves_nothing_readable_in_a_copy_of_the_data_folder(
    app, clock, make_user, connect, settings, tmp_path
):
    victim, contact = connect(make_user(f"Victim{secrets.token_hex(6)}"), make_user())
    story = Victim(victim.username, [canary(f"message{i}") for i in range(6)], canary("file") + ".txt")
    converse(victim, contact, story.messages)
    file_key = upload_and_share(victim, contact, story.filename, canary("content").encode())
    thief = Thief(settings.data_dir, tmp_path / "thief")

    assert thief.control(story, file_key) == [], "the attack is broken: it cannot read these"

    clock.advance(days=settings.inactivity_days - 10)
    assert contact.login().status_code == 200  # the contact stays active; the victim does not
    clock.advance(days=11)
    with service_context(app) as ctx:
        assert maintenance.purge(ctx).inactive_accounts == 1
    found = thief.wait_until_gone(story, file_key, WAIT_SECONDS, EVERY_SECONDS)
    if found:
        pytest.fail(
            f"after the inactivity purge, copy {thief.copies} of the data folder still gives away:\n"
            f"{forensics.report(found)}"
        )
    assert Session(app).login(victim.username).status_code == 401
    assert Session(app).login(contact.username).status_code == 200


# ---- the attack itself ---------------------------------------------------------------


def test_attack_follows_keys_through_tokens_glued_to_their_neighbours(tmp_path):
    master, user, chat = (Fernet.generate_key() for _ in range(3))
    (tmp_path / "master.key").write_bytes(master + b"\n")
    secret = canary("glued")
    # Database columns sit side by side without separators: a token may run into the next.
    wrapped, date, chat_key, message = (
        Fernet(master).encrypt(user),
        b"2026-01-01",
        Fernet(user).encrypt(chat),
        Fernet(chat).encrypt(secret.encode()),
    )
    (tmp_path / "rows").write_bytes(b"\x07Alice" + wrapped + date + chat_key + message + b"AbC")
    at_user, at_chat = 6, 6 + len(wrapped) + len(date)
    at_message = at_chat + len(chat_key)

    result = forensics.attack_folder(tmp_path)
    assert [key.value for key in result.keys] == [master, user, chat]
    assert result.recoverable(secret.encode()) == [
        f"decrypted: token at rows+0x{at_message:x} (seen 1x), opened with key from rows+0x{at_chat:x} "
        f"<- key from rows+0x{at_user:x} <- master key 1 in master.key"
    ]
    assert result.recoverable(b"alice") == [] and result.recoverable(b"alice", any_case=True) != []


def test_attack_joins_database_rows_that_spill_onto_overflow_pages(tmp_path):
    """Tokens cut by a page boundary (the local part of a row, or an overflow page)
    are still opened: the attack joins the row whole again, in the WAL as in the file."""
    master = Fernet.generate_key()
    (tmp_path / "master.key").write_bytes(master + b"\n")
    secrets_by_filler = {n: canary(f"spilled{n}") for n in [*range(300, 600, 20), *range(4400, 4700, 20)]}
    with closing(sqlite3.connect(tmp_path / "rows.db")) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (filler TEXT, token TEXT, tail TEXT)")
        for n, secret in secrets_by_filler.items():
            token = Fernet(master).encrypt(secret.encode() * 20).decode()
            conn.execute("INSERT INTO t VALUES (?, ?, ?)", ("-" * n, token, "x" * 3000))
        conn.commit()
        result = forensics.attack_folder(tmp_path)  # while open: the rows are in the WAL only

    places = {n: result.recoverable(secret.encode()) for n, secret in secrets_by_filler.items()}
    assert all(places.values()), [n for n, where in places.items() if not where]
    only_joined = [n for n, where in places.items() if all("joined with its overflow" in w for w in where)]
    assert len(only_joined) >= 2, "no token straddled a page boundary: the test proves nothing"
