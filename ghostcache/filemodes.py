"""Private files and folders: what GhostCache creates is its owner's alone (0600 / 0700).

Two layers, so that neither alone has to be right: the `ghostcache` command runs
with umask 0o077 (`PRIVATE_UMASK`), and every place that creates a file or folder
asks for the private mode explicitly, which holds whatever umask the process has
(tests, or gunicorn started by hand on `ghostcache.wsgi:app`).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
FOLDER_MODE = 0o700


def make_private_dirs(folder: Path) -> bool:
    """Create `folder` and any missing parents with mode 0700; True if `folder` was created.

    Folders that already exist keep their mode: an operator may have made them on purpose.
    """
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    made = [path for path in reversed(missing) if _make_private_dir(path)]
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    return folder in made


def _make_private_dir(path: Path) -> bool:
    try:
        os.mkdir(path, FOLDER_MODE)
    except FileExistsError:  # another worker made it first, with the same mode
        return False
    os.chmod(path, FOLDER_MODE)  # mkdir's mode passes through the umask; chmod's does not
    return True


def create_private_file(path: Path) -> int:
    """Create a new file (never an existing one, never through a symlink) with mode 0600;
    returns a descriptor open for writing."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # an unusual umask (0o277) would otherwise leave it read-only
    except BaseException:
        os.close(fd)
        raise
    return fd


def prepare_data_dir(folder: Path) -> None:
    """Create the data folder private; an existing one keeps its mode, with one warning
    if other local users may look into it."""
    if make_private_dirs(folder):
        return
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "The data folder %s is open to other local users (mode %s). What GhostCache now "
            "creates in it is private (0600), but `chmod 700` on the folder hides even the names.",
            folder,
            oct(mode),
        )


def precreate_sqlite_file(url: str) -> None:
    """Create a SQLite database file empty with mode 0600 before SQLite first opens it.

    SQLite creates a missing database file with mode 0644 less the umask, and gives
    its -wal and -shm files the database file's mode: a private file here keeps all
    three private. Other databases, in-memory ones and a missing folder are left alone.
    """
    # Imported here: the `ghostcache serve` master imports this module for PRIVATE_UMASK,
    # and must not import SQLAlchemy before its workers fork (see cli.serve).
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return
    if database.startswith("file:") or parsed.query.get("uri"):
        return  # URI filenames carry their own options; SQLite parses those itself
    path = Path(database)
    if path.exists() or not path.parent.is_dir():
        return
    try:
        os.close(create_private_file(path))
    except FileExistsError:  # another process made it first
        pass
