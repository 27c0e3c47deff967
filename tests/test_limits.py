"""Rate limits follow the contract: 429, Retry-After, rate_limited; per address, per
user, shared through Redis; X-Forwarded-For believed only behind trusted proxies."""

from __future__ import annotations

import pytest
import redis

from ghostcache import create_app
from ghostcache.database import upgrade
from ghostcache.secrets import Secret
from tests.conftest import BufferedClient, Session
from tests.services import start_redis


def _app(settings, clock, **overrides):
    app = create_app(settings.with_overrides(**overrides), clock=clock)
    app.test_client_class = BufferedClient
    upgrade(app)
    return app


def _login(user: Session, password: str = "wrong password!", **kw):
    return user.post("/login", {"username": user.username, "password": password}, **kw)


def _assert_limited(response) -> None:
    assert response.status_code == 429
    assert response.get_json()["error"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0


@pytest.fixture
def limited(settings, clock):
    return _app(
        settings,
        clock,
        ratelimits={
            "login": "3/minute",
            "login_address": "5/minute",
            "register": "2/hour",
            "send": "3/minute",
            "connect": "2/hour",
            "upload": "2/hour",
            "password": "3/hour",
        },
    )


def test_login_is_limited_per_address_and_username(limited):
    user = Session(limited, "alice")
    user.register("alice")
    for _ in range(3):
        assert _login(user).status_code == 401
    _assert_limited(_login(user, password="correct horse battery"))
    other = Session(limited, "bob")
    assert _login(other).status_code == 401  # another name from the same address still gets in


def test_login_is_limited_per_address_whatever_the_name(limited):
    client = Session(limited)
    answers = [
        client.post("/login", {"username": f"name{i}", "password": "x" * 9}).status_code for i in range(6)
    ]
    assert answers[:5] == [401] * 5
    assert answers[5] == 429


def test_register_is_limited_per_address(limited):
    client = Session(limited)
    assert [client.register(f"person{i}").status_code for i in range(3)] == [201, 201, 429]


def test_sending_is_limited_per_user_across_both_send_routes(limited):
    alice, bob = Session(limited), Session(limited)
    for user, name in ((alice, "alice"), (bob, "bob")):
        limited.extensions["ghostcache_limiter"].reset()
        user.register(name)
        user.login(name, "correct horse battery")
    conn = alice.post("/connect", {"username": "bob"}).get_json()
    bob.post(f"/connect/accept/{conn['id']}")
    sends = [
        alice.post("/chat/send", {"receiver_id": bob.id, "message": "hi"}),
        alice.post(f"/chat/{bob.id}", {"message": "hi"}),
        alice.post("/chat/send", {"receiver_id": bob.id, "message": "hi"}),
    ]
    assert [r.status_code for r in sends] == [201, 201, 201]
    _assert_limited(alice.post(f"/chat/{bob.id}", {"message": "one too many"}))
    assert bob.post("/chat/send", {"receiver_id": alice.id, "message": "hi"}).status_code == 201


def test_both_password_changes_share_one_budget_per_user(limited):
    alice, bob = Session(limited), Session(limited)
    for user, name in ((alice, "alice"), (bob, "bob")):
        limited.extensions["ghostcache_limiter"].reset()
        user.register(name)
        user.login(name, "correct horse battery")
    wrong = {"password": "wrong password!", "new_password": "a new one!", "new_d_pass": "a new one!"}
    tries = [alice.post(path, wrong) for path in ("/password", "/destruction_password", "/password")]
    assert [r.status_code for r in tries] == [401, 401, 401]
    _assert_limited(alice.post("/destruction_password", wrong))
    _assert_limited(alice.post("/password", wrong))
    assert bob.post("/destruction_password", wrong).status_code == 401  # a budget per user


def test_limits_can_be_switched_off(settings, clock):
    app = _app(settings, clock, ratelimit=False, ratelimits={"register": "1/hour"})
    client = Session(app)
    assert [client.register(f"person{i}").status_code for i in range(3)] == [201] * 3


def test_forwarded_for_is_ignored_without_trusted_proxies(limited):
    client = Session(limited)
    answers = [
        client.register(f"p{i}x", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code for i in range(3)
    ]
    assert answers[2] == 429


def test_forwarded_for_is_believed_behind_a_trusted_proxy(settings, clock):
    app = _app(settings, clock, trusted_proxies=1, ratelimits={"register": "1/hour"})
    client = Session(app)
    answers = [
        client.register(f"p{i}x", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code for i in range(3)
    ]
    assert answers == [201, 201, 201]
    assert client.register("p9x", headers={"X-Forwarded-For": "10.0.0.1"}).status_code == 429


def test_redis_counters_are_shared_between_processes(settings, clock, tmp_path):
    redis_server, url = start_redis(tmp_path)
    try:
        # Machines of one site share the secret key (sessions must work on each), and
        # with it the keyed hashes that name the counters.
        shared_key = Secret("a site-wide secret key")
        overrides = {"redis_url": url, "ratelimits": {"register": "2/hour"}, "secret_key": shared_key}
        first = _app(settings, clock, **overrides)
        second = _app(settings.with_overrides(data_dir=tmp_path / "second"), clock, **overrides)
        assert Session(first).register("one1").status_code == 201
        assert Session(second).register("two2").status_code == 201
        _assert_limited(Session(first).register("three3"))
        login = Session(first)
        login.post("/login", {"username": "Someone_Private", "password": "wrong password!"})
        keys = b" ".join(redis.Redis.from_url(url).keys("*"))
        assert b"ghostcache" in keys  # the counters are there...
        assert b"someone_private" not in keys.lower() and b"127.0.0.1" not in keys  # ...named by keyed hashes
    finally:
        redis_server.kill()
        redis_server.wait()


def test_limits_go_on_counting_in_each_process_while_redis_is_down(settings, clock, tmp_path, caplog):
    redis_server, url = start_redis(tmp_path)
    app = _app(settings, clock, redis_url=url, ratelimits={"register": "2/hour"})
    assert Session(app).register("before1").status_code == 201
    redis_server.kill()
    redis_server.wait()
    with caplog.at_level("WARNING"):
        answers = [Session(app).register(f"during{i}").status_code for i in range(3)]
    assert answers[:2] == [201, 201]  # served, counted afresh in this process...
    _assert_limited(Session(app).register("during9"))  # ...and still limited
    assert "falling back to in-memory storage" in caplog.text


def test_a_malformed_limit_setting_is_refused_with_its_value():
    from ghostcache.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="login=lots"):
        load_settings({"GHOSTCACHE_RATELIMITS": "login=lots"})


def test_an_unknown_limit_name_stops_the_app_from_starting(settings, clock):
    from ghostcache.settings import SettingsError

    with pytest.raises(SettingsError, match="logn"):
        create_app(settings.with_overrides(ratelimits={"logn": "5/minute"}), clock=clock)
