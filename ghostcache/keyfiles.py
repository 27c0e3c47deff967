"""Key files in the data folder: created once with mode 0600, shared by all workers."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .crypto import MasterKeyring, new_fernet_key
from .secrets import Secret
from .settings import Settings


def _read_or_create(path: Path, make: callable) -> str:
    """Read a key file, or create it atomically so racing workers agree on one key."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(make() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails if another process won the race
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def master_key_path(settings: Settings) -> Path:
    return settings.data_dir / "master.key"


def load_master_keyring(settings: Settings) -> MasterKeyring:
    """Keys from GHOSTCACHE_MASTER_KEY (comma-separated) or data_dir/master.key (one a line)."""
    if settings.master_key is not None:
        raw = str(settings.master_key.reveal()).replace(",", "\n")
    else:
        raw = _read_or_create(master_key_path(settings), lambda: new_fernet_key().reveal().decode())
    keys = [Secret(line.strip().encode()) for line in raw.splitlines() if line.strip()]
    return MasterKeyring(keys)


def load_secret_key(settings: Settings) -> Secret:
    """The Flask session-signing key, stable across restarts and workers."""
    if settings.secret_key is not None:
        return settings.secret_key
    return Secret(_read_or_create(settings.data_dir / "secret.key", lambda: secrets.token_hex(32)))
