"""deploy/backup.sh and deploy/restore.sh, exercised once end to end on real servers: a
backup taken while the server runs, restored into a new folder, serves the same chat
history and files; restored without the master key, it keeps files but loses chats."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pyrage
import pytest

from tests.conftest import PASSWORD
from tests.live import LiveServer
from tests.test_chat_live import Client

pytestmark = pytest.mark.live

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
MESSAGE = "this line must come back from the backup"
CONTENT = b"the file that must come back\n" * 1000


def run(script: str, *args: str | Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHOSTCACHE_")}
    return subprocess.run(
        ["bash", str(DEPLOY / script), *map(str, args)],
        env=env | {"PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )


def sign_in(base: str, username: str) -> Client:
    client = Client(base, username)
    response = client.post("/login", {"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    client.token, client.id = response.json()["csrf_token"], response.json()["id"]
    return client


def serve(data_dir: Path) -> LiveServer:
    return LiveServer(data_dir, database_url="").start()  # backup.sh is for SQLite


@pytest.fixture(scope="module")
def backups(tmp_path_factory):
    """One server with a conversation and a file; two backups taken while it runs."""
    root = tmp_path_factory.mktemp("backups")
    data = root / "data"
    server = serve(data)
    try:
        alice = Client(server.url, "alice").signup()
        bob = Client(server.url, "bob").signup()
        request = alice.post("/connect", {"username": "bob"})
        assert bob.post(f"/connect/accept/{request.json()['id']}").status_code == 200
        alice.send(bob, MESSAGE)
        upload = alice.http.post(
            server.url + "/file/upload",
            files={"file": ("report.txt", CONTENT)},
            headers={"X-CSRFToken": alice.token},
            timeout=30,
        )
        assert upload.status_code == 201, upload.text
        # Recent writes are in SQLite's WAL: the copy must take them in (the backup API does).
        assert (data / "ghostcache.db-wal").stat().st_size > 0
        with_keys = run("backup.sh", "--with-keys", data, root / "with-keys")
        without_keys = run("backup.sh", data, root / "without-keys")
    finally:
        server.stop()
    for made in (with_keys, without_keys):
        assert made.returncode == 0, made.stderr
    assert "keys not included" in without_keys.stdout
    return {
        "with_keys": _only_tar(root / "with-keys"),
        "without_keys": _only_tar(root / "without-keys"),
        "master_key": (data / "master.key").read_text(),
        "file": upload.json(),
        "ids": (alice.id, bob.id),
        "root": root,
    }


def _only_tar(folder: Path) -> Path:
    tars = list(folder.iterdir())
    assert len(tars) == 1 and tars[0].suffix == ".tar", tars
    assert tars[0].stat().st_mode & 0o077 == 0  # the backup is its owner's alone
    return tars[0]


def _members(tar: Path) -> set[str]:
    with tarfile.open(tar) as archive:
        return {Path(*Path(name).parts[1:]).as_posix() for name in archive.getnames()}


def test_what_a_backup_holds(backups):
    with_keys, without_keys = _members(backups["with_keys"]), _members(backups["without_keys"])
    assert {"ghostcache.db", "keys/master.key", "keys/secret.key"} <= with_keys
    assert "ghostcache.db" in without_keys
    assert not any(name.startswith("keys") for name in without_keys)
    blobs = {name for name in with_keys if name.startswith("blobs/") and len(name) == 6 + 32}
    assert len(blobs) == 1, with_keys  # the one upload; .incoming/ never


def test_restore_serves_the_history_and_the_files(backups):
    data = backups["root"] / "restored"
    restored = run("restore.sh", backups["with_keys"], data)
    assert restored.returncode == 0, restored.stderr
    assert (data / "master.key").read_text() == backups["master_key"]
    assert {p.name for p in data.iterdir()} >= {"ghostcache.db", "blobs", "master.key", "secret.key"}
    alice_id, bob_id = backups["ids"]
    server = serve(data)
    try:
        bob = sign_in(server.url, "bob")
        history = bob.get(f"/chat/{alice_id}")
        assert history.status_code == 200, history.text
        assert [m["message"] for m in history.json()["messages"]] == [MESSAGE]
        alice = sign_in(server.url, "alice")
        blob = alice.get(f"/file/{backups['file']['id']}")
        assert blob.status_code == 200
        identity = pyrage.x25519.Identity.from_str(backups["file"]["key"])
        assert pyrage.decrypt(blob.content, [identity]) == CONTENT
    finally:
        server.stop()


def test_restore_refuses_to_go_on_without_the_master_key(backups):
    data = backups["root"] / "refused"
    refused = run("restore.sh", backups["without_keys"], data)
    assert refused.returncode != 0
    assert "--no-master-key" in refused.stderr
    assert not data.exists()  # nothing written


def test_restore_without_the_master_key_keeps_files_but_loses_chats(backups):
    """What really happens (docs/OPERATIONS.md): the server makes a new master key;
    logins and files work; every look at a stored chat is a server error."""
    data = backups["root"] / "keyless"
    restored = run("restore.sh", "--no-master-key", backups["without_keys"], data)
    assert restored.returncode == 0, restored.stderr
    assert "stored chats cannot be read" in restored.stdout
    alice_id, _ = backups["ids"]
    server = serve(data)
    try:
        assert (data / "master.key").read_text() != backups["master_key"]  # made anew
        bob = sign_in(server.url, "bob")  # a new secret.key: old sessions are gone anyway
        assert bob.get(f"/chat/{alice_id}").status_code == 500
        assert bob.get("/conversations").status_code == 500
        alice = sign_in(server.url, "alice")
        blob = alice.get(f"/file/{backups['file']['id']}")
        identity = pyrage.x25519.Identity.from_str(backups["file"]["key"])
        assert pyrage.decrypt(blob.content, [identity]) == CONTENT
    finally:
        server.stop()
