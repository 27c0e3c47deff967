"""End-to-end encryption, the server's part (docs/E2EE.md, "Server side"): identities,
their resets, the sealed backups, turning a conversation E2EE, and the checks an
envelope passes before it is stored. The server relays and stores ciphertext only: it
never holds a key that opens an envelope or a backup."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from .. import e2ee as gce1
from ..models import Connection, Contact, E2EEBackup, Identity, KeyEvent, User
from . import accounts
from .connections import ACCEPTED, accepted_between
from .context import MAX_ID, Context, present
from .errors import Conflict, Invalid, not_connected, not_found
from .views import iso, user_view

MAX_CIPHERTEXT = 64 * 1024 + gce1.TAG_BYTES  # an envelope's ct: a 10,000-character message fits
MAX_BACKUP_BLOB = 64 * 1024  # bytes, once decoded


# ---- identities --------------------------------------------------------------


def _pub(raw: object) -> tuple[str, str]:
    """(pub, kid) of a b64u raw X25519 public key; 400 unless it decodes to 32 bytes."""
    if raw is None or raw == "":
        raise Invalid("missing_field", "The field 'pub' is required.")
    key = _decoded(raw, 64)
    if key is None or len(key) != 32:
        raise Invalid("invalid_key", "'pub' must be a raw 32-byte X25519 key in base64url (no padding).")
    if not gce1.usable_public_key(key):
        raise Invalid("invalid_key", "'pub' is a low-order X25519 point that agrees no secret.")
    return gce1.b64u(key), gce1.kid(key)


def _decoded(raw: object, longest: int) -> bytes | None:
    """The bytes of a strict base64url string of at most `longest` characters, or None."""
    if not isinstance(raw, str) or len(raw) > longest:
        return None
    try:
        return gce1.b64u_decode(raw)
    except ValueError:
        return None


def identity_view(identity: Identity, username: str) -> dict:
    return {
        "user_id": identity.user_id,
        "username": username,
        "kid": identity.kid,
        "pub": identity.pub,
        "created_at": iso(identity.created_at),
    }


def publish_identity(ctx: Context, me: int, pub_raw: object) -> dict:
    """Publish my identity key, once; 409 identity_exists when I have one (see reset)."""
    pub, kid = _pub(pub_raw)
    with ctx.write():
        if ctx.db.get(Identity, me) is not None:
            raise Conflict("identity_exists", "You have an identity already; reset it to replace it.")
        identity = Identity(user_id=me, kid=kid, pub=pub, created_at=ctx.now())
        ctx.db.add(identity)
        username = present(ctx.db.get(User, me)).username
    return identity_view(identity, username)


def reset_identity(ctx: Context, me: int, pub_raw: object, password: str | None) -> dict:
    """Replace my identity key once my login password is proved; records a key event
    and tells every contact (their conversations with me show the key changed)."""
    pub, kid = _pub(pub_raw)
    accounts.verify_current_password(ctx, me, password)
    with ctx.write():
        identity = ctx.db.get(Identity, me)
        if identity is None:
            raise Conflict("no_identity", "You have no identity to reset; publish one.")
        if identity.kid == kid:  # a reset that changes nothing would still warn every contact
            raise Invalid("invalid_key", "'pub' is your current key; a reset needs a new one.")
        now = ctx.now()
        ctx.db.add(KeyEvent(user_id=me, old_kid=identity.kid, new_kid=kid, at=now))
        identity.kid, identity.pub, identity.created_at = kid, pub, now
        contacts = list(ctx.db.scalars(select(Contact.owner_id).where(Contact.contact_id == me)))
        _bump(ctx, me, *contacts)
        username = present(ctx.db.get(User, me)).username
    ctx.publish(me, *contacts)
    return identity_view(identity, username)


def _bump(ctx: Context, *user_ids: int) -> None:
    """Tell these users' streams that something E2EE changed (see conversations.news)."""
    ctx.db.execute(update(User).where(User.id.in_(user_ids)).values(e2ee_version=User.e2ee_version + 1))


def identity_of(ctx: Context, me: int, user_id: int) -> dict:
    """My identity or an accepted contact's; the same 404 for no such user, not a
    contact, and no identity."""
    with ctx.read():
        visible = user_id == me or (0 < user_id <= MAX_ID and accepted_between(ctx, me, user_id) is not None)
        identity = ctx.db.get(Identity, user_id) if visible else None
        if identity is None:
            raise not_found("That identity")
        return identity_view(identity, present(ctx.db.get(User, user_id)).username)


# ---- backups -----------------------------------------------------------------


@dataclass(frozen=True)
class BackupInput:
    """A backup record as sent: the counter and the b64u salt, iv and sealed blob."""

    ctr: object
    salt: object
    iv: object
    blob: object


def backup_view(backup: E2EEBackup) -> dict:
    return {
        "ctr": backup.ctr,
        "salt": backup.salt,
        "iv": backup.iv,
        "blob": backup.blob,
        "updated_at": iso(backup.updated_at),
    }


def get_backup(ctx: Context, me: int) -> dict:
    """My backup record, or 404."""
    with ctx.read():
        backup = ctx.db.get(E2EEBackup, me)
        if backup is None:
            raise not_found("That backup")
        return backup_view(backup)


def put_backup(ctx: Context, me: int, given: BackupInput, password: str | None) -> dict:
    """Store my backup record once my login password is proved; its counter must be
    above the stored one (409 stale_backup), so an old record never replaces a newer."""
    ctr = _counter(given.ctr)
    salt, iv = _b64u(given.salt, "salt", 16, 16), _b64u(given.iv, "iv", 12, 12)
    blob = _b64u(given.blob, "blob", gce1.TAG_BYTES + 1, MAX_BACKUP_BLOB)
    accounts.verify_current_password(ctx, me, password)
    with ctx.write():
        backup = ctx.db.get(E2EEBackup, me)
        if backup is not None and backup.ctr >= ctr:
            raise Conflict("stale_backup", f"The stored backup's counter is {backup.ctr}; send a higher one.")
        if backup is None:
            backup = E2EEBackup(user_id=me)
            ctx.db.add(backup)
        backup.ctr, backup.salt, backup.iv, backup.blob = ctr, salt, iv, blob
        backup.updated_at = ctx.now()
    return backup_view(backup)


def _counter(raw: object) -> int:
    if raw is None or raw == "":
        raise Invalid("missing_field", "The field 'ctr' is required.")
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 10:
        raise Invalid("invalid_backup", f"'ctr' must be a whole number from 1 to {MAX_ID}.")
    value = int(text)
    if not 0 < value <= MAX_ID:
        raise Invalid("invalid_backup", f"'ctr' must be a whole number from 1 to {MAX_ID}.")
    return value


def _b64u(raw: object, name: str, smallest: int, largest: int) -> str:
    """A b64u field decoding to smallest..largest bytes; else 400."""
    if raw is None or raw == "":
        raise Invalid("missing_field", f"The field '{name}' is required.")
    data = _decoded(raw, (largest * 4 + 2) // 3)
    if data is None or not smallest <= len(data) <= largest:
        raise Invalid("invalid_backup", f"'{name}' must be base64url of {smallest} to {largest} bytes.")
    return gce1.b64u(data)


# ---- conversations -----------------------------------------------------------


def enable(ctx: Context, me: int, other_id: int) -> dict:
    """Turn my conversation with a contact end-to-end encrypted (once; later calls
    answer the same). Both sides need an identity: 409 no_identity says which lacks one."""
    with ctx.write():
        conn = accepted_between(ctx, me, other_id) if other_id != me and 0 < other_id <= MAX_ID else None
        if conn is None:
            raise not_connected()
        other = present(ctx.db.get(User, other_id))
        if ctx.db.get(Identity, me) is None:
            raise Conflict("no_identity", "You have not published an identity yet.")
        if ctx.db.get(Identity, other_id) is None:
            raise Conflict("no_identity", f"{other.username} has not published an identity yet.")
        switched = conn.e2ee_since is None
        if switched:
            conn.e2ee_since = ctx.now()
            _bump(ctx, me, other_id)
        since = iso(present(conn.e2ee_since))
        view = {"with": {"id": other.id, "username": other.username}, "e2ee_since": since}
    if switched:
        ctx.publish(me, other_id)
    return view


# ---- envelopes ---------------------------------------------------------------


def bad_envelope(reason: str) -> Invalid:
    return Invalid("bad_envelope", f"The envelope is refused: {reason}.")


def envelope_shape(raw: object) -> dict[str, str]:
    """The envelope's 11 fields, if its shape is GCE1's; else 400 bad_envelope."""
    try:
        return gce1.envelope_shape(raw, MAX_CIPHERTEXT)
    except gce1.E2EEError as error:
        raise bad_envelope(str(error)) from None


def check_envelope(ctx: Context, envelope: dict[str, str], me: int, receiver: int, conn_id: int) -> str:
    """The envelope as stored (compact JSON), once it names this sender, receiver and
    conversation (400 bad_envelope) and both current key ids (409 stale_key, so the
    client fetches the keys again and warns). Inside the sending transaction."""
    for name, expected in (("sid", str(me)), ("rid", str(receiver)), ("conv", gce1.conv_id(conn_id))):
        if envelope[name] != expected:
            raise bad_envelope(f"'{name}' does not match this conversation")
    current = select(Identity.user_id, Identity.kid).where(Identity.user_id.in_((me, receiver)))
    kids = {user_id: kid for user_id, kid in ctx.db.execute(current).all()}
    if envelope["skid"] != kids.get(me) or envelope["rkid"] != kids.get(receiver):
        raise Conflict("stale_key", "A key id in the envelope is not current: fetch the identities again.")
    return json.dumps(envelope, separators=(",", ":"))


# ---- what streams and lists show ---------------------------------------------


def key_changes(ctx: Context, user_ids: list[int]) -> dict[int, datetime]:
    """When each of these users' identity key last changed (users without a reset: absent)."""
    if not user_ids:
        return {}
    statement = (
        select(KeyEvent.user_id, func.max(KeyEvent.at))
        .where(KeyEvent.user_id.in_(user_ids))
        .group_by(KeyEvent.user_id)
    )
    return {user_id: at for user_id, at in ctx.db.execute(statement).all()}


def conversation_state(ctx: Context, me: int) -> dict[int, tuple[dict, datetime | None, datetime | None]]:
    """For each contact of mine: (the contact as a user, when our conversation turned
    E2EE, when their identity key last changed), the times None when it has not."""
    rows = ctx.db.execute(
        select(User.id, User.username, Connection.e2ee_since)
        .select_from(Contact)
        .join(Connection, (Connection.id == Contact.connection_id) & (Connection.status == ACCEPTED))
        .join(User, User.id == Contact.contact_id)
        .where(Contact.owner_id == me)
    ).all()
    changed = key_changes(ctx, [row.id for row in rows])
    state = {}
    for row in rows:
        state[row.id] = ({"id": row.id, "username": row.username}, row.e2ee_since, changed.get(row.id))
    return state


# ---- what the pages' scripts need --------------------------------------------


def chat_state(ctx: Context, me: int, other_id: int) -> dict:
    """For a chat page's script: the connection id (an envelope's `conv`), when the
    conversation turned end-to-end encrypted and when the contact's key last changed."""
    with ctx.read():
        conn = accepted_between(ctx, me, other_id) if other_id != me and 0 < other_id <= MAX_ID else None
        if conn is None:
            raise not_connected()
        changed = key_changes(ctx, [other_id]).get(other_id)
        return {
            "connection_id": conn.id,
            "e2ee_since": iso(conn.e2ee_since) if conn.e2ee_since is not None else None,
            "key_changed_at": iso(changed) if changed is not None else None,
        }


def safety_peers(ctx: Context, me: int, other_id: int) -> dict:
    """The two people of a safety-number page, `{"me": user, "with": user}`; 404 unless
    `other_id` is an accepted contact (as for their identity)."""
    with ctx.read():
        known = other_id != me and 0 < other_id <= MAX_ID and accepted_between(ctx, me, other_id) is not None
        other = ctx.db.get(User, other_id) if known else None
        if other is None:
            raise not_found("That contact")
        return {"me": user_view(present(ctx.db.get(User, me))), "with": user_view(other)}
