"""What only PostgreSQL needs: every migration up and down on a real server, nodes
migrating at once, and write transactions that follow each other as on SQLite."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from flask_migrate import downgrade
from sqlalchemy import inspect, select

from ghostcache import create_app
from ghostcache.database import MIGRATIONS, WRITING, upgrade
from ghostcache.extensions import db
from ghostcache.models import User
from ghostcache.services.context import Context
from tests.conftest import command_env
from tests.databases import new_database, postgres_server_url


@pytest.fixture(autouse=True)
def _needs_postgres() -> None:
    postgres_server_url()  # skips with the reason when no server is configured


def _app_on(url: str, settings):
    return create_app(settings.with_overrides(database_url=url))


def test_every_migration_runs_up_down_and_up_again_on_postgresql(settings):
    app = _app_on(new_database(), settings)
    upgrade(app)
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        assert {"user", "connection", "contact", "message", "file", "retired_name"} <= tables
        token = WRITING.set(True)
        try:
            downgrade(directory=MIGRATIONS, revision="base")
        finally:
            WRITING.reset(token)
        db.session.remove()
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade(app)
    with app.app_context():
        assert "message" in inspect(db.engine).get_table_names()


def test_nodes_that_migrate_at_the_same_moment_both_succeed(settings):
    env = command_env(settings.with_overrides(database_url=new_database()))
    migrate = [sys.executable, "-c", "from ghostcache.cli import main; main()", "migrate"]
    runs = [
        subprocess.Popen(migrate, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs


def test_write_transactions_follow_each_other_as_on_sqlite(settings):
    """A read-decide-write block never interleaves with another: the second waits."""
    app = _app_on(new_database(), settings)
    upgrade(app)
    rt = app.extensions["ghostcache"]
    first_has_lock, events = threading.Event(), []

    def first() -> None:
        with app.app_context(), Context(db=db.session, rt=rt).write() as session:
            session.execute(select(User.id)).all()
            first_has_lock.set()
            time.sleep(0.5)
            events.append("first done")

    def second() -> None:
        first_has_lock.wait(5)
        with app.app_context(), Context(db=db.session, rt=rt).write() as session:
            session.execute(select(User.id)).all()
            events.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert events == ["first done", "second in"]


def test_reads_do_not_wait_for_a_writer(settings):
    app = _app_on(new_database(), settings)
    upgrade(app)
    rt = app.extensions["ghostcache"]
    writing, read_at = threading.Event(), []

    def writer() -> None:
        with app.app_context(), Context(db=db.session, rt=rt).write() as session:
            session.execute(select(User.id)).all()
            writing.set()
            time.sleep(1.0)

    thread = threading.Thread(target=writer)
    thread.start()
    writing.wait(5)
    started = time.monotonic()
    with app.app_context(), Context(db=db.session, rt=rt).read() as session:
        session.execute(select(User.id)).all()
        read_at.append(time.monotonic() - started)
    thread.join(10)
    assert read_at[0] < 0.5
