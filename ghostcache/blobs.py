"""Where encrypted file blobs live: the BlobStore port and its local-folder adapter."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

_NAME = re.compile(r"^[0-9a-f]{32}$")
INCOMING = ".incoming"


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


class LocalBlobStore:
    """Blobs as files in one folder; partial writes live in .incoming/ until complete."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.incoming = self.root / INCOMING
        self.incoming.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError("invalid blob name")
        return self.root / name

    @contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        final = self._path(name)
        partial = self.incoming / name
        handle = open(partial, "xb")
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
        cutoff = time.time() - older_than_seconds
        removed = 0
        candidates = [p for p in self.root.iterdir() if p.is_file() and p.name not in keep]
        candidates += list(self.incoming.iterdir())
        for path in candidates:
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
