"""GET /healthz and GET /readyz: what load balancers and monitors ask, against real faults
(a database file that cannot be opened, a database server that refuses, a closed Redis
port, a removed blob folder), and what the answers leave out."""

from __future__ import annotations

import logging
import re
import shutil
import socket
import time
from pathlib import Path

import pytest
import requests

from ghostcache import create_app
from ghostcache.extensions import db
from ghostcache.openapi import openapi_document
from tests.conftest import JSON
from tests.live import LiveServer, free_port
from tests.services import start_redis
from tests.test_openapi import Checker

CHECKS = {"database", "redis", "blobs"}


def _get(app, path: str, **headers: str):
    return app.test_client().get(path, headers=headers)


def assert_discreet(response) -> None:
    """A probe's answer: JSON, not cached, no cookie, and no detail about any failure."""
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    body = response.get_data(as_text=True)
    for detail in ("/", "\\", "Error", "error", "Exception", "127.0.0.1", "localhost", "sqlite", "redis:"):
        assert detail not in body, (detail, body)


def assert_unready(app, *failed: str) -> None:
    response = _get(app, "/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unready", "failed": list(failed)}
    assert_discreet(response)
    Checker(openapi_document())("get", "/readyz", response)


def test_healthz_says_ok(app):
    for accept in ("application/json", "text/html", "*/*"):
        response = _get(app, "/healthz", Accept=accept)
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}
        assert_discreet(response)
    Checker(openapi_document())("get", "/healthz", response)


def test_readyz_is_ready_on_a_working_app(app):
    response = _get(app, "/readyz", Accept="text/html")  # JSON all the same
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}
    assert_discreet(response)
    Checker(openapi_document())("get", "/readyz", response)


def test_probes_take_get_and_head_only_and_answer_errors_in_json(app):
    client = app.test_client()
    for path in ("/healthz", "/readyz"):
        head = client.head(path)
        assert head.status_code == 200 and head.data == b""
        for method in ("post", "put", "delete", "options"):
            response = getattr(client, method)(path, headers={"Accept": "text/html"})
            assert response.status_code == 405, (method, path)
            assert response.get_json()["error"] == "method_not_allowed"
            assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
            assert "Set-Cookie" not in response.headers


def test_probes_neither_read_nor_refresh_a_session(make_user):
    alice = make_user()  # a signed-in browser: its session is permanent, refreshed by every page
    assert "Set-Cookie" in alice.get("/files").headers
    for path in ("/healthz", "/readyz"):
        response = alice.get(path)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers


def test_probes_are_never_rate_limited(app):
    limiter = app.extensions["ghostcache_limiter"]
    client = app.test_client()
    for _ in range(50):
        for path in ("/healthz", "/readyz"):
            response = client.get(path)
            assert response.status_code == 200
            assert not any(h.startswith("X-RateLimit") for h in response.headers.keys())
    assert limiter.enabled  # the limiter is on; the probes are simply not its business


def test_readyz_fails_database_when_its_file_cannot_be_opened(app, settings, caplog):
    """A real fault: the SQLite file replaced by a folder, the pooled connections closed."""
    if not settings.sqlalchemy_url.startswith("sqlite"):
        pytest.skip("SQLite only: the fault is a SQLite file that cannot be opened")
    database = settings.data_dir / "ghostcache.db"
    aside = settings.data_dir / "aside"
    aside.mkdir()
    with app.app_context():
        db.engine.dispose()
    for path in settings.data_dir.glob("ghostcache.db*"):
        path.rename(aside / path.name)
    database.mkdir()
    with caplog.at_level(logging.WARNING, logger="ghostcache"):
        assert_unready(app, "database")
        assert _get(app, "/healthz").status_code == 200  # the process is up all the same
    assert "readiness check database failed: OperationalError" in caplog.text
    assert str(settings.data_dir) not in caplog.text

    database.rmdir()
    for path in aside.iterdir():
        path.rename(settings.data_dir / path.name)
    assert _get(app, "/readyz").status_code == 200  # ready again once it can be opened


def test_readyz_fails_database_when_the_server_refuses(tmp_path, clock, caplog):
    """A database server that is not there (a closed port): refused at connect."""
    from ghostcache.settings import Settings

    url = f"postgresql+psycopg://ghost:db-password@127.0.0.1:{free_port()}/ghostcache"
    settings = Settings(data_dir=tmp_path / "data", database_url=url, argon2_profile="fast")
    app = create_app(settings, clock=clock)
    with caplog.at_level(logging.WARNING, logger="ghostcache"):
        started = time.monotonic()
        assert_unready(app, "database")
        assert time.monotonic() - started < 5
    assert "readiness check database failed: OperationalError" in caplog.text
    assert "db-password" not in caplog.text and "127.0.0.1" not in caplog.text


def test_readyz_fails_redis_on_a_closed_port_and_names_no_url(tmp_path, settings, clock, caplog):
    url = f"redis://:redis-password@127.0.0.1:{free_port()}/0"
    app = create_app(settings.with_overrides(redis_url=url), clock=clock)
    with caplog.at_level(logging.WARNING, logger="ghostcache"):
        assert_unready(app, "redis")
        assert _get(app, "/healthz").status_code == 200
    assert "readiness check redis failed: ConnectionError" in caplog.text
    assert "redis-password" not in caplog.text and "127.0.0.1" not in caplog.text


def test_readyz_is_ready_with_a_real_redis(tmp_path, settings, clock):
    process, url = start_redis(tmp_path)
    try:
        app = create_app(settings.with_overrides(redis_url=url), clock=clock)
        response = _get(app, "/readyz")
        assert response.status_code == 200, response.get_json()
        assert response.get_json() == {"status": "ready"}
    finally:
        process.kill()
        process.wait()


def test_readyz_fails_blobs_when_the_folder_is_gone(app, runtime):
    """A local store answers exists() with False even without its folder: the check also
    wants the folder (and its .incoming/) to be a writable directory."""
    folder = Path(runtime.blobs.root)
    shutil.rmtree(folder)
    assert runtime.blobs.exists("0" * 32) is False  # why exists() alone would not notice
    assert_unready(app, "blobs")
    folder.mkdir(mode=0o700)
    assert_unready(app, "blobs")  # .incoming/ is missing: uploads would fail
    (folder / ".incoming").mkdir(mode=0o700)
    assert _get(app, "/readyz").status_code == 200


def test_readyz_names_every_failed_check_in_order(tmp_path, settings, clock):
    url = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(settings.with_overrides(redis_url=url), clock=clock)
    shutil.rmtree(app.extensions["ghostcache"].blobs.root)
    assert_unready(app, "redis", "blobs")


def _on_s3(settings, monkeypatch, endpoint: str, bucket: str, key: str = "gc-test", secret: str = "x" * 40):
    pytest.importorskip("boto3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return settings.with_overrides(blob_url=f"s3://{bucket}/blobs", s3_endpoint_url=endpoint)


def test_readyz_fails_blobs_when_the_object_store_is_unreachable(settings, clock, monkeypatch, caplog):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = create_app(_on_s3(settings, monkeypatch, endpoint, "ghostcache-test"), clock=clock)
    with caplog.at_level(logging.WARNING, logger="ghostcache"):
        assert_unready(app, "blobs")
    assert "127.0.0.1" not in caplog.text


def test_readyz_on_a_real_object_store(tmp_path, settings, clock, monkeypatch):
    """Ready with SeaweedFS's S3 API; unready when the bucket is missing there."""
    from tests.services import start_seaweedfs

    weed = start_seaweedfs(tmp_path / "seaweedfs")
    try:
        for bucket, ready in ((weed.bucket, True), ("no-such-bucket", False)):
            on_s3 = _on_s3(settings, monkeypatch, weed.endpoint, bucket, weed.access_key, weed.secret_key)
            app = create_app(on_s3, clock=clock)
            if ready:
                response = _get(app, "/readyz")
                assert response.status_code == 200, response.get_json()
            else:
                assert_unready(app, "blobs")
    finally:
        weed.stop()


# -- a real server: the gevent worker, its time limits, its log ---------------------------


@pytest.mark.live
def test_a_hanging_redis_is_cut_short_on_a_real_server(tmp_path):
    """Redis that accepts connections and never answers: /readyz still answers within 5 s."""
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(64)  # connections complete in the backlog; nothing ever reads them
        port = blackhole.getsockname()[1]
        url = f"redis://:redis-password@127.0.0.1:{port}/0"
        server = LiveServer(tmp_path / "data", workers=1, redis_url=url, database_url="").start()
        try:
            for path, status, body in (
                ("/healthz", 200, {"status": "ok"}),
                ("/readyz", 503, {"status": "unready", "failed": ["redis"]}),
            ):
                started = time.monotonic()
                response = requests.get(server.url + path, headers=JSON, timeout=10)
                assert time.monotonic() - started < 5.5, path
                assert (response.status_code, response.json()) == (status, body)
                assert "Set-Cookie" not in response.headers
        finally:
            server.stop()
    log = server.log()
    # Cut short by the probe's own time limit (or the client's timeout): a class name only.
    assert re.search(r"readiness check redis failed: (CheckTimedOut|TimeoutError)\n", log), log
    assert "redis-password" not in log


@pytest.mark.live
def test_probes_on_a_real_server(live_server):
    for path, body in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
        response = requests.get(live_server.url + path, timeout=10)
        assert response.status_code == 200
        assert response.json() == body
        assert response.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in response.headers


def test_the_document_names_the_checks_there_are():
    unready = openapi_document()["paths"]["/readyz"]["get"]["responses"]["503"]
    failed = unready["content"]["application/json"]["schema"]["properties"]["failed"]
    assert set(failed["items"]["enum"]) == CHECKS
