"""Master-key rotation re-wraps every user key; an interrupted rotation leaves every
key readable; the old key can then be retired; running servers follow the key file."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ghostcache import create_app
from ghostcache.cli import main
from ghostcache.crypto import new_fernet_key
from ghostcache.database import upgrade
from ghostcache.keyfiles import master_key_path, read_master_keys
from ghostcache.services import keys as key_service
from tests.conftest import BufferedClient, Session, command_env


@pytest.fixture
def env(settings):
    return command_env(settings)


def _chatting_pair(connect):
    alice, bob = connect()
    assert alice.post("/chat/send", {"receiver_id": bob.id, "message": "before"}).status_code == 201
    return alice, bob


def _still_works(app, alice, bob, text: str) -> None:
    """Keys open: history decrypts, new messages go both ways, a new user can join."""
    history = bob.get(f"/chat/{alice.id}").get_json()["messages"]
    assert history[0]["message"] == "before"
    assert bob.post("/chat/send", {"receiver_id": alice.id, "message": text}).status_code == 201
    assert alice.get("/chat/poll").get_json()[-1]["message"] == text
    newcomer = Session(app)
    assert newcomer.register(f"new{text}").status_code == 201


def _run(env, *args):
    return CliRunner().invoke(main, ["rotate-master-key", *args], env=env)


def test_rotation_then_retirement_keeps_every_key_readable(app, settings, connect, env):
    alice, bob = _chatting_pair(connect)
    old = read_master_keys(master_key_path(settings))
    result = _run(env)
    assert result.exit_code == 0, result.output
    keys = read_master_keys(master_key_path(settings))
    assert len(keys) == 2 and keys[1] == old[0]
    _still_works(app, alice, bob, "rotated")  # the running app followed the key file
    retired = _run(env, "--retire-old")
    assert retired.exit_code == 0, retired.output
    assert read_master_keys(master_key_path(settings)) == keys[:1]
    _still_works(app, alice, bob, "retired")
    assert master_key_path(settings).stat().st_mode & 0o777 == 0o600


def test_an_interrupted_rotation_leaves_every_key_readable_and_resumes(
    app, settings, connect, make_user, env, monkeypatch
):
    alice, bob = _chatting_pair(connect)
    for _ in range(4):
        make_user()
    monkeypatch.setattr(key_service, "BATCH", 2)

    def crash_after_first_batch(done: int) -> None:
        raise KeyboardInterrupt("power cut")

    real = key_service.rewrap_user_keys
    monkeypatch.setattr(
        key_service, "rewrap_user_keys", lambda ctx, after_batch=None: real(ctx, crash_after_first_batch)
    )
    interrupted = _run(env)
    assert interrupted.exit_code != 0
    monkeypatch.setattr(key_service, "rewrap_user_keys", real)
    assert len(read_master_keys(master_key_path(settings))) == 2
    _still_works(app, alice, bob, "halfway")
    refused = _run(env, "--retire-old")
    assert refused.exit_code != 0 and "still need an old master key" in refused.output
    assert len(read_master_keys(master_key_path(settings))) == 2
    resumed = _run(env)
    assert resumed.exit_code == 0, resumed.output
    assert _run(env, "--retire-old").exit_code == 0
    _still_works(app, alice, bob, "resumed")


def test_a_key_from_the_environment_needs_a_new_key_in_front(settings, clock):
    only = new_fernet_key().reveal().decode()
    env = command_env(settings, GHOSTCACHE_MASTER_KEY=only)
    upgrade(create_app(settings.with_overrides(master_key=None), clock=clock))
    result = CliRunner().invoke(main, ["rotate-master-key"], env=env)
    assert result.exit_code != 0 and "holds one key" in result.output


def test_environment_keys_rotate_to_the_first_one(settings, clock):
    from ghostcache.secrets import Secret

    old, new = (new_fernet_key().reveal().decode() for _ in range(2))
    first = create_app(settings.with_overrides(master_key=Secret(old)), clock=clock)
    first.test_client_class = BufferedClient
    upgrade(first)
    keeper, peer = Session(first), Session(first)
    keeper.register("keeper")
    peer.register("peer")
    peer.login("peer")
    request = peer.post("/connect", {"username": "keeper"}).get_json()
    env = command_env(settings, GHOSTCACHE_MASTER_KEY=f"{new},{old}")
    assert CliRunner().invoke(main, ["rotate-master-key"], env=env).exit_code == 0
    retired = CliRunner().invoke(main, ["rotate-master-key", "--retire-old"], env=env)
    assert retired.exit_code == 0 and "remove the others" in retired.output
    after = create_app(settings.with_overrides(master_key=Secret(new)), clock=clock)
    keeper = Session(after)
    assert keeper.login("keeper").status_code == 200
    # accepting unwraps both user keys: only possible if they moved to the new key
    assert keeper.post(f"/connect/accept/{request['id']}").status_code == 200


def test_new_master_key_prints_a_usable_key():
    output = CliRunner().invoke(main, ["new-master-key"]).output.strip()
    from ghostcache.crypto import MasterKeyring
    from ghostcache.secrets import Secret

    MasterKeyring([Secret(output.encode())])  # raises if it were not a valid key
