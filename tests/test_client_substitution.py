"""Key substitution: a malicious server (here a loopback proxy in front of the real one,
used by Alice only) hands Alice another key as Bob's. Comparing safety numbers catches
it when it is there from the start; once Bob's real key is pinned, Alice's client
refuses to send to the substituted key until she runs `trust`."""

from __future__ import annotations

import json
import re

import pytest

from ghostcache import e2ee as gce1
from tests.client_helpers import Proxy, User, contacts, http_session

pytestmark = pytest.mark.live

SAFETY = re.compile(r"^(\d{5}(?: \d{5}){11})$", re.MULTILINE)


class Substitution:
    """Rewrites the answer to GET /e2ee/identity/<victim_id> to Mallory's key, when on."""

    def __init__(self, victim_id: int) -> None:
        self.path = f"/e2ee/identity/{victim_id}"
        self.mallory = gce1.public_raw(gce1.generate_identity())
        self.on = False

    def __call__(self, method: str, path: str, body: bytes) -> bytes:
        if not self.on or method != "GET" or path.split("?")[0] != self.path:
            return body
        identity = json.loads(body)
        identity["pub"], identity["kid"] = gce1.b64u(self.mallory), gce1.kid(self.mallory)
        return json.dumps(identity).encode()

    @property
    def kid(self) -> str:
        return gce1.kid(self.mallory)


@pytest.fixture
def world(live_server, tmp_path):
    """Alice (through the proxy) and Bob (direct), contacts with identities, their chat
    end-to-end encrypted by Bob; yields (alice, bob, substitution)."""
    bob = User(live_server.url, tmp_path, "bob")
    alice_direct = User(live_server.url, tmp_path, "alice").signup()
    bob.signup()
    contacts(alice_direct, bob)
    _, bob_user = http_session(live_server.url, "bob")
    substitution = Substitution(bob_user["id"])
    with Proxy(live_server.url, substitution) as proxy:
        alice = User(proxy.url, tmp_path, "alice")  # Alice's client only ever talks to the proxy
        alice.signup_existing()
        alice.setup_e2ee()
        bob.setup_e2ee()
        yield alice, bob, substitution


def safety(user: User, other: str) -> str:
    found = SAFETY.findall(user.ok("safety", other))
    assert len(found) == 1
    return found[0]


def test_a_key_substituted_from_the_start_shows_in_the_safety_numbers(world):
    alice, bob, substitution = world
    substitution.on = True
    bob.ok("e2ee", "enable", "alice")
    assert safety(alice, "bob") != safety(bob, "alice")
    assert substitution.kid in alice.ok("safety", "bob")  # Alice's client pinned Mallory's key
    substitution.on = False  # the honest answer now differs from the pin: refused too
    refused = alice.run("send", "bob", "hello")
    assert refused.returncode == 3 and "trust bob" in refused.stderr


def test_a_pinned_client_refuses_a_substituted_key_until_trust(world):
    alice, bob, substitution = world
    bob.ok("e2ee", "enable", "alice")
    alice.ok("send", "bob", "before the substitution")  # pins Bob's real key
    assert safety(alice, "bob") == safety(bob, "alice")

    substitution.on = True
    refused = alice.run("send", "bob", "meant for bob only")
    assert refused.returncode == 3
    assert "identity key changed" in refused.stderr and "safety bob" in refused.stderr
    assert "trust bob" in refused.stderr
    assert alice.run("send", "bob", "again").returncode == 3  # still refused: nothing acknowledged
    history = bob.ok("history", "alice")
    assert "before the substitution" in history and "meant for bob only" not in history
    assert "again" not in history

    # Alice accepts the change (as if she had been fooled): the client now encrypts to
    # Mallory's key, and only the real server's key check stops it here.
    assert substitution.kid in alice.ok("trust", "bob")
    after_trust = alice.run("send", "bob", "after trust")
    assert "identity key changed" not in after_trust.stderr
    assert "after trust" not in bob.ok("history", "alice")

    # The substitution ends: Bob's real key is now a change again, until trusted back.
    substitution.on = False
    assert alice.run("send", "bob", "real again").returncode == 3
    alice.ok("trust", "bob")
    alice.ok("send", "bob", "real again")
    assert "real again" in bob.ok("history", "alice")
