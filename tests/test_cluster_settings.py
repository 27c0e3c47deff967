"""Cluster mode: a node never makes keys of its own, takes them from the environment or
from files, refuses to start without what nodes must share, and rotates keys in steps
the operator carries to every node."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ghostcache import create_app
from ghostcache.cli import main
from ghostcache.crypto import new_fernet_key
from ghostcache.database import upgrade
from ghostcache.settings import SettingsError, load_settings
from tests.conftest import BufferedClient, Session, command_env

PG = "postgresql+psycopg://node@127.0.0.1/ghostcache"
REDIS = "redis://127.0.0.1:6379/0"


def _key() -> str:
    return new_fernet_key().reveal().decode()


def test_cluster_mode_without_keys_refuses_to_start_and_says_what_is_missing(tmp_path):
    env = {"GHOSTCACHE_DATA_DIR": str(tmp_path), "GHOSTCACHE_CLUSTER": "on"}
    with pytest.raises(SettingsError) as refused:
        load_settings(env)
    message = str(refused.value)
    for missing in ("MASTER_KEY", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        assert f"GHOSTCACHE_{missing}" in message
    assert not (tmp_path / "master.key").exists() and not (tmp_path / "secret.key").exists()


def test_the_serve_command_refuses_in_cluster_mode_without_keys(tmp_path):
    env = {
        "GHOSTCACHE_DATA_DIR": str(tmp_path / "d"),
        "GHOSTCACHE_CLUSTER": "on",
        "GHOSTCACHE_DATABASE_URL": PG,
        "GHOSTCACHE_REDIS_URL": REDIS,
    }
    result = CliRunner().invoke(main, ["serve"], env=env)
    assert result.exit_code != 0
    assert "will not make keys of its own" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d").exists()  # refused before anything was written


def test_a_key_given_twice_is_refused(tmp_path):
    key_file = tmp_path / "master.key"
    key_file.write_text(_key())
    env = {"GHOSTCACHE_MASTER_KEY": _key(), "GHOSTCACHE_MASTER_KEY_FILE": str(key_file)}
    with pytest.raises(SettingsError, match="not both"):
        load_settings(env)


def test_a_named_key_file_that_is_missing_is_never_created(settings):
    missing = settings.data_dir.parent / "keys" / "master.key"
    with pytest.raises(SettingsError) as refused:
        create_app(settings.with_overrides(master_key_file=missing))
    assert "cannot be read" in str(refused.value) and "Nothing makes this file" in str(refused.value)
    assert not missing.exists()


@pytest.fixture
def key_files(tmp_path):
    """The operator's key files, as each node of a cluster would have them."""
    folder = tmp_path / "keys"
    folder.mkdir()
    master, secret = folder / "master.key", folder / "secret.key"
    master.write_text(_key() + "\n")
    secret.write_text("s" * 64 + "\n")
    return master, secret


def _node(settings, master, secret, clock):
    app = create_app(settings.with_overrides(master_key_file=master, secret_key_file=secret), clock=clock)
    app.test_client_class = BufferedClient
    upgrade(app)
    return app


def test_nodes_with_the_same_key_files_share_sessions_and_chats(settings, key_files, clock, tmp_path):
    master, secret = key_files
    node_a = _node(settings, master, secret, clock)
    shared_database = settings.with_overrides(
        data_dir=tmp_path / "node-b", database_url=settings.sqlalchemy_url
    )
    node_b = _node(shared_database, master, secret, clock)
    alice, bob = Session(node_a), Session(node_a)
    for user in (alice, bob):
        assert user.register(f"k{id(user)}").status_code == 201
        assert user.login().status_code == 200
    request = alice.post("/connect", {"username": bob.username}).get_json()
    assert bob.post(f"/connect/accept/{request['id']}").status_code == 200
    assert alice.post("/chat/send", {"receiver_id": bob.id, "message": "via a"}).status_code == 201
    bob.client = _moved(bob, node_b)  # the same browser cookie, sent to the other node
    history = bob.get(f"/chat/{alice.id}").get_json()["messages"]
    assert [m["message"] for m in history] == ["via a"]
    for data_dir in (settings.data_dir, tmp_path / "node-b"):
        assert not (data_dir / "master.key").exists() and not (data_dir / "secret.key").exists()


def _moved(session: Session, app) -> BufferedClient:
    client = app.test_client()
    for cookie in session.client._cookies.values():
        client.set_cookie(cookie.key, cookie.value, domain=cookie.domain)
    return client


def _rotate(settings, master, *args):
    env = command_env(settings, GHOSTCACHE_MASTER_KEY_FILE=str(master))
    return CliRunner().invoke(main, ["rotate-master-key", *args], env=env)


def test_rotation_with_operator_key_files_takes_the_documented_steps(settings, key_files, clock):
    master, secret = key_files
    app = _node(settings, master, secret, clock)
    alice, bob = Session(app), Session(app)
    for user in (alice, bob):
        user.register(f"r{id(user)}")
        user.login()
    request = alice.post("/connect", {"username": bob.username}).get_json()
    old = master.read_text().strip()

    refused = _rotate(settings, master)
    assert refused.exit_code != 0 and "holds one key" in refused.output
    assert master.read_text().strip() == old  # the command never writes the operator's file

    new = _key()
    master.write_text(f"{old}\n{new}\n")  # step 1, on every node: the new key opens
    master.write_text(f"{new}\n{old}\n")  # step 2, on every node: the new key wraps
    done = _rotate(settings, master)
    assert done.exit_code == 0 and "wrapped by the new master key" in done.output
    retire = _rotate(settings, master, "--retire-old")
    assert retire.exit_code == 0 and "on every node" in retire.output
    assert master.read_text() == f"{new}\n{old}\n"

    master.write_text(f"{new}\n")  # step 3, on every node: the old key goes
    # accepting unwraps both user keys: only possible if they moved to the new key
    assert bob.post(f"/connect/accept/{request['id']}").status_code == 200
