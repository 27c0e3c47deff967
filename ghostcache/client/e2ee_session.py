"""The glue between this account's identity key, the contacts' published keys (checked
against the pins) and GCE1: seal a message for a contact, open one from history or the
stream, compute safety numbers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .. import e2ee as gce1
from .contacts import Contact
from .errors import ApiError, ClientError, KeyChangedError
from .http import Api
from .pins import Pins, PinState
from .profile import Account


@dataclass(frozen=True)
class PublishedKey:
    """A user's identity as the server publishes it; kid computed here, not trusted."""

    user_id: int
    username: str
    pub: bytes
    kid: str


@dataclass(frozen=True)
class Opened:
    """What a message shows: its text, or why it could not be opened; a warning when the
    sender's key is not one this client pinned."""

    text: str | None
    error: str | None = None
    warning: str | None = None


class E2EESession:
    """One account's end-to-end encryption on this device."""

    def __init__(self, api: Api, account: Account, user_id: int, notify: Callable[[str], None]) -> None:
        self.api = api
        self.account = account
        self.user_id = user_id
        self.pins = Pins(account)
        self.notify = notify  # notices about pins go to stderr, beside the output
        self._published: dict[int, PublishedKey] = {}

    # -- keys -----------------------------------------------------------------------

    def identity(self) -> X25519PrivateKey:
        """This device's identity key; ClientError when there is none."""
        der = self.account.identity_der()
        if der is None:
            raise ClientError("This device has no identity key: run `e2ee setup` (new) or `e2ee restore`.")
        return gce1.load_private_pkcs8(der)

    def has_identity(self) -> bool:
        return self.account.identity_der() is not None

    def published(self, user_id: int, *, refresh: bool = False) -> PublishedKey:
        """GET /e2ee/identity/<user_id>, once per run unless refresh."""
        if refresh or user_id not in self._published:
            body = self.api.get(f"/e2ee/identity/{user_id}")
            try:
                pub = gce1.b64u_decode(body["pub"])
                key = PublishedKey(int(body["user_id"]), str(body["username"]), pub, gce1.kid(pub))
            except (KeyError, TypeError, ValueError):
                raise ClientError("The server sent a malformed identity.") from None
            if key.user_id != user_id:
                raise ClientError("The server sent another user's identity.")
            self._published[user_id] = key
        return self._published[user_id]

    def checked_key(self, contact: Contact, *, refresh: bool = False) -> PublishedKey:
        """The contact's published key, if it is the pinned one (pinning it on first
        use); KeyChangedError otherwise."""
        key = self.published(contact.user_id, refresh=refresh)
        state = self.pins.state(contact.username, key.kid)
        if state is PinState.CHANGED:
            self.pins.remember(contact.username, key.pub)
            self.pins.save()
            raise KeyChangedError(contact.username, str(self.pins.pinned(contact.username)), key.kid)
        if state is PinState.NEW:
            self.pins.pin(contact.username, key.pub)
            self.pins.save()
            self.notify(
                f"Pinned {contact.username}'s identity key {key.kid} (first use). "
                f"Compare safety numbers: ghostcache-client safety {contact.username}"
            )
        else:
            self.pins.remember(contact.username, key.pub, pinned=True)  # a pin from a backup has no pub
            self.pins.save()
        return key

    def check_own_key(self) -> None:
        """ClientError when the server's identity for this account is not this device's."""
        mine = self.published(self.user_id, refresh=True)
        if mine.kid != gce1.kid(gce1.public_raw(self.identity())):
            raise ClientError(
                "Your identity on the server is not this device's key (reset elsewhere?): run `e2ee restore`."
            )

    # -- sending --------------------------------------------------------------------

    def send(self, contact: Contact, text: str) -> dict[str, Any]:
        """Seal text for the contact's pinned key and send it. On 409 stale_key the keys
        are fetched again and checked against the pins; it is sent again only if the
        pin still holds."""
        for attempt in (1, 2):
            key = self.checked_key(contact, refresh=attempt > 1)
            envelope = gce1.encrypt_message(
                self.identity(), self.user_id, key.pub, contact.user_id, contact.connection_id, text
            )
            try:
                return dict(
                    self.api.post("/chat/send", {"receiver_id": contact.user_id, "envelope": envelope})
                )
            except ApiError as exc:
                if exc.code != "stale_key" or attempt > 1:
                    raise
                self.notify("The server says a key is not current: fetching the identities again.")
                self.check_own_key()
        raise AssertionError("unreachable")

    # -- receiving ------------------------------------------------------------------

    def open(self, message: dict[str, Any], contact: Contact) -> Opened:
        """The text of an e2ee message with contact, sent by either side."""
        envelope = message.get("envelope")
        if not isinstance(envelope, dict):
            return Opened(None, "no envelope")
        try:
            if not self.has_identity():
                return Opened(None, "this device has no identity key (run e2ee restore)")
            if message.get("sender_id") == self.user_id:
                return self._open_sent(envelope, contact)
            return self._open_received(envelope, contact)
        except gce1.E2EEError as exc:
            return Opened(None, str(exc))
        except ApiError as exc:
            return Opened(None, f"the sender's key is unavailable ({exc.code})")

    def _open_received(self, envelope: dict[str, Any], contact: Contact) -> Opened:
        skid = str(envelope.get("skid", ""))
        pub = self._sender_pub(contact, skid)
        if pub is None:
            return Opened(None, f"sealed with key {skid}, which this client has never seen")
        text = gce1.decrypt_message(
            self.identity(),
            envelope,
            expected_sender_id=contact.user_id,
            expected_receiver_id=self.user_id,
            expected_conv=contact.connection_id,
            sender_pub=pub,
        )
        if self.pins.ever_pinned(contact.username, skid):
            return Opened(text)
        warning = (
            f"sent with a key of {contact.username} that you have not accepted ({skid}); "
            f"compare safety numbers, then `trust {contact.username}`"
        )
        return Opened(text, warning=warning)

    def _sender_pub(self, contact: Contact, skid: str) -> bytes | None:
        """The public key with this kid: known already, or the contact's current one
        (pinned now if the contact has no pin yet)."""
        known = self.pins.pub(skid)
        if known is not None and self.pins.owner(skid) == contact.username.lower():
            return known
        key = self.published(contact.user_id)
        if key.kid != skid:
            return None
        if self.pins.state(contact.username, key.kid) is PinState.NEW:
            self.checked_key(contact)  # pins it, with the notice
        else:
            self.pins.remember(contact.username, key.pub)
            self.pins.save()
        return key.pub

    def _open_sent(self, envelope: dict[str, Any], contact: Contact) -> Opened:
        rkid = str(envelope.get("rkid", ""))
        pub = self.pins.pub(rkid)
        if pub is None:
            key = self.published(contact.user_id)
            pub = key.pub if key.kid == rkid else None
        if pub is None:
            return Opened(None, f"sealed for key {rkid}, which this client has never seen")
        text = gce1.decrypt_own_message(
            self.identity(),
            envelope,
            expected_sender_id=self.user_id,
            expected_receiver_id=contact.user_id,
            expected_conv=contact.connection_id,
            receiver_pub=pub,
        )
        return Opened(text)

    # -- safety numbers ---------------------------------------------------------------

    def safety(self, contact: Contact, my_username: str) -> tuple[str, PublishedKey]:
        """The safety number of this device's key and the contact's pinned key."""
        key = self.checked_key(contact)
        mine = gce1.public_raw(self.identity())
        return gce1.safety_number(my_username, mine, contact.username, key.pub), key

    def trust(self, contact: Contact) -> tuple[str | None, str]:
        """Pin the contact's current key (after a change); returns (old kid, new kid)."""
        key = self.published(contact.user_id, refresh=True)
        old = self.pins.pinned(contact.username)
        self.pins.pin(contact.username, key.pub)
        self.pins.save()
        return old, key.kid
