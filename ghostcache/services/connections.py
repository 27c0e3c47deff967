"""Contact requests: ask, list, accept (with key generation), deny (which blocks)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import CursorResult, delete, or_, select, update

from ..crypto import Keyring, encrypt_for_user, generate_rsa_keypair, new_chat_key, unwrap_user_key
from ..models import Blacklist, Connection, Contact, File, FileAccess, User
from .context import Context, present
from .errors import Conflict, Invalid, not_found
from .users import add_unique, require_peer
from .views import connection_view

PENDING, ACCEPTED, DENIED = "pending", "accepted", "denied"


def request_connection(ctx: Context, me: int, username: str | None) -> dict:
    """Send a contact request to `username`."""
    target = require_peer(
        ctx,
        me,
        username,
        Invalid("cannot_connect_to_self", "You cannot send a request to yourself."),
        "You cannot connect with this user.",
    )
    if _between(ctx, me, target.id) is not None:
        raise _already()
    conn = Connection(
        sender_id=me,
        receiver_id=target.id,
        pair_low=min(me, target.id),
        pair_high=max(me, target.id),
        status=PENDING,
        created_at=ctx.now(),
    )
    add_unique(ctx, conn, _already())  # both sides may ask at the same moment
    return connection_view(conn, target)


def _already() -> Conflict:
    return Conflict("already_connected", "A request or connection with this user already exists.")


def _between(ctx: Context, a: int, b: int) -> Connection | None:
    return ctx.db.scalar(
        select(Connection).where(Connection.pair_low == min(a, b), Connection.pair_high == max(a, b))
    )


def accepted_between(ctx: Context, a: int, b: int) -> Connection | None:
    """The accepted connection between two users, if any."""
    conn = _between(ctx, a, b)
    return conn if conn is not None and conn.status == ACCEPTED else None


def list_connections(ctx: Context, me: int) -> dict:
    """Pending sent, pending received, and accepted connections, newest first."""
    rows = ctx.db.execute(
        select(Connection, User)
        .join(
            User,
            or_(
                (Connection.sender_id == me) & (User.id == Connection.receiver_id),
                (Connection.receiver_id == me) & (User.id == Connection.sender_id),
            ),
        )
        .where(Connection.status.in_([PENDING, ACCEPTED]))
        .order_by(Connection.created_at.desc(), Connection.id.desc())
    ).all()
    result: dict[str, list] = {"sent": [], "received": [], "accepted": []}
    for conn, other in rows:
        if conn.status == ACCEPTED:
            bucket = "accepted"
        else:
            bucket = "sent" if conn.sender_id == me else "received"
        result[bucket].append(connection_view(conn, other))
    return result


def _received_pending(ctx: Context, me: int, conn_id: int) -> Connection:
    conn = ctx.get(Connection, conn_id)
    if conn is None or conn.receiver_id != me:
        raise not_found("That request")
    if conn.status != PENDING:
        raise _not_pending()
    return conn


def _not_pending() -> Conflict:
    return Conflict("not_pending", "That request has already been answered.")


def accept(ctx: Context, me: int, conn_id: int) -> dict:
    """Accept a request: key pairs and a chat key for both sides, mirror contacts, one commit."""
    with ctx.read():
        conn = _received_pending(ctx, me, conn_id)
        sender = present(ctx.db.get(User, conn.sender_id))
        receiver = present(ctx.db.get(User, conn.receiver_id))
    # Two RSA key pairs take a few hundred milliseconds: made outside any transaction.
    secrets = ctx.rt.cpu.run(_connection_secrets, ctx.rt.keyring, sender, receiver)
    with ctx.write():
        # Conditional update: of two racing accepts only one sees the request still pending.
        claimed = cast(
            CursorResult,
            ctx.db.execute(
                update(Connection)
                .where(Connection.id == conn.id, Connection.status == PENDING)
                .values(status=ACCEPTED, **secrets)
            ),
        ).rowcount
        if not claimed:
            raise _not_pending()
        now = ctx.now()
        ctx.db.add_all(
            [
                Contact(owner_id=sender.id, contact_id=receiver.id, connection_id=conn.id, created_at=now),
                Contact(owner_id=receiver.id, contact_id=sender.id, connection_id=conn.id, created_at=now),
            ]
        )
    with ctx.read():
        ctx.db.refresh(conn)
        return connection_view(conn, sender)


def _connection_secrets(keyring: Keyring, sender: User, receiver: User) -> dict[str, str]:
    sender_key = unwrap_user_key(keyring, sender.keys_database_key)
    receiver_key = unwrap_user_key(keyring, receiver.keys_database_key)
    sender_priv, sender_pub = generate_rsa_keypair()
    receiver_priv, receiver_pub = generate_rsa_keypair()
    chat_key = new_chat_key().reveal()
    return {
        "sender_privkey_enc": encrypt_for_user(sender_key, sender_priv),
        "sender_pubkey_enc": encrypt_for_user(sender_key, sender_pub),
        "receiver_privkey_enc": encrypt_for_user(receiver_key, receiver_priv),
        "receiver_pubkey_enc": encrypt_for_user(receiver_key, receiver_pub),
        "chat_key_enc_sender": encrypt_for_user(sender_key, chat_key),
        "chat_key_enc_receiver": encrypt_for_user(receiver_key, chat_key),
    }


def deny(ctx: Context, me: int, conn_id: int) -> dict:
    """Deny a request; the receiver now blocks the sender."""
    with ctx.write():
        conn = _received_pending(ctx, me, conn_id)
        claimed = cast(
            CursorResult,
            ctx.db.execute(
                update(Connection)
                .where(Connection.id == conn.id, Connection.status == PENDING)
                .values(status=DENIED)
            ),
        ).rowcount
        if not claimed:
            raise _not_pending()
        if not _blocks(ctx, me, conn.sender_id):
            ctx.db.add(Blacklist(blocker_id=me, blocked_id=conn.sender_id, created_at=ctx.now()))
        _revoke_shares_between(ctx, me, conn.sender_id)
    with ctx.read():
        ctx.db.refresh(conn)
        return connection_view(conn, present(ctx.db.get(User, conn.sender_id)))


def _revoke_shares_between(ctx: Context, a: int, b: int) -> None:
    """A block also takes back file shares given earlier, in both directions."""
    owned_by = {a: select(File.id).where(File.owner_id == a), b: select(File.id).where(File.owner_id == b)}
    ctx.db.execute(
        delete(FileAccess).where(
            or_(
                (FileAccess.user_id == b) & FileAccess.file_id.in_(owned_by[a]),
                (FileAccess.user_id == a) & FileAccess.file_id.in_(owned_by[b]),
            )
        )
    )


def _blocks(ctx: Context, blocker: int, blocked: int) -> bool:
    return (
        ctx.db.scalar(
            select(Blacklist.id).where(Blacklist.blocker_id == blocker, Blacklist.blocked_id == blocked)
        )
        is not None
    )
