"""What every service call needs, bundled: the DB session, the ports, and the one
home of transaction boundaries (`read()` and `write()`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from flask_sqlalchemy.session import Session
from sqlalchemy.engine import Engine
from sqlalchemy.orm import scoped_session

from ..blobs import BlobStore
from ..clock import Clock
from ..cpu import CpuPool
from ..crypto import KeyedTags, Keyring, PasswordHashing
from ..database import WRITING, truncate_wal
from ..events import Broker
from ..settings import Settings

log = logging.getLogger(__name__)
# The smallest id range of the databases we run on (PostgreSQL INTEGER): no row has a
# larger id, and a larger number bound to an id column is an error there, not a miss.
MAX_ID = 2**31 - 1
T = TypeVar("T")


def present(row: T | None) -> T:
    """`row`, which the caller knows exists (a foreign key or the login session vouches
    for it). Should it be gone after all, this raises the AttributeError that using the
    None would have raised a moment later."""
    if row is None:
        raise AttributeError("a row expected to exist is missing (deleted meanwhile?)")
    return row


@dataclass
class Runtime:
    """Long-lived parts, built once per app."""

    settings: Settings
    clock: Clock
    keyring: Keyring
    passwords: PasswordHashing
    blobs: BlobStore
    broker: Broker
    cpu: CpuPool
    tags: KeyedTags


@dataclass
class Context:
    """One unit of work: a DB session (Flask-SQLAlchemy's scoped `db.session`) plus the runtime."""

    db: scoped_session[Session]
    rt: Runtime

    def now(self) -> datetime:
        return self.rt.clock.now()

    def get(self, model: type, row_id: int) -> Any:
        """The row with this id, or None (also for ids no database column can hold)."""
        return self.db.get(model, row_id) if 0 < row_id <= MAX_ID else None

    @contextmanager
    def read(self) -> Iterator[scoped_session[Session]]:
        """A read transaction: one snapshot, never the write lock; ended when the block ends."""
        try:
            yield self.db
        finally:
            self.db.commit()  # nothing to commit: this only ends the snapshot

    @contextmanager
    def write(self) -> Iterator[scoped_session[Session]]:
        """A write transaction, committed when the block ends and rolled back if it raises.

        Any read transaction still open is ended first, because SQLite decides
        at BEGIN whether a transaction may write. Keep these blocks short: no
        password hashing, key generation or body streaming inside."""
        self.db.commit()
        token = WRITING.set(True)
        try:
            yield self.db
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise
        finally:
            WRITING.reset(token)

    def erase_deleted(self) -> None:
        """Make rows just deleted unreadable in the data folder too (see
        database.truncate_wal); call after committing a deletion of user data."""
        engine = self.db.get_bind()
        if not isinstance(engine, Engine) or engine.dialect.name != "sqlite":
            return  # PostgreSQL: see docs/SECURITY.md (vacuuming is the operator's job)
        raw = engine.raw_connection()  # checked out here, on the event loop
        try:
            if not self.rt.cpu.run(truncate_wal, raw.dbapi_connection):
                log.warning("readers kept the WAL from being truncated; the next purge retries")
        finally:
            raw.close()

    def publish(self, *user_ids: int) -> None:
        """Wake the open streams of these users (after the write that concerns them)."""
        for user_id in user_ids:
            self.rt.broker.publish(user_id)
