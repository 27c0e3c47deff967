"""Engine settings per database, transaction modes, and applying migrations."""

from __future__ import annotations

import sqlite3
import time
from contextvars import ContextVar
from pathlib import Path

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")
# SQLite's busy handler sleeps inside C: under gevent that would freeze every
# connection of the process. Writers therefore wait for the lock in Python
# (BEGIN IMMEDIATE retried with a cooperative sleep, up to WRITE_WAIT_SECONDS);
# the short timeout below only covers the rare moments a WAL reader must wait.
BUSY_TIMEOUT_MS = 1_000
WRITE_WAIT_SECONDS = 30.0
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# True inside Context.write(): such transactions begin IMMEDIATE on SQLite, and
# INSERT/UPDATE/DELETE anywhere else are refused.
WRITING: ContextVar[bool] = ContextVar("ghostcache_writing", default=False)


class WriteOutsideTransaction(RuntimeError):
    """A statement that changes data ran outside Context.write()."""


# A truncating checkpoint waits this long per attempt for readers to leave the WAL;
# it runs on a worker thread (cpu.py), where SQLite's blocking wait harms no one.
CHECKPOINT_WAIT_MS = 2_000
CHECKPOINT_ATTEMPTS = 5


def engine_options(url: str) -> dict:
    # hide_parameters: a database error in the log must not carry a username or a hash.
    if url.startswith("sqlite"):
        return {
            "connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            "hide_parameters": True,
        }
    return {"pool_pre_ping": True, "hide_parameters": True}


def guard_writes(engine: Engine) -> None:
    """Refuse INSERT/UPDATE/DELETE outside Context.write(): a write hidden in a read
    would, on SQLite, take the write lock mid-transaction and fail or block others."""

    @event.listens_for(engine, "before_cursor_execute")
    def _check(conn, cursor, statement: str, parameters, context, executemany) -> None:
        if not WRITING.get() and statement.lstrip()[:7].upper().startswith(_WRITES):
            raise WriteOutsideTransaction(f"write outside Context.write(): {statement[:60]!r}")


def configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, foreign keys; reads BEGIN DEFERRED, writes BEGIN IMMEDIATE.

    In WAL mode readers never wait for the writer, so a read transaction must not
    take the write lock. A deferred transaction that reads and then writes fails at
    once with "database is locked" when another connection wrote in between,
    whatever the busy timeout; taking the lock at BEGIN makes writers wait their
    turn instead. Context.write() marks the transactions that may write.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left behind
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA temp_store=MEMORY")  # sorts and temp tables never touch a disk
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        if WRITING.get():
            _begin_immediate(connection)
        else:
            connection.exec_driver_sql("BEGIN")


# Any constant (ASCII "gcwrite"); the migrations take another (migrations/env.py).
WRITE_LOCK = 0x6763777269746500


def configure_postgres(engine: Engine) -> None:
    """Write transactions take one transaction-scoped advisory lock, so on PostgreSQL
    they follow each other as they do on SQLite (BEGIN IMMEDIATE).

    The services read, decide and write inside one Context.write() block (a name is
    free, then it is taken; a request is pending, then it is accepted), trusting that
    no other writer runs in between. PostgreSQL's READ COMMITTED alone would let two
    such blocks interleave. Reads never take the lock. The wait is cooperative under
    gevent (psycopg waits through the patched `select`).
    """

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        if WRITING.get():
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")


def _begin_immediate(connection) -> None:
    """Take SQLite's write lock, waiting for it without blocking other greenlets."""
    deadline = time.monotonic() + WRITE_WAIT_SECONDS
    delay = 0.0002
    connection.exec_driver_sql("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)  # patched by gevent: other connections run meanwhile
            delay = min(delay * 2, 0.002)  # the lock is held for well under a millisecond
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def truncate_wal(dbapi_connection) -> bool:
    """Fold SQLite's write-ahead log into the database file and cut it to zero bytes.

    With secure_delete the database file holds deleted rows as zeros, but the WAL
    still holds page images from before the deletion (and older ones past its
    current end) until a checkpoint copies the pages back and the log is truncated.
    Blocks in C while readers finish: run it off the event loop (cpu.py). False
    when readers kept it from finishing (the next deletion or purge tries again).
    """
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
    try:
        for _ in range(CHECKPOINT_ATTEMPTS):
            try:
                busy = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                busy = 1
            if not busy:
                return True
        return False
    finally:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()


def upgrade(app: Flask) -> None:
    """Apply pending migrations."""
    from flask_migrate import upgrade as alembic_upgrade

    token = WRITING.set(True)
    try:
        with app.app_context():
            alembic_upgrade(directory=MIGRATIONS)
    finally:
        WRITING.reset(token)
