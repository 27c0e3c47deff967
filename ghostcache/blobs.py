"""Where encrypted file blobs live: the BlobStore port, its local-folder adapter, and
`blob_store_for`, which picks the folder or S3 (`s3blobs.py`) from the settings."""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from .filemodes import create_private_file, make_private_dirs
from .settings import PREFIX, Settings, SettingsError

_NAME = re.compile(r"[0-9a-f]{32}")  # always fullmatch: `$` would let a trailing newline in
INCOMING = ".incoming"
# Files of the data folder: a blob folder holding any of them is a data folder,
# and blobs must never sit beside the keys and the database.
DATA_FILES = ("master.key", "secret.key", "ghostcache.db", "ghostcache.db-wal", "ghostcache.db-shm")


def new_blob_name() -> str:
    """A random, unguessable name for a new blob."""
    return secrets.token_hex(16)


class BlobStore(Protocol):
    def writer(self, name: str) -> AbstractContextManager[BinaryIO]:
        """Context manager giving a binary writer; the blob appears only if the block succeeds."""

    def open(self, name: str) -> BinaryIO: ...

    def delete(self, name: str) -> None: ...

    def exists(self, name: str) -> bool: ...

    def sweep(self, keep: set[str], older_than_seconds: float) -> int:
        """Remove blobs not in `keep` and abandoned partial writes; returns how many."""


def blob_store_for(settings: Settings) -> BlobStore:
    """The blob folder (the default), or the S3 bucket of GHOSTCACHE_BLOB_URL when it is set."""
    if settings.blob_url:
        try:
            from .s3blobs import S3BlobStore  # only here: a folder deployment never imports boto3
        except ImportError as exc:
            if exc.name not in {"boto3", "botocore"}:
                raise
            raise SettingsError(
                f"Setting {PREFIX}BLOB_URL needs boto3, which is not installed: pip install 'ghostcache[s3]'."
            ) from None
        return S3BlobStore.from_settings(settings)
    return LocalBlobStore(settings.blob_path)


class LocalBlobStore:
    """Blobs as files (mode 0600) in one folder; partial writes live in .incoming/ until complete."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.incoming = self.root / INCOMING
        _refuse_data_files(self.root)
        make_private_dirs(self.incoming)

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError("invalid blob name")
        return self.root / name

    @contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        final = self._path(name)
        partial = self.incoming / name
        handle = os.fdopen(create_private_file(partial), "wb")
        try:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.replace(partial, final)
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise

    def open(self, name: str) -> BinaryIO:
        return open(self._path(name), "rb")

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def sweep(self, keep: set[str], older_than_seconds: float) -> int:
        """Remove old blob-named files not in `keep`, and old partial writes; nothing else.

        Only regular files named like a blob, directly in the folder or in .incoming/,
        are candidates: anything else there (key files, a database, folders, symlinks)
        is not ours and stays, whatever folder the setting points at.
        """
        cutoff = time.time() - older_than_seconds
        candidates = [p for p in _blob_files(self.root) if p.name not in keep]
        if _is_real_folder(self.incoming):  # a symlink here could lead out of the folder
            candidates += _blob_files(self.incoming)
        return sum(_remove_if_older(path, cutoff) for path in candidates)


def _blob_files(folder: Path) -> list[Path]:
    """Regular files (symlinks not followed) directly in `folder` whose names are blob names."""
    with os.scandir(folder) as entries:
        return [
            Path(entry.path)
            for entry in entries
            if _NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
        ]


def _is_real_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def _remove_if_older(path: Path, cutoff: float) -> bool:
    try:
        if path.lstat().st_mtime >= cutoff:
            return False
        path.unlink()  # never follows a symlink, should one have replaced the file meanwhile
    except FileNotFoundError:
        return False
    return True


def _refuse_data_files(root: Path) -> None:
    """Refuse a blob folder that holds the key files or the database (DATA_FILES)."""
    found = [name for name in DATA_FILES if os.path.lexists(root / name)]
    if found:
        raise SettingsError(
            f"The blob folder {root} holds {', '.join(found)}: it is a data folder. Set "
            f"{PREFIX}BLOB_DIR to a folder of its own (the default is <data dir>/blobs)."
        )
