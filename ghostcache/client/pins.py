"""Trust on first use for contacts' identity keys: the first key id seen for a contact
is pinned; a different one later is a key change that the user must acknowledge
(`trust`) before anything is sent to it. Verified = the user compared safety numbers
for that exact key id.

Usernames are kept lower-cased (GhostCache names ignore case)."""

from __future__ import annotations

from enum import Enum

from .. import e2ee as gce1
from .profile import Account


class PinState(Enum):
    NEW = "new"  # never seen: pin it now
    PINNED = "pinned"  # the pinned key
    CHANGED = "changed"  # not the pinned key: refuse to send until `trust`


class Pins:
    """pins.json {user: kid}, verified.json {user: kid}, and keys.json, every public key
    seen {kid: {"user", "pub", "pinned"}} so that messages sealed to or by an earlier key
    still open after a change."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.pins: dict[str, str] = _str_map(account.load_json("pins.json", {}))
        self.verified: dict[str, str] = _str_map(account.load_json("verified.json", {}))
        keys = account.load_json("keys.json", {})
        self.keys: dict[str, dict] = keys if isinstance(keys, dict) else {}

    def save(self) -> None:
        self.account.save_json("pins.json", self.pins)
        self.account.save_json("verified.json", self.verified)
        self.account.save_json("keys.json", self.keys)

    def state(self, username: str, kid: str) -> PinState:
        pinned = self.pins.get(username.lower())
        if pinned is None:
            return PinState.NEW
        return PinState.PINNED if pinned == kid else PinState.CHANGED

    def pinned(self, username: str) -> str | None:
        return self.pins.get(username.lower())

    def remember(self, username: str, pub: bytes, *, pinned: bool = False) -> str:
        """Keep a public key seen for username; returns its kid."""
        kid = gce1.kid(pub)
        entry = self.keys.get(kid, {})
        self.keys[kid] = {
            "user": username.lower(),
            "pub": gce1.b64u(pub),
            "pinned": bool(pinned or entry.get("pinned")),
        }
        return kid

    def pin(self, username: str, pub: bytes) -> str:
        """Pin this key for username (first sight, or `trust` after a change); a change
        clears `verified`, which was about the old key."""
        kid = self.remember(username, pub, pinned=True)
        name = username.lower()
        if self.pins.get(name) != kid:
            self.verified.pop(name, None)
        self.pins[name] = kid
        return kid

    def pub(self, kid: str) -> bytes | None:
        entry = self.keys.get(kid)
        return gce1.b64u_decode(entry["pub"]) if entry else None

    def owner(self, kid: str) -> str | None:
        entry = self.keys.get(kid)
        return str(entry["user"]) if entry else None

    def ever_pinned(self, username: str, kid: str) -> bool:
        """True for the current pin and for keys pinned before a `trust`."""
        entry = self.keys.get(kid)
        return self.pins.get(username.lower()) == kid or bool(
            entry and entry.get("pinned") and entry.get("user") == username.lower()
        )

    def verify(self, username: str, kid: str) -> None:
        self.verified[username.lower()] = kid

    def is_verified(self, username: str, kid: str) -> bool:
        return self.verified.get(username.lower()) == kid

    def merge(self, restored: dict[str, str]) -> list[str]:
        """Add a backup's pins; a local pin that differs wins. Returns the names that differ."""
        conflicts = []
        for name, kid in restored.items():
            current = self.pins.setdefault(name.lower(), kid)
            if current != kid:
                conflicts.append(name.lower())
        return conflicts


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k).lower(): v for k, v in value.items() if isinstance(v, str)}
