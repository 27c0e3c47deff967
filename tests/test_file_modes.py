"""Every file and folder GhostCache creates is its owner's alone (0600 / 0700), whatever
the umask: in-process apps (explicit modes) and a real server (umask 0o077 as well)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from ghostcache import create_app
from ghostcache.cli import main
from ghostcache.database import upgrade
from ghostcache.filemodes import create_private_file, make_private_dirs, precreate_sqlite_file
from ghostcache.settings import Settings
from tests.conftest import BufferedClient, Session
from tests.databases import on_postgres
from tests.live import LiveServer
from tests.test_chat_live import Client

OPEN_WARNING = "is open to other local users"


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default umask, under which files come out 0644 unless asked otherwise."""
    with umask(0o022):
        yield


def shared_folder(path: Path) -> Path:
    """A data folder an operator made beforehand, open to everyone (0755)."""
    path.mkdir()
    path.chmod(0o755)
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def too_open(root: Path) -> list[str]:
    """Everything under root (root itself excluded) that is not owner-only: files must be
    0600, folders 0700, sockets may have no group or other bits."""
    wrong = []
    for path in sorted(root.rglob("*")):
        kind = path.lstat().st_mode
        if stat.S_ISDIR(kind):
            expected_ok = mode(path) == 0o700
        elif stat.S_ISSOCK(kind):
            expected_ok = mode(path) & 0o077 == 0
        else:
            expected_ok = stat.S_ISREG(kind) and mode(path) == 0o600
        if not expected_ok:
            wrong.append(f"{path.relative_to(root)} {oct(mode(path))}")
    return wrong


def names(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ---- the helpers ---------------------------------------------------------------------------


def test_private_folders_are_0700_with_their_new_parents_under_a_loose_umask(tmp_path, loose_umask):
    assert make_private_dirs(tmp_path / "a" / "b" / "c") is True
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3


def test_an_existing_folder_keeps_its_mode(tmp_path, loose_umask):
    folder = shared_folder(tmp_path / "mine")
    assert make_private_dirs(folder) is False
    assert mode(folder) == 0o755


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277])
def test_private_files_are_0600_whatever_the_umask(tmp_path, mask):
    with umask(mask):
        os.close(create_private_file(tmp_path / "f"))
    assert mode(tmp_path / "f") == 0o600


def test_private_file_creation_never_reuses_an_existing_file_or_symlink(tmp_path):
    (tmp_path / "target").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    for name in ("target", "link"):
        with pytest.raises(FileExistsError):
            create_private_file(tmp_path / name)


def test_a_new_sqlite_database_file_is_precreated_private(tmp_path, loose_umask):
    precreate_sqlite_file(f"sqlite:///{tmp_path / 'new.db'}")
    assert mode(tmp_path / "new.db") == 0o600 and (tmp_path / "new.db").stat().st_size == 0


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "postgresql://u@localhost/db", "sqlite:///{tmp}/missing/x.db"],
)
def test_other_databases_and_missing_folders_are_left_alone(tmp_path, url):
    before = names(tmp_path)
    precreate_sqlite_file(url.format(tmp=tmp_path))
    assert names(tmp_path) == before


def test_an_existing_database_file_is_not_touched(tmp_path, loose_umask):
    db_file = tmp_path / "old.db"
    db_file.write_bytes(b"")
    precreate_sqlite_file(f"sqlite:///{db_file}")
    assert mode(db_file) == 0o644


# ---- the warning about an open data folder ------------------------------------------------------


def build_app(data_dir: Path):
    app = create_app(Settings(data_dir=data_dir, argon2_profile="fast", purge_interval_seconds=0))
    app.test_client_class = BufferedClient
    app.config["TESTING"] = True
    upgrade(app)
    return app


def test_an_open_existing_data_folder_is_kept_with_one_warning(tmp_path, loose_umask, caplog):
    data = shared_folder(tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="ghostcache"):
        build_app(data)
    warnings = [r.getMessage() for r in caplog.records if OPEN_WARNING in r.getMessage()]
    assert len(warnings) == 1 and f"The data folder {data} {OPEN_WARNING} (mode 0o755)" in warnings[0]
    assert mode(data) == 0o755


@pytest.mark.parametrize("make", ["new", "private"])
def test_a_new_or_private_data_folder_gives_no_warning(tmp_path, loose_umask, caplog, make):
    data = tmp_path / "data"
    if make == "private":
        data.mkdir(mode=0o700)
    with caplog.at_level(logging.WARNING, logger="ghostcache"):
        build_app(data)
    assert not [r for r in caplog.records if OPEN_WARNING in r.getMessage()]
    assert mode(data) == 0o700


# ---- an app in this process, under umask 022 ---------------------------------------------------


def test_everything_an_app_creates_is_private_under_a_loose_umask(tmp_path, loose_umask):
    data = shared_folder(tmp_path / "data")
    app = build_app(data)
    alice, bob = Session(app), Session(app)
    for session, name in ((alice, "alice"), (bob, "bob")):
        assert session.register(name).status_code == 201 and session.login(name).status_code == 200
    conn = alice.post("/connect", {"username": "bob"}).get_json()
    assert bob.post(f"/connect/accept/{conn['id']}").status_code == 200
    assert alice.post("/chat/send", {"receiver_id": bob.id, "message": "hi"}).status_code == 201
    assert alice.upload(b"private bytes").status_code == 201
    created = names(data)
    assert {"master.key", "secret.key", "ghostcache.db", "ghostcache.db-wal", "blobs/.incoming"} <= created
    assert any(len(n) == len("blobs/") + 32 for n in created), created
    assert too_open(data) == []
    assert mode(data) == 0o755  # the operator's folder keeps its own mode


def test_a_blob_folder_elsewhere_is_created_private_with_its_parents(tmp_path, loose_umask):
    settings = Settings(data_dir=tmp_path / "data", blob_dir=tmp_path / "store" / "blobs")
    create_app(settings.with_overrides(argon2_profile="fast"))
    assert too_open(tmp_path) == []


def test_the_cli_runs_with_umask_077_and_restores_the_callers(tmp_path, loose_umask, monkeypatch):
    seen = []
    monkeypatch.setattr("ghostcache.database.upgrade", lambda app: seen.append(current_umask()))
    result = CliRunner().invoke(main, ["migrate"], env={"GHOSTCACHE_DATA_DIR": str(tmp_path / "d")})
    assert result.exit_code == 0, result.output
    assert seen == [0o077]
    assert current_umask() == 0o022


# ---- a real server, started under umask 022 ------------------------------------------------------


def proc_umask(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    pytest.skip("this kernel does not show a process's umask")


@pytest.fixture
def loose_server(tmp_path) -> Iterator[LiveServer]:
    """A real server on an existing 0755 data folder, started from a umask-022 process."""
    server = LiveServer(shared_folder(tmp_path / "data"))
    with umask(0o022):
        server.start()
    yield server
    server.stop()


@pytest.mark.live
def test_everything_a_real_server_creates_is_private(loose_server):
    alice = Client(loose_server.url, "alice").signup()
    bob = Client(loose_server.url, "bob").signup()
    conn = alice.post("/connect", {"username": "bob"})
    assert bob.post(f"/connect/accept/{conn.json()['id']}").status_code == 200
    alice.send(bob, "hello")
    uploaded = alice.http.post(
        loose_server.url + "/file/upload",
        files={"file": ("notes.txt", b"private bytes")},
        headers={"X-CSRFToken": alice.token},
        timeout=30,
    )
    assert uploaded.status_code == 201, uploaded.text
    data = loose_server.data_dir
    created = names(data)
    database = set() if on_postgres() else {"ghostcache.db", "ghostcache.db-wal"}
    assert {"master.key", "secret.key", "run"} | database <= created
    assert any(n.startswith("run/") and n.endswith(".sock") for n in created), created
    assert too_open(data) == []
    assert mode(data) == 0o755
    assert OPEN_WARNING in loose_server.log()


@pytest.mark.live
def test_a_real_servers_master_and_workers_run_with_umask_077(loose_server):
    assert loose_server.process is not None
    pids = [loose_server.process.pid, *loose_server.worker_pids()]
    assert len(pids) == 3
    assert {pid: proc_umask(pid) for pid in pids} == dict.fromkeys(pids, 0o077)
