"""Settings read once from GHOSTCACHE_* environment variables and validated."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .secrets import Secret

PREFIX = "GHOSTCACHE_"


class SettingsError(ValueError):
    """A setting has a value we cannot use."""


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"Setting {PREFIX}{name} has value {raw!r}. Not a whole number.") from None
    if not low <= value <= high:
        raise SettingsError(f"Setting {PREFIX}{name} has value {value}. Expected {low} to {high}.")
    return value


def _switch(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"on", "true", "1", "yes"}:
        return True
    if lowered in {"off", "false", "0", "no"}:
        return False
    raise SettingsError(f"Setting {PREFIX}{name} has value {raw!r}. Expected on or off.")


# S3's bucket naming rules: 3 to 63 of a-z 0-9 . -, a letter or digit at each end.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
# A key prefix: segments of S3's "safe" key characters, without . or .. segments.
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9!_.*'()-]+")


def parse_blob_url(raw: str, name: str = "BLOB_URL") -> tuple[str, str]:
    """'s3://BUCKET' or 's3://BUCKET/PREFIX' -> (bucket, prefix without slashes at its ends)."""
    scheme, sep, rest = raw.partition("://")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    problem = ""
    if "@" in bucket:  # never echo what may be a key and its secret
        raise SettingsError(
            f"Setting {PREFIX}{name} holds a user or password. Give only s3://BUCKET/PREFIX: "
            "the keys come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        )
    if scheme != "s3" or not sep:
        problem = "Expected s3://BUCKET or s3://BUCKET/PREFIX."
    elif (
        not _BUCKET.fullmatch(bucket)
        or ".." in bucket
        or _IP_ADDRESS.fullmatch(bucket)
        or bucket.startswith(("xn--", "sthree-"))
        or bucket.endswith(("-s3alias", "--ol-s3"))
    ):
        problem = (
            f"The bucket name {bucket!r} breaks S3's naming rules: 3 to 63 lowercase letters, "
            "digits, dots and hyphens, starting and ending with a letter or digit."
        )
    elif prefix and not all(
        _PREFIX_SEGMENT.fullmatch(part) and part not in {".", ".."} for part in prefix.split("/")
    ):
        problem = (
            f"The prefix {prefix!r} may hold only letters, digits and !_.*'()- between single "
            "slashes (no . or .. parts)."
        )
    if problem:
        raise SettingsError(f"Setting {PREFIX}{name} has value {raw!r}. {problem}")
    return bucket, prefix


def _blob_url(name: str, raw: str) -> str:
    parse_blob_url(raw, name)
    return raw


def _endpoint(name: str, raw: str) -> str:
    if "@" in raw.partition("://")[2].partition("/")[0]:  # never echo a password
        raise SettingsError(
            f"Setting {PREFIX}{name} holds a user or password. Give only http(s)://HOST[:PORT]: "
            "the keys come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        )
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", raw):
        raise SettingsError(
            f"Setting {PREFIX}{name} has value {raw!r}. Expected http(s)://HOST[:PORT], "
            "the address of the S3 API."
        )
    return raw


_LIMIT = re.compile(r"^\d+\s*(/|per)\s*\d*\s*(second|minute|hour|day)s?$")


def _limits(name: str, raw: str) -> dict[str, str]:
    """'login=5/minute,upload=10/hour' -> {"login": "5/minute", "upload": "10/hour"}.

    Only the form is checked here; the names belong to the policy in web/limits.py,
    which refuses unknown ones when the app is built.
    """
    result = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, _, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not key or not _LIMIT.match(value):
            raise SettingsError(
                f"Setting {PREFIX}{name} has item {item!r}. Expected NAME=N/PERIOD with "
                "PERIOD second, minute, hour or day."
            )
        result[key] = value
    return result


@dataclass(frozen=True)
class Settings:
    """Every knob of a GhostCache deployment, with one-machine defaults."""

    data_dir: Path = Path("instance")
    database_url: str = ""  # empty: SQLite file in data_dir
    blob_dir: Path | None = None  # None: data_dir/blobs
    blob_url: str = ""  # s3://BUCKET/PREFIX: blobs in S3 object storage instead of blob_dir
    s3_endpoint_url: str = ""  # empty: AWS itself; else any S3 API (http://127.0.0.1:8333)
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 2
    threads: int = 4  # per worker, for CPU-heavy work (password hashing, key generation)
    worker_connections: int = 5000  # open connections (idle streams included) per worker
    master_key: Secret | None = None  # None: master_key_file, else data_dir/master.key made on first run
    secret_key: Secret | None = None  # None: secret_key_file, else data_dir/secret.key made on first run
    master_key_file: Path | None = None  # read (and followed for rotations), never written
    secret_key_file: Path | None = None
    # Several nodes share the database: no node may make keys of its own, and the
    # database, the broker and the blobs must be shared (check_cluster).
    cluster: bool = False
    max_upload_mb: int = 50
    inactivity_days: int = 30
    purge_interval_seconds: int = 300
    stream_seconds: int = 300
    stream_recheck_seconds: int = 30  # safety-net database look while waiting (0 = never)
    streams_per_user: int = 10  # open event streams per user; the oldest closes beyond this
    header_timeout_seconds: int = 10  # a request's headers must arrive within this
    body_timeout_seconds: int = 15  # a body that sends nothing for this long is cut off
    keepalive_seconds: int = 5  # an idle kept-alive connection closes after this
    session_idle_hours: int = 168  # a week without a request ends a session
    session_max_days: int = 30  # no session outlives this, active or not
    ratelimit: bool = True
    ratelimits: dict[str, str] = field(default_factory=dict)  # name -> "10/minute" overrides
    redis_url: str = ""
    trusted_proxies: int = 0
    log_level: str = "INFO"
    # Off by default: a line per request (client address, /chat/<id>, /file/<id>, time)
    # is a record of who talks to whom, which a privacy messenger should not keep.
    access_log: bool = False
    # Behind a Tor onion service (deploy/onion/, docs/OPERATIONS.md): no addresses in any
    # log, no HSTS, abuse limits that do not rest on client addresses.
    onion: bool = False
    # Registration only with a single-use invite from a member or the operator.
    invite_only: bool = False
    # Not read from the environment: tests lower it so thousands of logins stay quick.
    argon2_profile: str = field(default="default")

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ghostcache.db').resolve()}"

    @property
    def blob_path(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some values replaced (for tests and commands)."""
        return replace(self, **changes)


_READERS = {
    "DATA_DIR": ("data_dir", lambda n, v: Path(v)),
    "DATABASE_URL": ("database_url", lambda n, v: v),
    "BLOB_DIR": ("blob_dir", lambda n, v: Path(v)),
    "BLOB_URL": ("blob_url", _blob_url),
    "S3_ENDPOINT_URL": ("s3_endpoint_url", _endpoint),
    "HOST": ("host", lambda n, v: v),
    "PORT": ("port", lambda n, v: _int(n, v, 1, 65535)),
    "WORKERS": ("workers", lambda n, v: _int(n, v, 1, 64)),
    "THREADS": ("threads", lambda n, v: _int(n, v, 1, 256)),
    "WORKER_CONNECTIONS": ("worker_connections", lambda n, v: _int(n, v, 10, 100_000)),
    "MASTER_KEY": ("master_key", lambda n, v: Secret(v)),
    "SECRET_KEY": ("secret_key", lambda n, v: Secret(v)),
    "MASTER_KEY_FILE": ("master_key_file", lambda n, v: Path(v)),
    "SECRET_KEY_FILE": ("secret_key_file", lambda n, v: Path(v)),
    "CLUSTER": ("cluster", _switch),
    "MAX_UPLOAD_MB": ("max_upload_mb", lambda n, v: _int(n, v, 1, 10240)),
    "INACTIVITY_DAYS": ("inactivity_days", lambda n, v: _int(n, v, 1, 3650)),
    "PURGE_INTERVAL_SECONDS": ("purge_interval_seconds", lambda n, v: _int(n, v, 0, 86400)),
    "SESSION_IDLE_HOURS": ("session_idle_hours", lambda n, v: _int(n, v, 1, 24 * 365)),
    "SESSION_MAX_DAYS": ("session_max_days", lambda n, v: _int(n, v, 1, 365)),
    "STREAM_SECONDS": ("stream_seconds", lambda n, v: _int(n, v, 1, 3600)),
    "STREAM_RECHECK_SECONDS": ("stream_recheck_seconds", lambda n, v: _int(n, v, 0, 3600)),
    "STREAMS_PER_USER": ("streams_per_user", lambda n, v: _int(n, v, 1, 1000)),
    "HEADER_TIMEOUT_SECONDS": ("header_timeout_seconds", lambda n, v: _int(n, v, 1, 300)),
    "BODY_TIMEOUT_SECONDS": ("body_timeout_seconds", lambda n, v: _int(n, v, 1, 300)),
    "KEEPALIVE_SECONDS": ("keepalive_seconds", lambda n, v: _int(n, v, 1, 300)),
    "RATELIMIT": ("ratelimit", _switch),
    "RATELIMITS": ("ratelimits", lambda n, v: _limits(n, v)),
    "REDIS_URL": ("redis_url", lambda n, v: v),
    "TRUSTED_PROXIES": ("trusted_proxies", lambda n, v: _int(n, v, 0, 10)),
    "LOG_LEVEL": ("log_level", lambda n, v: v.upper()),
    "ACCESS_LOG": ("access_log", _switch),
    "ONION": ("onion", _switch),
    "INVITE_ONLY": ("invite_only", _switch),
}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every GHOSTCACHE_* variable; unknown ones are an error."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(PREFIX) or raw == "":
            continue
        name = key[len(PREFIX) :]
        if name not in _READERS:
            known = ", ".join(PREFIX + k for k in sorted(_READERS))
            raise SettingsError(f"Unknown setting {key}. Known settings: {known}.")
        attr, read = _READERS[name]
        values[attr] = read(name, raw.strip())
    if values.get("log_level", "INFO") not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(f"Setting {PREFIX}LOG_LEVEL has value {values['log_level']!r}.")
    settings = Settings(**values)
    if settings.s3_endpoint_url and not settings.blob_url:
        raise SettingsError(
            f"Setting {PREFIX}S3_ENDPOINT_URL is set but {PREFIX}BLOB_URL is not, so blobs would "
            f"stay in the local folder. Set {PREFIX}BLOB_URL=s3://BUCKET/PREFIX as well."
        )
    check_folders(settings)
    check_cluster(settings)
    check_onion(settings)
    return settings


def check_onion(settings: Settings) -> None:
    """Refuse onion mode with the access log on, or without the proxy that tells circuits apart.

    Behind tor every visitor is the local nginx: only its X-Forwarded-For (tor's
    circuit address, from the PROXY line) lets the per-address limits count per
    circuit; without it one visitor could use up everyone's login budget.
    """
    if not settings.onion:
        return
    if settings.access_log:
        raise SettingsError(
            f"{PREFIX}ONION is on, so no log may hold a client's address or path: "
            f"unset {PREFIX}ACCESS_LOG (or set it off)."
        )
    if settings.trusted_proxies < 1:
        raise SettingsError(
            f"{PREFIX}ONION is on but {PREFIX}TRUSTED_PROXIES is 0, so every visitor would "
            "share tor's one address and one set of limits. Put nginx in front (it passes "
            f"tor's per-circuit address as X-Forwarded-For) and set {PREFIX}TRUSTED_PROXIES=1; "
            "see docs/OPERATIONS.md."
        )


def check_cluster(settings: Settings) -> None:
    """Refuse settings under which nodes would not share what they must.

    A key given twice is ambiguous. In cluster mode a node that made its own keys
    could not open what the others wrote, and one with its own SQLite file, its
    own wake-ups or its own rate limits would be a separate service.
    """
    for name, value, file in (
        ("MASTER_KEY", settings.master_key, settings.master_key_file),
        ("SECRET_KEY", settings.secret_key, settings.secret_key_file),
    ):
        if value is not None and file is not None:
            raise SettingsError(f"Set {PREFIX}{name} or {PREFIX}{name}_FILE, not both.")
    if not settings.cluster:
        return
    missing = [
        f"{PREFIX}{name} or {PREFIX}{name}_FILE (the same on every node)"
        for name, value, file in (
            ("MASTER_KEY", settings.master_key, settings.master_key_file),
            ("SECRET_KEY", settings.secret_key, settings.secret_key_file),
        )
        if value is None and file is None
    ]
    if settings.sqlalchemy_url.startswith("sqlite"):
        missing.append(f"{PREFIX}DATABASE_URL of a shared database server (PostgreSQL)")
    if not settings.redis_url:
        missing.append(f"{PREFIX}REDIS_URL (live delivery and rate limits across nodes)")
    if not settings.blob_url and settings.blob_dir is None:
        missing.append(f"{PREFIX}BLOB_URL (S3), or {PREFIX}BLOB_DIR on storage every node mounts")
    if missing:
        raise SettingsError(
            f"{PREFIX}CLUSTER is on, so this node will not make keys of its own or keep "
            f"state only it can see. Missing: {'; '.join(missing)}. `ghostcache new-master-key` "
            "and `ghostcache new-secret-key` print new keys (see docs/OPERATIONS.md)."
        )


def check_folders(settings: Settings) -> None:
    """Refuse a blob folder that is the data folder or holds it, or one set beside a blob URL.

    The key files and the database must never sit among the blobs, where the purge
    removes abandoned files. A blob folder inside the data folder (the default) is fine.
    """
    if settings.blob_dir is None:
        return
    if settings.blob_url:
        raise SettingsError(
            f"Setting {PREFIX}BLOB_DIR has value {str(settings.blob_dir)!r}, and {PREFIX}BLOB_URL "
            f"is set too. Blobs live in one place: unset {PREFIX}BLOB_DIR to keep them in S3, or "
            f"{PREFIX}BLOB_URL to keep them in the folder."
        )
    blobs, data = settings.blob_dir.resolve(), settings.data_dir.resolve()
    if blobs == data:
        problem = "That is the data folder"
    elif blobs in data.parents:
        problem = f"The data folder {data} is inside it"
    else:
        return
    raise SettingsError(
        f"Setting {PREFIX}BLOB_DIR has value {str(settings.blob_dir)!r}. {problem}: blobs need "
        f"a folder of their own, apart from the key files and the database (the default is "
        f"<data dir>/blobs)."
    )


SETTING_NAMES = tuple(PREFIX + k for k in _READERS)
__all__ = [
    "Settings",
    "SettingsError",
    "check_cluster",
    "check_folders",
    "check_onion",
    "load_settings",
    "parse_blob_url",
    "SETTING_NAMES",
]
