"""e2ee setup / restore / backup / enable / status, safety, trust."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ... import e2ee as gce1
from ..context import Context
from ..errors import ApiError, ClientError
from ..prompts import confirm, secret
from .contacts import contact


def run_setup(ctx: Context) -> int:
    """A new identity: the recovery key is shown once; the sealed backup is stored
    (password checked there) before the identity is published, so a published key
    always has a backup."""
    account = ctx.require_login()
    if account.identity_der() is not None:
        raise ClientError("This device already has an identity key (see: e2ee status).")
    if _published_kid(ctx) is not None:
        raise ClientError(
            "You already have an identity on the server: run `e2ee restore` with your recovery key."
        )
    identity = gce1.generate_identity()
    recovery = gce1.new_recovery_key()
    ctx.say("Your recovery key (shown only this once; it restores your messages on a new device):")
    ctx.say("")
    ctx.say("    " + gce1.format_recovery(recovery))
    ctx.say("")
    if not ctx.args.yes and not confirm("Type yes when you have saved it somewhere safe: "):
        raise ClientError("Not set up: nothing was stored or published.")
    password = secret("Password (to store the backup): ", ctx.args.password_stdin)
    ctr = _stored_ctr(ctx) + 1
    try:
        _put_backup(ctx, recovery, ctr, identity, password)
    except ApiError as exc:
        raise ClientError(f"{exc.message} Nothing was published; the recovery key above is void.") from None
    account.save_identity_der(gce1.private_pkcs8(identity))
    try:
        published = ctx.api.post("/e2ee/identity", {"pub": gce1.b64u(gce1.public_raw(identity))})
    except ClientError:
        account.path("identity.pk8").unlink(missing_ok=True)
        raise
    ctx.say(f"identity {published['kid']} published; backup stored (counter {ctr})")
    return 0


def _open_stored_backup(ctx: Context) -> tuple[bytes, dict, gce1.Restored]:
    """The recovery key typed, the server's sealed backup, and what the key opens in it."""
    try:
        recovery = gce1.parse_recovery(secret("Recovery key: ", ctx.args.recovery_stdin))
    except ValueError as exc:
        raise ClientError(str(exc)) from None
    backup = ctx.api.get("/e2ee/backup")
    try:
        restored = gce1.open_backup(recovery, ctx.user_id, int(backup["ctr"]), backup)
    except gce1.E2EEError as exc:
        raise ClientError(f"That recovery key does not open your backup ({exc}): nothing changed.") from None
    return recovery, backup, restored


def run_restore(ctx: Context) -> int:
    """This account's identity from the server's sealed backup and the recovery key; the
    restored key must be the one the server publishes for this account."""
    account = ctx.require_login()
    _, backup, restored = _open_stored_backup(ctx)
    kid = gce1.kid(gce1.public_raw(gce1.load_private_pkcs8(restored.ik_pkcs8)))
    published = _published_kid(ctx)
    if kid != published:
        raise ClientError(
            f"The backup holds key {kid}, but the server publishes {published} for you: not restored."
        )
    account.save_identity_der(restored.ik_pkcs8)
    account.save_backup_ctr(max(account.backup_ctr(), int(backup["ctr"])))
    conflicts = ctx.e2ee.pins.merge(restored.pins)
    ctx.e2ee.pins.save()
    ctx.say(f"restored identity {kid} with {len(restored.pins)} pinned contact keys")
    for name in conflicts:
        ctx.note(f"! {name}: the backup pins another key than this device; this device's pin was kept.")
    return 0


def run_backup(ctx: Context) -> int:
    """Store a new sealed backup with the current pins (needs the recovery key and the
    password; the counter goes up)."""
    ctx.require_login()
    identity = ctx.e2ee.identity()
    # the same recovery key as the stored backup, or the new backup would be unreadable
    recovery, _, _ = _open_stored_backup(ctx)
    password = secret("Password (to store the backup): ", ctx.args.password_stdin)
    ctr = max(_stored_ctr(ctx), ctx.require_login().backup_ctr()) + 1
    _put_backup(ctx, recovery, ctr, identity, password)
    ctx.say(f"backup stored (counter {ctr}, {len(ctx.e2ee.pins.pins)} pinned contact keys)")
    return 0


def run_status(ctx: Context) -> int:
    account = ctx.require_login()
    der = account.identity_der()
    local = gce1.kid(gce1.public_raw(gce1.load_private_pkcs8(der))) if der else None
    ctx.say(f"this device: {local or 'no identity key'}")
    ctx.say(f"server: {_published_kid(ctx) or 'no identity published'}")
    for name, kid in sorted(ctx.e2ee.pins.pins.items()):
        mark = " (verified)" if ctx.e2ee.pins.is_verified(name, kid) else ""
        ctx.say(f"pin {name}: {kid}{mark}")
    return 0


def run_enable(ctx: Context) -> int:
    """POST /chat/<id>/e2ee: from now on the conversation takes envelopes only."""
    peer = contact(ctx, ctx.args.username)
    try:
        ctx.e2ee.checked_key(peer)  # pin (or refuse a changed key) before the first envelope
    except ApiError as exc:
        if exc.status != 404:
            raise  # 404: no identity yet; the server's answer below says which side has none
    body = ctx.api.post(f"/chat/{peer.user_id}/e2ee")
    ctx.say(f"the conversation with {peer.username} is end-to-end encrypted since {body['e2ee_since']}")
    return 0


def run_safety(ctx: Context) -> int:
    """The safety number of your key and the contact's pinned key; --verify records that
    you compared it."""
    peer = contact(ctx, ctx.args.username)
    number, key = ctx.e2ee.safety(peer, ctx.me)
    ctx.say(f"safety number with {peer.username}:")
    ctx.say(number)
    if ctx.args.verify:
        ctx.e2ee.pins.verify(peer.username, key.kid)
        ctx.e2ee.pins.save()
    verified = ctx.e2ee.pins.is_verified(peer.username, key.kid)
    ctx.say(f"{peer.username}'s key {key.kid}: {'verified' if verified else 'not verified'}")
    return 0


def run_trust(ctx: Context) -> int:
    """Accept a contact's changed key: pin the key the server gives now, clear verified."""
    peer = contact(ctx, ctx.args.username)
    old, new = ctx.e2ee.trust(peer)
    if old == new:
        ctx.say(f"{peer.username}'s key {new} was already the pinned one")
    else:
        ctx.say(
            f"pinned {peer.username}'s key {new} (was {old}); compare safety numbers: safety {peer.username}"
        )
    return 0


def _published_kid(ctx: Context) -> str | None:
    try:
        return ctx.e2ee.published(ctx.user_id, refresh=True).kid
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def _stored_ctr(ctx: Context) -> int:
    try:
        return int(ctx.api.get("/e2ee/backup")["ctr"])
    except ApiError as exc:
        if exc.status == 404:
            return 0
        raise


def _put_backup(ctx: Context, recovery: bytes, ctr: int, identity: X25519PrivateKey, password: str) -> None:
    sealed = gce1.seal_backup(recovery, ctx.user_id, ctr, gce1.private_pkcs8(identity), ctx.e2ee.pins.pins)
    ctx.api.put("/e2ee/backup", {"ctr": ctr, **sealed, "password": password})
    ctx.require_login().save_backup_ctr(ctr)
