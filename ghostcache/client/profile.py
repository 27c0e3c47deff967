"""On-disk state: <profile>/<server>/<username>/ per account, owner-only (dirs 0700,
files 0600), written atomically so a crash leaves the old file or the new one.

Files of one account: session.json (cookies, user id), identity.pk8 (the GCE1 private
key, PKCS#8 DER), pins.json and verified.json ({username: kid}), keys.json (public keys
seen, by kid), backup.json ({"ctr": n})."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ClientError

DIR_MODE = 0o700
FILE_MODE = 0o600
_USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")  # the server's rule (docs/API.md)


def default_home() -> Path:
    """GHOSTCACHE_CLIENT_HOME, else ~/.config/ghostcache-client."""
    env = os.environ.get("GHOSTCACHE_CLIENT_HOME")
    return Path(env) if env else Path.home() / ".config" / "ghostcache-client"


def server_slug(server: str) -> str:
    """A directory name for a server URL: scheme-host-port."""
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(f"--server must be an http(s) URL such as http://127.0.0.1:5000, not {server!r}.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    slug = f"{parts.scheme}-{parts.hostname}-{port}{parts.path.rstrip('/')}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", slug)


def check_username(name: str) -> str:
    """The name, if it follows the server's username rule (also keeps paths safe)."""
    if not _USERNAME.fullmatch(name):
        raise ClientError(f"{name!r} is not a GhostCache username (3 to 32 of A-Z a-z 0-9 _ . -).")
    return name


def make_private_dir(path: Path) -> Path:
    """Create path (and parents) with mode 0700, and tighten it if it exists."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a 0600 file atomically (a temporary file created 0600, then renamed)."""
    make_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Account:
    """The state of one username on one server."""

    def __init__(self, directory: Path, username: str) -> None:
        self.dir = directory
        self.username = username

    def path(self, name: str) -> Path:
        return self.dir / name

    def load_json(self, name: str, default: Any) -> Any:
        try:
            return json.loads(self.path(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return default
        except ValueError:
            raise ClientError(f"{self.path(name)} is damaged (not JSON); move it away.") from None

    def save_json(self, name: str, value: Any) -> None:
        write_private(self.path(name), json.dumps(value, indent=1, sort_keys=True).encode())

    # -- session ------------------------------------------------------------------

    def session(self) -> dict[str, Any]:
        """{"cookies": {...}, "user_id": int, "username": str}, or {} when signed out."""
        value = self.load_json("session.json", {})
        return value if isinstance(value, dict) else {}

    def save_session(self, cookies: dict[str, str], user_id: int, username: str) -> None:
        self.save_json("session.json", {"cookies": cookies, "user_id": user_id, "username": username})

    def forget_session(self) -> None:
        self.path("session.json").unlink(missing_ok=True)

    # -- identity key ---------------------------------------------------------------

    def identity_der(self) -> bytes | None:
        try:
            return self.path("identity.pk8").read_bytes()
        except FileNotFoundError:
            return None

    def save_identity_der(self, der: bytes) -> None:
        write_private(self.path("identity.pk8"), der)

    # -- backup counter -------------------------------------------------------------

    def backup_ctr(self) -> int:
        value = self.load_json("backup.json", {}).get("ctr", 0)
        return value if isinstance(value, int) else 0

    def save_backup_ctr(self, ctr: int) -> None:
        self.save_json("backup.json", {"ctr": ctr})


class Profile:
    """The profile folder: one subfolder per server, one per account inside it, and a
    `current` file naming the account that `login` last signed in."""

    def __init__(self, home: Path, server: str) -> None:
        self.home = home
        self.server_dir = home / server_slug(server)

    def account(self, username: str) -> Account:
        name = check_username(username)
        self._make_dirs()
        return Account(make_private_dir(self.server_dir / name.lower()), name)

    def _make_dirs(self) -> None:
        # mkdir(parents=True) ignores the mode for the parents: make each level 0700.
        make_private_dir(self.home)
        make_private_dir(self.server_dir)

    def current(self) -> str | None:
        try:
            name = (self.server_dir / "current").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return name or None

    def set_current(self, username: str) -> None:
        self._make_dirs()
        write_private(self.server_dir / "current", check_username(username).encode())

    def clear_current(self) -> None:
        (self.server_dir / "current").unlink(missing_ok=True)
