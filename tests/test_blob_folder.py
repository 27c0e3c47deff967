"""The blob folder stays apart from the data folder, and the purge removes only blobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ghostcache import create_app
from ghostcache.blobs import DATA_FILES, LocalBlobStore
from ghostcache.cli import main
from ghostcache.settings import Settings, SettingsError, load_settings
from tests.live import free_port

ORPHAN, PARTIAL, KEPT = "ab" * 16, "cd" * 16, "ef" * 16
TWO_HOURS_AGO = time.time() - 7200
BLOB_DIR_REFUSED = "Setting GHOSTCACHE_BLOB_DIR has value"
HOLDS_DATA_FILES = "it is a data folder"


def env_for(data_dir: Path, blob_dir: Path) -> dict[str, str]:
    return {"GHOSTCACHE_DATA_DIR": str(data_dir), "GHOSTCACHE_BLOB_DIR": str(blob_dir)}


def run_serve(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """`ghostcache serve` in a process of its own, expected to refuse to start; a server
    that starts anyway is killed (with its workers) after `timeout` and fails the test."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GHOSTCACHE_")}
    command = [sys.executable, "-c", "from ghostcache.cli import main; main()", "serve"]
    process = subprocess.Popen(
        command,
        env={**clean, "GHOSTCACHE_PORT": str(free_port()), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("`ghostcache serve` started instead of refusing")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


# ---- the blob folder is not the data folder, nor holds it ------------------------------


def refused_layouts(tmp: Path) -> dict[str, tuple[Path, Path]]:
    """(data folder, blob folder) pairs that must be refused."""
    (tmp / "real").mkdir()
    (tmp / "link").symlink_to(tmp / "real")
    return {
        "the same folder": (tmp / "data", tmp / "data"),
        "the same folder, spelt differently": (tmp / "data", tmp / "x" / ".." / "data" / "."),
        "the same folder, through a symlink": (tmp / "link", tmp / "real"),
        "the data folder inside the blob folder": (tmp / "blobs" / "data", tmp / "blobs"),
        "the data folder deep inside it": (tmp / "srv" / "gc" / "data", tmp / "srv"),
    }


LAYOUT_NAMES = [
    "the same folder",
    "the same folder, spelt differently",
    "the same folder, through a symlink",
    "the data folder inside the blob folder",
    "the data folder deep inside it",
]  # the keys of refused_layouts(), which needs a folder to build


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_settings_refuse_a_blob_folder_that_is_or_holds_the_data_folder(tmp_path, layout):
    data_dir, blob_dir = refused_layouts(tmp_path)[layout]
    with pytest.raises(SettingsError, match=BLOB_DIR_REFUSED) as refused:
        load_settings(env_for(data_dir, blob_dir))
    assert "a folder of their own" in str(refused.value)


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_create_app_refuses_such_settings_before_creating_anything(tmp_path, layout):
    data_dir, blob_dir = refused_layouts(tmp_path)[layout]
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SettingsError, match=BLOB_DIR_REFUSED):
        create_app(Settings(data_dir=data_dir, blob_dir=blob_dir, argon2_profile="fast"))
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    "blob_dir",
    [Path("data/blobs"), Path("data/deep/blobs"), Path("elsewhere/blobs"), Path("data-blobs")],
)
def test_a_blob_folder_inside_the_data_folder_or_beside_it_is_accepted(tmp_path, blob_dir):
    settings = load_settings(env_for(tmp_path / "data", tmp_path / blob_dir))
    assert settings.blob_path == tmp_path / blob_dir


def test_the_default_blob_folder_is_accepted(tmp_path):
    assert load_settings({"GHOSTCACHE_DATA_DIR": str(tmp_path)}).blob_path == tmp_path / "blobs"


def test_cli_serve_refuses_the_data_folder_as_blob_folder_with_a_message(tmp_path):
    result = run_serve(env_for(tmp_path / "data", tmp_path / "data"))
    assert result.returncode == 1, result.stderr
    assert BLOB_DIR_REFUSED in result.stderr and "That is the data folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_migrate_refuses_a_blob_folder_holding_the_data_folder(tmp_path):
    result = CliRunner().invoke(main, ["migrate"], env=env_for(tmp_path / "b" / "data", tmp_path / "b"))
    assert result.exit_code == 1
    assert BLOB_DIR_REFUSED in result.output and "is inside it" in result.output


# ---- a blob folder holding key files or a database is a data folder ------------------------


@pytest.mark.parametrize("name", DATA_FILES)
def test_blob_store_refuses_a_folder_holding_a_data_file(tmp_path, name):
    (tmp_path / name).write_text("not a blob")
    with pytest.raises(SettingsError, match=HOLDS_DATA_FILES) as refused:
        LocalBlobStore(tmp_path)
    assert name in str(refused.value) and "GHOSTCACHE_BLOB_DIR" in str(refused.value)
    assert not (tmp_path / ".incoming").exists()


def test_blob_store_refuses_a_symlinked_key_file_too(tmp_path):
    (tmp_path / "master.key").symlink_to(tmp_path / "gone")
    with pytest.raises(SettingsError, match=HOLDS_DATA_FILES):
        LocalBlobStore(tmp_path)


def test_cli_serve_refuses_a_blob_folder_holding_key_files_with_a_message(tmp_path):
    """Another data folder (its own keys) given as the blob folder: the server does not start."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "master.key").write_text("someone's key")
    (other / "secret.key").write_text("someone's key")
    result = run_serve(env_for(tmp_path / "data", other))
    assert result.returncode == 1, result.stderr
    assert "holds master.key, secret.key: it is a data folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert (other / "master.key").read_text() == "someone's key"


# ---- the sweep removes blobs and nothing else ------------------------------------------------

NOT_OURS = [
    "master.key",
    "secret.key",
    "ghostcache.db",
    "ghostcache.db-wal",
    "ghostcache.db-shm",
    "notes.txt",
    "a" * 31,
    "a" * 33,
    "AB" * 16,
    "ab" * 15 + "xy",
    "ab" * 16 + ".age",
    "ab" * 16 + "\n",  # a `$`-anchored pattern would take this for a blob name
]


def old(path: Path) -> Path:
    os.utime(path, (TWO_HOURS_AGO, TWO_HOURS_AGO), follow_symlinks=False)
    return path


def plant(folder: Path, name: str, content: bytes = b"data") -> Path:
    path = folder / name
    path.write_bytes(content)
    return old(path)


@pytest.fixture
def store(tmp_path) -> LocalBlobStore:
    """A blob store whose folder, after it was opened, filled up with things not its own."""
    store = LocalBlobStore(tmp_path / "blobs")
    for name in NOT_OURS:
        plant(store.root, name)
    subfolder = store.root / ("12" * 16)  # named like a blob, but a folder
    subfolder.mkdir()
    plant(subfolder, "34" * 16)
    old(subfolder)
    plant(store.root / ".incoming", "notes.txt")
    return store


def test_sweep_removes_old_orphans_and_partials_and_nothing_else(store):
    plant(store.root, ORPHAN)
    plant(store.root, KEPT)
    plant(store.incoming, PARTIAL)
    assert store.sweep({KEPT}, older_than_seconds=3600) == 2
    assert not (store.root / ORPHAN).exists() and not (store.incoming / PARTIAL).exists()
    left = {p.name for p in store.root.iterdir()}
    assert left == {*NOT_OURS, KEPT, "12" * 16, ".incoming"}
    assert [p.name for p in (store.root / ("12" * 16)).iterdir()] == ["34" * 16]
    assert [p.name for p in store.incoming.iterdir()] == ["notes.txt"]


def test_sweep_with_zero_grace_still_removes_only_blob_names(store):
    assert store.sweep(set(), older_than_seconds=0) == 0
    assert {*NOT_OURS, "12" * 16} <= {p.name for p in store.root.iterdir()}


def test_sweep_never_follows_a_symlink_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = plant(outside, ORPHAN, b"precious")
    store = LocalBlobStore(tmp_path / "blobs")
    (store.root / PARTIAL).symlink_to(target)
    old(store.root / PARTIAL)
    store.incoming.rmdir()
    store.incoming.symlink_to(outside)
    assert store.sweep(set(), older_than_seconds=0) == 0
    assert target.read_bytes() == b"precious"
    assert (store.root / PARTIAL).is_symlink()


def test_sweep_spares_the_data_files_when_pointed_at_a_data_folder_after_all(tmp_path):
    """Were the start-up checks bypassed, a purge over the data folder still removes only blobs."""
    data = tmp_path / "data"
    app = create_app(Settings(data_dir=data, argon2_profile="fast", purge_interval_seconds=0))
    store = app.extensions["ghostcache"].blobs
    store.root = data  # as if GHOSTCACHE_BLOB_DIR had been the data folder
    for name in ("master.key", "secret.key", "ghostcache.db"):
        old(data / name)
    plant(data, ORPHAN)
    assert store.sweep(set(), older_than_seconds=0) == 1
    assert {"master.key", "secret.key", "ghostcache.db", "blobs"} <= {p.name for p in data.iterdir()}
