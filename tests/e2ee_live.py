"""End-to-end encryption over plain HTTP for live-server tests: what a GCE1 client does,
with ghostcache.e2ee and the JSON routes only."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ghostcache import e2ee as gce1
from tests.conftest import PASSWORD
from tests.test_chat_live import Client


@dataclass
class E2EEClient:
    """A signed-up Client with a published identity key and a sealed backup."""

    client: Client
    key: X25519PrivateKey = field(default_factory=gce1.generate_identity)
    backup_blob: str = ""
    kids: list[str] = field(default_factory=list)  # every kid this account has published

    @property
    def pub(self) -> bytes:
        return gce1.public_raw(self.key)

    def set_up(self) -> E2EEClient:
        published = self.client.post("/e2ee/identity", {"pub": gce1.b64u(self.pub)})
        assert published.status_code == 201, published.text
        self.kids.append(published.json()["kid"])
        return self.seal_backup(ctr=1)

    def seal_backup(self, ctr: int) -> E2EEClient:
        sealed = gce1.seal_backup(
            gce1.new_recovery_key(), self.client.id or 0, ctr, gce1.private_pkcs8(self.key), {}
        )
        stored = self.client.http.put(
            self.client.base + "/e2ee/backup",
            json={**sealed, "ctr": ctr, "password": PASSWORD},
            headers={"X-CSRFToken": self.client.token},
            timeout=30,
        )
        assert stored.status_code == 200, stored.text
        self.backup_blob = sealed["blob"]
        return self

    def reset(self) -> None:
        """A new identity key (a key event for the contacts)."""
        self.key = gce1.generate_identity()
        body = {"pub": gce1.b64u(self.pub), "password": PASSWORD}
        answer = self.client.post("/e2ee/identity/reset", body)
        assert answer.status_code == 200, answer.text
        self.kids.append(answer.json()["kid"])

    def send(self, receiver: E2EEClient, connection_id: int, text: str) -> dict[str, str]:
        """Sends text end to end; returns the envelope the server stored."""
        envelope = gce1.encrypt_message(
            self.key, self.client.id or 0, receiver.pub, receiver.client.id or 0, connection_id, text
        )
        sent = self.client.post("/chat/send", {"receiver_id": receiver.client.id, "envelope": envelope})
        assert sent.status_code == 201, sent.text
        return envelope

    def read(self, sender: E2EEClient, connection_id: int) -> list[str]:
        """The conversation's end-to-end messages from sender under both sides' current
        keys, decrypted (history)."""
        history = self.client.get(f"/chat/{sender.client.id}")
        assert history.status_code == 200, history.text
        return [
            gce1.decrypt_message(
                self.key,
                m["envelope"],
                expected_sender_id=sender.client.id or 0,
                expected_receiver_id=self.client.id or 0,
                expected_conv=connection_id,
                sender_pub=sender.pub,
            )
            for m in history.json()["messages"]
            if m["e2ee"]
            and m["sender_id"] == sender.client.id
            and (m["envelope"]["skid"], m["envelope"]["rkid"]) == (gce1.kid(sender.pub), gce1.kid(self.pub))
        ]


def turn_on(a: E2EEClient, b: E2EEClient) -> None:
    """Both set up; a turns their conversation end-to-end encrypted."""
    a.set_up()
    b.set_up()
    switched = a.client.post(f"/chat/{b.client.id}/e2ee")
    assert switched.status_code == 200, switched.text
