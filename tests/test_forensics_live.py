"""A deleted account leaves nothing readable in the data folder, on a real server.

The attacker of docs/SECURITY.md copies the data folder (database, WAL, master.key,
blobs) and the server log a few seconds after the victim's account is deleted, by the
destruction password or by POST /delete_account, and attacks the copy with
tests.forensics: none of the victim's messages (sent or received), username, password
hashes or filename may be readable, and the victim's file key must open no blob.

The account's end-to-end encryption goes too: its identity keys (old and new), its
sealed backup, the key event and the envelopes of its end-to-end conversation.

The same attack on a copy taken before the deletion must read all of it: without that
positive control a broken attack would pass silently.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest
import requests

from ghostcache import e2ee as gce1
from tests import forensics
from tests.conftest import DPASS, PASSWORD
from tests.databases import on_postgres
from tests.e2ee_live import E2EEClient, turn_on
from tests.forensics import Thief, Victim, canary
from tests.live import LiveServer
from tests.test_chat_live import Client

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(on_postgres(), reason="SQLite only: reads the database file's pages"),
]

WAIT_SECONDS, EVERY_SECONDS = 10.0, 0.5


def befriend(victim: Client, contact: Client) -> int:
    """Connects the two; the connection id."""
    asked = victim.post("/connect", {"username": contact.username})
    assert asked.status_code == 201, asked.text
    accepted = contact.post(f"/connect/accept/{asked.json()['id']}")
    assert accepted.status_code == 200, accepted.text
    return asked.json()["id"]


def converse_end_to_end(victim: Client, contact: Client, connection_id: int, story: Victim) -> None:
    """The conversation turns end-to-end encrypted: two envelopes each way (a message
    in the victim's story, though the attacker must not read it even before), and the
    victim resets their key once; what the server stored of it joins story.stored."""
    mine, theirs = E2EEClient(victim), E2EEClient(contact)
    turn_on(mine, theirs)
    texts = [canary(f"e2ee{i}") for i in range(4)]

    def exchange(mine_text: str, their_text: str) -> list[dict[str, str]]:
        sent = [mine.send(theirs, connection_id, mine_text), theirs.send(mine, connection_id, their_text)]
        assert theirs.read(mine, connection_id) == [mine_text]
        assert mine.read(theirs, connection_id) == [their_text]
        return sent

    envelopes = exchange(texts[0], texts[1])
    mine.reset()
    envelopes += exchange(texts[2], texts[3])
    story.stored |= {f"envelope {i}": e["ct"] for i, e in enumerate(envelopes)}
    story.stored |= {"identity key": gce1.b64u(mine.pub), "sealed backup": mine.backup_blob}
    story.stored |= {f"key id {i}": kid for i, kid in enumerate(mine.kids)}


def converse(victim: Client, contact: Client, messages: list[str]) -> None:
    """Messages alternate victim -> contact, contact -> victim; both read them (poll and
    history), so the delivered flags change too."""
    for i, text in enumerate(messages):
        sender, receiver = (victim, contact) if i % 2 == 0 else (contact, victim)
        sender.send(receiver, text)
    for reader in (contact, victim):  # the token: a poll changes state
        polled = reader.get("/chat/poll", headers={"X-CSRFToken": reader.token})
        assert polled.status_code == 200, polled.text
    history = contact.get(f"/chat/{victim.id}")
    assert history.status_code == 200, history.text
    assert [m["message"] for m in history.json()["messages"]] == messages


def upload_and_share(victim: Client, contact: Client, filename: str, content: bytes) -> str:
    """The victim uploads a file and shares it with the contact, who downloads it;
    returns the victim's file key."""
    uploaded = victim.http.post(
        victim.base + "/file/upload",
        files={"file": (filename, content)},
        headers={"X-CSRFToken": victim.token},
        timeout=30,
    )
    assert uploaded.status_code == 201, uploaded.text
    file = uploaded.json()
    shared = victim.post(f"/file/{file['id']}/share", {"username": contact.username})
    assert shared.status_code == 201, shared.text
    assert contact.get(f"/file/{file['id']}").status_code == 200
    return file["key"]


def login_answer(server: LiveServer, username: str, password: str) -> requests.Response:
    """A login attempt from a fresh browser."""
    return Client(server.url, username).post("/login", {"username": username, "password": password})


def destruction_password(server: LiveServer, victim: Client) -> None:
    wrong = login_answer(server, victim.username, "not the password at all")
    coerced = login_answer(server, victim.username, DPASS)
    assert coerced.status_code == wrong.status_code == 401, coerced.text
    assert coerced.json() == wrong.json() and coerced.json()["error"] == "invalid_credentials"


def delete_account(server: LiveServer, victim: Client) -> None:
    deleted = victim.post("/delete_account")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"deleted": True}


@pytest.mark.parametrize("destroy", [destruction_password, delete_account])
def test_deleted_account_leaves_nothing_readable_in_a_copy_of_the_data_folder(
    live_server: LiveServer, tmp_path, destroy: Callable[[LiveServer, Client], None]
):
    victim_name = f"Victim{secrets.token_hex(6)}"  # mixed case: must be gone in any case
    victim = Client(live_server.url, victim_name).signup()
    contact = Client(live_server.url, f"contact{secrets.token_hex(6)}").signup()
    connection_id = befriend(victim, contact)
    story = Victim(victim_name, [canary(f"message{i}") for i in range(6)], canary("file") + ".txt")
    converse(victim, contact, story.messages)
    converse_end_to_end(victim, contact, connection_id, story)
    file_key = upload_and_share(victim, contact, story.filename, canary("content").encode())
    thief = Thief(live_server.data_dir, tmp_path / "thief", extra=[live_server.log_path])

    # Positive control: before the deletion the attack reads everything.
    assert thief.control(story, file_key) == [], "the attack is broken: it cannot read these"

    destroy(live_server, victim)
    assert login_answer(live_server, victim_name, PASSWORD).status_code == 401
    found = thief.wait_until_gone(story, file_key, WAIT_SECONDS, EVERY_SECONDS)
    if found:
        pytest.fail(
            f"{WAIT_SECONDS:.0f}s after {destroy.__name__}, copy {thief.copies} of the data folder "
            f"still gives away:\n{forensics.report(found)}"
        )
    assert contact.get("/connections").status_code == 200  # the contact's account lives on


def test_an_end_to_end_message_is_unreadable_even_with_the_master_key(live_server: LiveServer, tmp_path):
    """The attacker of docs/SECURITY.md holds the whole data folder, master.key and the
    log, with both accounts alive: the plain conversation is readable (the control), the
    end-to-end encrypted one is not, though its envelopes are all there."""
    alice = Client(live_server.url, f"alice{secrets.token_hex(4)}").signup()
    bob = Client(live_server.url, f"bob{secrets.token_hex(4)}").signup()
    connection_id = befriend(alice, bob)
    plain = canary("plain")
    alice.send(bob, plain)
    mine, theirs = E2EEClient(alice), E2EEClient(bob)
    turn_on(mine, theirs)
    secret_texts = [canary("e2ee-out"), canary("e2ee-back")]
    envelopes = [
        mine.send(theirs, connection_id, secret_texts[0]),
        theirs.send(mine, connection_id, secret_texts[1]),
    ]
    assert theirs.read(mine, connection_id) == secret_texts[:1]
    assert mine.read(theirs, connection_id) == secret_texts[1:]

    copy = Thief(live_server.data_dir, tmp_path / "thief", extra=[live_server.log_path]).copy()
    result = forensics.attack_folder(copy)
    needles = {"plain": plain, "envelope 0": envelopes[0]["ct"], "envelope 1": envelopes[1]["ct"]}
    needles |= {f"e2ee {i}": text for i, text in enumerate(secret_texts)}
    found = forensics.leftovers(result, {name: (text.encode(), False) for name, text in needles.items()})
    assert {"plain", "envelope 0", "envelope 1"} <= found.keys(), f"the attack is broken: {result.summary()}"
    assert not found.keys() & {"e2ee 0", "e2ee 1"}, forensics.report(found)
