"""Probes for load balancers and monitors: GET /healthz (the process answers) and
GET /readyz (the database, Redis when configured, and the blob store answer).

JSON only, whatever the Accept header; no login, no session cookie, never rate
limited. A failed readiness check is named ("database", "redis", "blobs") and
nothing more: the exception's class name goes to the log at WARNING, never its
text, which may hold a host, a path or a URL with a password.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from .runtime import context, runtime

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)

# Each check gets this long; the three together answer within 5 s even when a
# dependency hangs (under the gevent worker every socket wait can be cut short).
CHECK_SECONDS = 1.5
PROBE_BLOB = "0" * 32  # a blob name no upload gets (names are random): exists() is False
_REDIS = "ghostcache_health_redis"  # app.extensions key of the probe's own Redis client


class CheckTimedOut(Exception):
    """A readiness check took longer than CHECK_SECONDS."""


class BlobStoreUnavailable(Exception):
    """The local blob folder is missing or cannot be written."""


def _no_store(body: dict, status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/healthz", methods=["GET"], provide_automatic_options=False)
def healthz() -> Response:
    """The process answers: nothing else is touched."""
    return _no_store({"status": "ok"}, 200)


@bp.route("/readyz", methods=["GET"], provide_automatic_options=False)
def readyz() -> Response:
    """Every dependency this node needs answers; 503 names the ones that do not."""
    checks: list[tuple[str, Callable[[], None]]] = [("database", check_database)]
    if runtime().settings.redis_url:
        checks.append(("redis", check_redis))
    checks.append(("blobs", lambda: check_blobs(runtime().blobs)))
    failed = [name for name, check in checks if not _passes(name, check)]
    if failed:
        return _no_store({"status": "unready", "failed": failed}, 503)
    return _no_store({"status": "ready"}, 200)


def _passes(name: str, check: Callable[[], None]) -> bool:
    try:
        with _time_limit(CHECK_SECONDS):
            check()
    except Exception as exc:  # any failure means "not ready"; which one goes to the log
        log.warning("readiness check %s failed: %s", name, exc.__class__.__name__)
        return False
    return True


def check_database() -> None:
    """One short read transaction: SELECT 1."""
    ctx = context()
    try:
        with ctx.read() as db:
            db.execute(text("SELECT 1"))
    except BaseException:
        _forget_transaction(ctx.db)
        raise


def _forget_transaction(session: Any) -> None:
    """After a failed or interrupted check, leave the request's session clean."""
    try:
        session.rollback()
    except Exception:  # the connection may be gone: the request's teardown discards it
        pass


def check_redis() -> None:
    """PING, with the probe's own client (short socket timeouts, made once per app)."""
    client = current_app.extensions.get(_REDIS)
    if client is None:
        import redis

        client = redis.Redis.from_url(
            runtime().settings.redis_url,
            socket_timeout=CHECK_SECONDS,
            socket_connect_timeout=CHECK_SECONDS,
        )
        current_app.extensions[_REDIS] = client
    client.ping()


def check_blobs(store: Any) -> None:
    """The store answers a lookup (an S3 store raises when it cannot be reached).

    A local folder answers False for a missing name even when the folder itself is
    gone, so a store with a `root` folder must also have that folder (and its
    `incoming` folder, where uploads are written) as a writable directory."""
    store.exists(PROBE_BLOB)
    for folder in (getattr(store, "root", None), getattr(store, "incoming", None)):
        if folder is not None and not (os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)):
            raise BlobStoreUnavailable


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Cut a check short after `seconds` when gevent runs the sockets (the production
    worker); elsewhere the clients' own timeouts bound it."""
    if not _gevent_sockets():
        yield
        return
    import gevent

    with gevent.Timeout(seconds, CheckTimedOut()):
        yield


def _gevent_sockets() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return bool(monkey.is_module_patched("socket"))
