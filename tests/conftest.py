"""Shared fixtures: an app per test on a temp folder, a fake clock, and user helpers."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from ghostcache import create_app
from ghostcache.clock import FakeClock
from ghostcache.database import upgrade
from ghostcache.settings import Settings
from tests.databases import database_for_test, drop_created, drop_template

PASSWORD = "correct horse battery"
DPASS = "destroy everything now"
JSON = {"Accept": "application/json"}


class BufferedClient(FlaskClient):
    """Reads every response whole and closes it, as a real server does, so
    work scheduled for after the response (call_on_close) runs."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


class Session:
    """One user's browser/script: a client with its CSRF token, speaking JSON."""

    def __init__(self, app, username: str | None = None) -> None:
        self.client = app.test_client()
        self.username = username
        self.id: int | None = None
        self.token = self.client.get("/csrf").get_json()["csrf_token"]

    def headers(self, extra: dict | None = None) -> dict:
        return {"X-CSRFToken": self.token, **JSON, **(extra or {})}

    def get(self, path: str, **kw):
        return self.client.get(path, headers=self.headers(kw.pop("headers", None)), **kw)

    def post(self, path: str, json: object | None = None, **kw):
        headers = self.headers(kw.pop("headers", None))
        if json is None and "data" not in kw:
            return self.client.post(path, headers=headers, **kw)
        return self.client.post(path, json=json, headers=headers, **kw)

    def register(self, username: str, password: str = PASSWORD, d_pass: str = DPASS, **kw):
        self.username = username
        body = {"username": username, "password": password, "d_pass": d_pass}
        return self.post("/register", body, **kw)

    def login(self, username: str | None = None, password: str = PASSWORD):
        # As a browser loading the login page: a fresh token, in case the session ended.
        self.token = self.client.get("/csrf").get_json()["csrf_token"]
        response = self.post("/login", {"username": username or self.username, "password": password})
        if response.status_code == 200:
            body = response.get_json()
            self.token, self.id = body["csrf_token"], body["id"]
        return response

    def upload(
        self, content: bytes = b"hello file", filename: str = "notes.txt", expiry_days: str | None = None
    ):
        data = {"file": (io.BytesIO(content), filename)}
        if expiry_days is not None:
            data["expiry_days"] = expiry_days
        return self.client.post(
            "/file/upload", data=data, headers=self.headers(), content_type="multipart/form-data"
        )


def command_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for a `ghostcache` command on the same data folder and database."""
    return {
        "GHOSTCACHE_DATA_DIR": str(settings.data_dir),
        "GHOSTCACHE_DATABASE_URL": settings.database_url,
        "GHOSTCACHE_PURGE_INTERVAL_SECONDS": "0",
        **extra,
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def pytest_sessionfinish(session, exitstatus) -> None:
    drop_template()


@pytest.fixture(autouse=True)
def _drop_test_databases():
    """On PostgreSQL, each test's databases go when it ends (a server has few connections)."""
    yield
    drop_created()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_for_test(),
        argon2_profile="fast",
        purge_interval_seconds=0,
        stream_seconds=2,
    )


@pytest.fixture
def app(settings: Settings, clock: FakeClock):
    app = create_app(settings, clock=clock)
    app.test_client_class = BufferedClient
    app.config["TESTING"] = True
    upgrade(app)
    return app


@pytest.fixture
def runtime(app):
    return app.extensions["ghostcache"]


_names = itertools.count(1)


@pytest.fixture
def make_user(app):
    """Register and log in a new user; returns their Session."""

    def make(username: str | None = None) -> Session:
        session = Session(app)
        name = username or f"user{next(_names)}"
        assert session.register(name).status_code == 201
        assert session.login(name).status_code == 200
        return session

    return make


@pytest.fixture
def connect(make_user):
    """Two users with an accepted connection: returns (a, b)."""

    def pair(a: Session | None = None, b: Session | None = None) -> tuple[Session, Session]:
        a, b = a or make_user(), b or make_user()
        conn = a.post("/connect", {"username": b.username}).get_json()
        assert b.post(f"/connect/accept/{conn['id']}").status_code == 200
        return a, b

    return pair


@pytest.fixture
def live_server(tmp_path: Path):
    """A started LiveServer; stopped after the test."""
    from tests.live import LiveServer

    server = LiveServer(tmp_path / "live-data").start()
    yield server
    server.stop()
