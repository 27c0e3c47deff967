"""Key files in the data folder: created once with mode 0600, shared by all workers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from .crypto import CryptoError, MasterKeyring, new_fernet_key
from .filemodes import create_private_file, make_private_dirs
from .secrets import Secret
from .settings import Settings, SettingsError


def _read_or_create(path: Path, make: Callable[[], str]) -> str:
    """Read a key file, or create it atomically so racing workers agree on one key."""
    if path.exists():
        return path.read_text().strip()
    make_private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = create_private_file(tmp)
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
    """The master key file: the one the settings name, else the data folder's."""
    return settings.master_key_file or settings.data_dir / "master.key"


def _given_file(path: Path, setting: str) -> str:
    """The text of a key file the settings name; it must exist (it is never made)."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise SettingsError(
            f"Setting GHOSTCACHE_{setting} names {str(path)!r}, which cannot be read "
            f"({exc.strerror or exc.__class__.__name__}). Nothing makes this file: create it "
            "on every node with the same key."
        ) from None
    if not text:
        raise SettingsError(f"Setting GHOSTCACHE_{setting} names {str(path)!r}, which is empty.")
    return text


def _parse_keys(raw: str) -> list[Secret[bytes]]:
    return [Secret(line.strip().encode()) for line in raw.replace(",", "\n").splitlines() if line.strip()]


def load_master_keyring(settings: Settings) -> MasterKeyring | KeyFileRing:
    """Keys from GHOSTCACHE_MASTER_KEY (comma-separated) or data_dir/master.key (one a line);
    the first key wraps, every key unwraps."""
    if settings.master_key is not None:
        return MasterKeyring(_parse_keys(str(settings.master_key.reveal())))
    path = master_key_path(settings)
    if settings.master_key_file is not None:
        _given_file(path, "MASTER_KEY_FILE")
    else:
        _read_or_create(path, lambda: new_fernet_key().reveal().decode())
    return KeyFileRing(path)


class KeyFileRing:
    """A master keyring that follows its key file, so running servers pick up a
    rotation (a new primary key, or retired old keys) without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._load()

    def _load(self) -> None:
        self._stamp = self._file_stamp()
        self._ring = MasterKeyring(_parse_keys(self.path.read_text()))

    def _file_stamp(self) -> tuple[int, int]:
        stat = self.path.stat()
        return stat.st_mtime_ns, stat.st_ino

    def refresh(self) -> MasterKeyring:
        """The keyring as the file holds it now (one stat call when unchanged)."""
        if self._file_stamp() != self._stamp:
            self._load()
        return self._ring

    @property
    def size(self) -> int:
        return self.refresh().size

    def wrap(self, key: Secret) -> str:
        return self.refresh().wrap(key)

    def unwrap(self, wrapped: str) -> Secret[bytes]:
        try:
            return self._ring.unwrap(wrapped)
        except CryptoError:  # maybe wrapped under a key this process has not loaded yet
            return self.refresh().unwrap(wrapped)

    def rewrap(self, wrapped: str) -> str:
        return self.refresh().rewrap(wrapped)

    def opens_with_primary(self, wrapped: str) -> bool:
        return self.refresh().opens_with_primary(wrapped)


def write_master_keys(path: Path, keys: list[Secret[bytes]]) -> None:
    """Replace the key file atomically (mode 0600): readers see the old or the new, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = create_private_file(tmp)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(f"{k.reveal().decode()}\n" for k in keys))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_master_keys(path: Path) -> list[Secret[bytes]]:
    return _parse_keys(path.read_text())


def load_secret_key(settings: Settings) -> Secret:
    """The Flask session-signing key, stable across restarts and workers."""
    if settings.secret_key is not None:
        return settings.secret_key
    if settings.secret_key_file is not None:
        return Secret(_given_file(settings.secret_key_file, "SECRET_KEY_FILE"))
    return Secret(_read_or_create(settings.data_dir / "secret.key", lambda: secrets.token_hex(32)))
