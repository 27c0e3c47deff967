"""GhostCache as a Tor onion service, end to end and offline: a private Tor network in a
network namespace of its own, the onion service of deploy/onion/ in front of its nginx
site in front of a `make run` server. People register, chat and exchange files over the
onion; each circuit has its own rate-limit buckets; no log keeps a circuit. The bootstrap
time and what the onion costs against plain loopback are written to onion-costs.json."""

from __future__ import annotations

import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pyrage
import pytest
import requests
from pyrage import x25519

from tests.onion_site import OnionSite, unavailable
from tests.test_chat_live import Client
from tests.tor_network import interfaces, network_namespace

pytestmark = pytest.mark.live

CIRCUIT_PREFIX = "fc00:dead:beef:4dad:"  # what tor's PROXY lines name circuits by
WRONG = {"username": "nobody", "password": "not the password at all"}
COSTS: dict[str, object] = {}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("onion")
    with network_namespace():
        onion = OnionSite(folder)
        try:
            assert interfaces() == ["lo"], "the network must see loopback only"
            onion.start()
            COSTS["bootstrap_seconds"] = [round(s, 1) for s in onion.bootstrap_seconds]
            yield onion
        finally:
            onion.stop()
    (folder / "onion-costs.json").write_text(json.dumps(COSTS, indent=2))
    print(f"\nonion: {json.dumps(COSTS)} ({folder / 'onion-costs.json'})")


def test_two_people_chat_and_share_a_file_over_the_onion(site):
    alice = site.client("alice").signup()
    bob = site.client("bob").signup()
    request = alice.post("/connect", {"username": "bob"})
    assert request.status_code == 201, request.text
    assert bob.post(f"/connect/accept/{request.json()['id']}").status_code == 200

    alice.send(bob, "hello through tor")
    bob.send(alice, "loud and clear")
    history = alice.get(f"/chat/{bob.id}").json()["messages"]
    assert [m["message"] for m in history] == ["hello through tor", "loud and clear"]

    content = os.urandom(300_000)
    stored = alice.http.post(
        site.url + "/file/upload",
        files={"file": ("plans.bin", content)},
        headers={"X-CSRFToken": alice.token, "Accept": "application/json"},
        timeout=60,
    )
    assert stored.status_code == 201, stored.text
    file_id, key = stored.json()["id"], stored.json()["key"]
    assert alice.post(f"/file/{file_id}/share", {"username": "bob"}).status_code == 201
    blob = bob.get(f"/file/{file_id}", timeout=60)
    assert blob.status_code == 200
    assert pyrage.decrypt(blob.content, [x25519.Identity.from_str(key)]) == content

    near = direct(site, alice, bob)
    COSTS["send_and_history_ms"] = {
        "onion": median_ms(lambda: round_trip(alice, bob)),
        "loopback": median_ms(lambda: round_trip(*near)),
    }


def test_a_circuit_at_its_login_limit_gets_429_while_another_circuit_does_not(site):
    hammer = site.client("hammer")
    statuses = [hammer.post("/login", WRONG).status_code for _ in range(5)]
    assert statuses == [401] * 5
    refused = hammer.post("/login", WRONG)
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert "Retry-After" in refused.headers  # the app's limit, not nginx's
    # The same username, another circuit: its own bucket.
    assert site.client("bystander").post("/login", WRONG).status_code == 401
    assert hammer.post("/login", WRONG).status_code == 429


def test_nginx_limits_requests_per_circuit(site):
    flood = site.session("flood")
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda _: flood.get(site.url + "/healthz", timeout=30).status_code, range(120))
        )
    assert 429 in statuses and 200 in statuses, statuses
    assert set(statuses) == {200, 429}
    assert site.session("calm").get(site.url + "/healthz", timeout=30).status_code == 200


def test_what_the_onion_costs_against_loopback(site):
    onion = site.session("costs")
    COSTS["get_csrf_ms"] = {
        "onion": median_ms(lambda: onion.get(site.url + "/csrf", timeout=30).raise_for_status()),
        "loopback": median_ms(lambda: requests.get(site.server.url + "/csrf", timeout=30).raise_for_status()),
    }
    firsts = []
    for n in range(5):  # a new circuit each: a rendezvous, then the request
        fresh = site.session(f"fresh{n}")
        started = time.perf_counter()
        fresh.get(site.url + "/healthz", timeout=60).raise_for_status()
        firsts.append(time.perf_counter() - started)
    COSTS["first_request_on_a_new_circuit_ms"] = round(statistics.median(firsts) * 1000, 1)
    assert COSTS["get_csrf_ms"]["onion"] < 5000  # type: ignore[index]


def test_no_log_keeps_a_circuit_and_the_access_log_stays_empty(site):
    assert site.client("late").post("/login", WRONG).status_code == 401
    assert site.access_log.exists(), "nginx opened no http-wide access log: the check proves nothing"
    assert site.access_log.read_text() == ""
    for name, text in site.logs().items():
        assert CIRCUIT_PREFIX not in text, f"{name} names a circuit"
    assert site.server.log(), "the server wrote no log: the check proves nothing"


# -- measuring ---------------------------------------------------------------------------------


def median_ms(action, times: int = 20) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        spent.append(time.perf_counter() - started)
    return round(statistics.median(spent) * 1000, 1)


def round_trip(sender, receiver) -> None:
    """One message sent, then the receiver's history read."""
    sender.send(receiver, "ping")
    assert receiver.get(f"/chat/{sender.id}?limit=1").status_code == 200


def direct(site, *clients):
    """The same users, logged in as they are, straight to the server on loopback."""
    copies = []
    for client in clients:
        copy = Client(site.server.url, client.username)
        copy.http.cookies.clear()  # the session that GET /csrf just began
        copy.http.cookies.update(client.http.cookies.get_dict())
        copy.token, copy.id = client.token, client.id
        copies.append(copy)
    return copies
