"""The purge (expired files, inactive accounts, abandoned blobs), its lease, the CLI, and key files."""

from __future__ import annotations

import os
import stat
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from ghostcache import create_app, maintenance_timer, models
from ghostcache.cli import main
from ghostcache.database import upgrade
from ghostcache.extensions import db
from ghostcache.services import accounts, maintenance
from ghostcache.services.context import Context
from ghostcache.settings import load_settings
from tests.conftest import DPASS, Session, command_env
from tests.test_accounts import rows_of

ORPHAN, PARTIAL = "ab" * 16, "cd" * 16
TWO_HOURS_AGO = time.time() - 7200


@contextmanager
def context_of(app):
    with app.app_context():
        yield Context(db=db.session, rt=app.extensions["ghostcache"])


def purge(app, **kw) -> maintenance.PurgeReport:
    with context_of(app) as ctx:
        return maintenance.purge(ctx, **kw)


def claim(app, seconds: float = 300) -> bool:
    with context_of(app) as ctx:
        return maintenance.claim_lease(ctx, maintenance.PURGE_LEASE, seconds)


def stored_name(app, file_id: int) -> str | None:
    with app.app_context():
        return db.session.scalar(select(models.File.stored_name).where(models.File.id == file_id))


def blob_files(runtime) -> set[str]:
    root = runtime.blobs.root
    return {p.name for p in root.iterdir() if p.is_file()} | {
        f".incoming/{p.name}" for p in (root / ".incoming").iterdir()
    }


def plant_orphans(runtime, mtime: float | None = None) -> None:
    """A finished blob nobody recorded and a partial write nobody finished."""
    for path in (runtime.blobs.root / ORPHAN, runtime.blobs.root / ".incoming" / PARTIAL):
        path.write_bytes(b"abandoned")
        if mtime is not None:
            os.utime(path, (mtime, mtime))


def second_app(settings, clock, **overrides):
    """Another process on the same data folder (database, blobs and key files)."""
    other = create_app(settings.with_overrides(**overrides), clock=clock)
    other.config["TESTING"] = True
    upgrade(other)
    return other


# ---- purge: expired files ----------------------------------------------------------


def test_purge_removes_expired_files_and_their_blobs_but_keeps_the_rest(app, runtime, clock, connect):
    owner, grantee = connect()  # files are shared with accepted contacts
    short = owner.upload(b"short-lived", expiry_days="1").get_json()
    long = owner.upload(b"long-lived", expiry_days="365").get_json()
    assert owner.post(f"/file/{short['id']}/share", {"username": grantee.username}).status_code == 201
    short_blob, long_blob = stored_name(app, short["id"]), stored_name(app, long["id"])
    clock.advance(days=2)
    assert owner.get(f"/file/{short['id']}").status_code == 410
    assert purge(app).expired_files == 1
    assert owner.get(f"/file/{short['id']}").status_code == 404
    assert grantee.get(f"/file/{short['id']}").status_code == 404
    assert stored_name(app, short["id"]) is None and long_blob in blob_files(runtime)
    assert short_blob not in blob_files(runtime)
    assert owner.get(f"/file/{long['id']}").status_code == 200


def test_purge_with_nothing_to_do_reports_zero(app):
    assert purge(app) == maintenance.PurgeReport(0, 0, 0)


# ---- purge: inactive accounts ------------------------------------------------------


def test_purge_removes_inactive_accounts_with_everything_they_own(app, runtime, clock, make_user, connect):
    idle, active = connect(make_user(), make_user())
    assert idle.post("/chat/send", {"receiver_id": active.id, "message": "bye"}).status_code == 201
    file = idle.upload().get_json()
    assert idle.post(f"/file/{file['id']}/share", {"username": active.username}).status_code == 201
    kept = active.upload().get_json()
    idle_blob = stored_name(app, file["id"])
    clock.advance(days=20)
    assert active.login().status_code == 200  # coming back keeps `active` alive
    clock.advance(days=11)
    report = purge(app)
    assert report.inactive_accounts == 1 and report.expired_files == 0
    assert set(rows_of(app, idle.id).values()) == {0}
    assert idle_blob not in blob_files(runtime)
    assert stored_name(app, kept["id"]) in blob_files(runtime)
    active.login()
    assert active.get("/files").get_json()["shared"] == []
    assert Session(app).login(active.username).status_code == 200
    assert Session(app).login(idle.username).status_code == 401


def test_purge_keeps_accounts_idle_for_less_than_the_limit(app, clock, make_user):
    user = make_user()
    clock.advance(days=29)
    assert purge(app).inactive_accounts == 0
    assert Session(app).login(user.username).status_code == 200


def test_purge_deletes_an_account_doomed_by_its_destruction_password(app, runtime, make_user):
    """If the deferred deletion after a destruction login never ran, the purge finishes it."""
    user = make_user()
    with context_of(app) as ctx:
        accounts.login(ctx, user.username, DPASS)  # dooms the account; the deferred deletion never runs
    assert rows_of(app, user.id)["user"] == 1
    assert purge(app).inactive_accounts == 1
    assert rows_of(app, user.id)["user"] == 0


# ---- purge: abandoned blobs ----------------------------------------------------------


def test_purge_removes_old_orphan_blobs_and_partial_writes(app, runtime, make_user):
    user = make_user()
    file = user.upload().get_json()
    name = stored_name(app, file["id"])
    os.utime(runtime.blobs.root / name, (TWO_HOURS_AGO, TWO_HOURS_AGO))
    plant_orphans(runtime, TWO_HOURS_AGO)
    assert purge(app).orphan_blobs == 2
    assert blob_files(runtime) == {name}
    assert user.get(f"/file/{file['id']}").status_code == 200


def test_purge_spares_fresh_orphans_within_the_grace_period(app, runtime):
    plant_orphans(runtime)
    assert purge(app).orphan_blobs == 0
    assert blob_files(runtime) == {ORPHAN, f".incoming/{PARTIAL}"}


def test_purge_with_zero_grace_removes_every_orphan_but_never_a_recorded_blob(app, runtime, make_user):
    user = make_user()
    files = [user.upload(f"file {i}".encode()).get_json() for i in range(3)]
    names = {stored_name(app, f["id"]) for f in files}
    plant_orphans(runtime)
    assert purge(app, orphan_grace_seconds=0).orphan_blobs == 2
    assert blob_files(runtime) == names


# ---- the lease ------------------------------------------------------------------------


def test_lease_is_won_once_per_period(app, clock):
    assert claim(app) is True
    assert claim(app) is False
    clock.advance(seconds=299)
    assert claim(app) is False
    clock.advance(seconds=1)
    assert claim(app) is True
    assert claim(app) is False


def test_only_one_of_two_apps_sharing_a_database_wins_the_lease(app, settings, clock):
    other = second_app(settings, clock)
    assert [claim(app), claim(other)] == [True, False]
    clock.advance(seconds=301)
    assert [claim(other), claim(app)] == [True, False]


def test_leases_with_different_names_are_independent(app):
    with context_of(app) as ctx:
        assert maintenance.claim_lease(ctx, "purge", 300)
        assert maintenance.claim_lease(ctx, "other-job", 300)


def test_run_purge_if_due_runs_once_per_interval(app, settings, clock, make_user):
    timed = second_app(settings, clock, purge_interval_seconds=300)
    owner = make_user()
    owner.upload(expiry_days="1")
    clock.advance(days=2)
    first = maintenance_timer.run_purge_if_due(timed)
    assert first is not None and first.expired_files == 1
    assert maintenance_timer.run_purge_if_due(timed) is None
    assert maintenance_timer.run_purge_if_due(second_app(settings, clock, purge_interval_seconds=300)) is None
    clock.advance(seconds=300)
    assert maintenance_timer.run_purge_if_due(timed) == maintenance.PurgeReport(0, 0, 0)


def test_timer_is_off_when_the_interval_is_zero(app):
    assert maintenance_timer.start(app) is None


# ---- the command line ------------------------------------------------------------------


def test_cli_purge_cleans_up_and_prints_a_report(app, runtime, settings, make_user, monkeypatch):
    for key in [k for k in os.environ if k.startswith("GHOSTCACHE_")]:
        monkeypatch.delenv(key)
    keeper, idle = make_user(), make_user()
    gone, kept = keeper.upload(b"old").get_json(), keeper.upload(b"new").get_json()
    plant_orphans(runtime, TWO_HOURS_AGO)
    now, user, file = datetime.now(UTC), models.User, models.File  # the CLI runs on the real clock
    with app.app_context(), Context(db=db.session, rt=runtime).write():
        db.session.execute(update(user).values(last_login=now))
        db.session.execute(update(user).where(user.id == idle.id).values(last_login=now - timedelta(days=40)))
        db.session.execute(update(file).where(file.id == gone["id"]).values(expiry=now - timedelta(days=1)))
        db.session.execute(update(file).where(file.id == kept["id"]).values(expiry=now + timedelta(days=9)))
    result = CliRunner().invoke(main, ["purge"], env=command_env(settings))
    assert result.exit_code == 0, result.output
    assert result.output == "removed 1 expired files, 1 inactive accounts, 2 abandoned blobs\n"
    assert rows_of(app, idle.id)["user"] == 0 and rows_of(app, keeper.id)["files"] == 1
    assert blob_files(runtime) == {stored_name(app, kept["id"])}


def test_cli_reports_a_bad_setting_without_a_traceback(tmp_path):
    env = {"GHOSTCACHE_DATA_DIR": str(tmp_path), "GHOSTCACHE_INACTIVITY_DAYS": "soon"}
    result = CliRunner().invoke(main, ["purge"], env=env)
    assert result.exit_code != 0 and "GHOSTCACHE_INACTIVITY_DAYS" in result.output
    assert "Traceback" not in result.output


# ---- key files ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["master.key", "secret.key"])
def test_key_files_are_created_readable_by_the_owner_only(app, settings, name):
    path = settings.data_dir / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    assert path.read_text().strip()


def test_a_second_start_reuses_the_keys_so_accounts_chat_and_sessions_survive(app, settings, clock, connect):
    keys = {n: (settings.data_dir / n).read_text() for n in ("master.key", "secret.key")}
    a, b = connect()
    assert a.post("/chat/send", {"receiver_id": b.id, "message": "before restart"}).status_code == 201
    restarted = second_app(settings, clock)
    assert {n: (settings.data_dir / n).read_text() for n in keys} == keys
    again = Session(restarted)
    assert again.login(b.username).status_code == 200
    history = again.get(f"/chat/{a.id}").get_json()
    assert [m["message"] for m in history["messages"]] == ["before restart"]
    old_cookie = a.client.get_cookie("session")
    client = restarted.test_client()
    client.set_cookie("session", old_cookie.value)
    assert client.get("/connections", headers={"Accept": "application/json"}).status_code == 200


def test_master_key_from_the_environment_writes_no_key_file(tmp_path, clock):
    key = Fernet.generate_key().decode()
    settings = load_settings({"GHOSTCACHE_DATA_DIR": str(tmp_path / "d"), "GHOSTCACHE_MASTER_KEY": key})
    app = create_app(settings.with_overrides(argon2_profile="fast"), clock=clock)
    upgrade(app)
    assert not (tmp_path / "d" / "master.key").exists()
    session = Session(app)
    assert session.register("envkey").status_code == 201 and session.login().status_code == 200
    runtime = app.extensions["ghostcache"]
    assert key not in repr(runtime) and key not in repr(runtime.settings) and key not in str(runtime)


def test_master_key_from_a_file_never_appears_in_reprs(app, runtime, settings):
    for name in ("master.key", "secret.key"):
        secret = (settings.data_dir / name).read_text().strip()
        assert secret not in repr(runtime) and secret not in repr(runtime.settings)
        assert secret not in repr(runtime.keyring)
