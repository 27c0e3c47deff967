"""The database each test gets: a new SQLite file by default, or a new PostgreSQL
database on the server GHOSTCACHE_DATABASE_URL names (`.ci/run` runs the suite
both ways).

The variable is taken out of the environment when the tests start, so that no
server process a test starts inherits it and shares a database with another
test by accident: each test and each live server asks for a database of its own.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

SERVER_URL = os.environ.pop("GHOSTCACHE_DATABASE_URL", "")
# A server for the tests that need PostgreSQL whatever this run uses (not a setting:
# out of the environment too, or servers would refuse it as unknown).
EXTRA_SERVER_URL = os.environ.pop("GHOSTCACHE_TEST_POSTGRES_URL", "")
_numbers = itertools.count(1)
_created: list[str] = []


def on_postgres() -> bool:
    """True when this run's tests use PostgreSQL."""
    return SERVER_URL.startswith("postgresql")


def postgres_server_url() -> str:
    """The PostgreSQL server for tests that need one whatever this run uses; skips without one."""
    url = SERVER_URL or EXTRA_SERVER_URL
    if not url.startswith("postgresql"):
        pytest.skip(
            "no PostgreSQL server configured: set GHOSTCACHE_DATABASE_URL or "
            "GHOSTCACHE_TEST_POSTGRES_URL to postgresql+psycopg://USER:PASSWORD@127.0.0.1/DB "
            "(.ci/run starts one)"
        )
    return url


def _admin(server: str):
    return create_engine(server, isolation_level="AUTOCOMMIT", poolclass=None)


_lasting: list[str] = []


def new_database(server: str | None = None, template: str = "template0", lasting: bool = False) -> str:
    """A URL for a new database on the server, a copy of `template` (empty by default);
    dropped when the test ends, or with `lasting` (for a module's fixture) when the run ends."""
    server = server or postgres_server_url()
    name = f"gct_{os.getpid()}_{next(_numbers)}"
    _create(server, name, template)
    (_lasting if lasting else _created).append(name)
    return _url(server, name)


def _create(server: str, name: str, template: str) -> None:
    engine = _admin(server)
    try:
        with engine.connect() as conn:
            # FILE_COPY: for small databases ten times quicker than the default WAL_LOG.
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'))
    finally:
        engine.dispose()


def _url(server: str, name: str) -> str:
    return make_url(server).set(database=name).render_as_string(hide_password=False)


_migrated_template: list[str] = []


def _migrated() -> str:
    """A database with every migration applied, made once per run to copy for each test
    (applying the migrations takes half a second; copying a database, a hundredth)."""
    if not _migrated_template:
        import tempfile

        from ghostcache import create_app
        from ghostcache.database import upgrade
        from ghostcache.extensions import db
        from ghostcache.settings import Settings

        name = f"gct_{os.getpid()}_template"
        _create(SERVER_URL, name, "template0")
        with tempfile.TemporaryDirectory() as folder:
            app = create_app(Settings(data_dir=Path(folder), database_url=_url(SERVER_URL, name)))
            upgrade(app)
            with app.app_context():
                db.engine.dispose()  # a template must have no connections when copied
            app.extensions["ghostcache"].broker.close_all("done")
        _migrated_template.append(name)
    return _migrated_template[0]


def database_for_test() -> str:
    """'' (SQLite in the data folder) or, on PostgreSQL, a new database for one test
    with every migration applied."""
    return new_database(SERVER_URL, template=_migrated()) if on_postgres() else ""


def drop_created() -> None:
    """Drop the databases created since the last call (FORCE: an app or a live server
    of the test may still hold connections; each test gets new ones)."""
    if not _created:
        return
    engine = _admin(SERVER_URL or EXTRA_SERVER_URL)
    left = []
    try:
        with engine.connect() as conn:
            while _created:
                name = _created.pop()
                try:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                except DBAPIError:  # an autovacuum worker in it, which only a superuser may stop
                    left.append(name)  # the next call tries again
    finally:
        engine.dispose()
    _created.extend(left)


def drop_database(url: str) -> None:
    """Drop one database made by new_database now (a fixture's or a benchmark's)."""
    name = make_url(url).database
    for kept in (_created, _lasting):
        if name in kept:
            kept.remove(name)
    engine = _admin(SERVER_URL or EXTRA_SERVER_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def drop_template() -> None:
    """At the end of the run: the migrated template goes too."""
    _created.extend(_migrated_template + _lasting)
    _migrated_template.clear()
    _lasting.clear()
    drop_created()


def skip_on_postgres(reason: str) -> None:
    """Skip a test that checks something only SQLite has (a file, a WAL, its pages)."""
    if on_postgres():
        pytest.skip(f"SQLite only: {reason}")
