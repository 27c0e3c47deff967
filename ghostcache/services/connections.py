"""Contact requests: ask, list, withdraw, accept (with key generation), deny (which
blocks); removing a contact; blocking and unblocking anyone."""

from __future__ import annotations

from typing import cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..crypto import Keyring, encrypt_for_user, generate_rsa_keypair, new_chat_key, unwrap_user_key
from ..models import Blacklist, Connection, Contact, File, FileAccess, User
from .context import MAX_ID, Context, present
from .errors import Conflict, Forbidden, Invalid, NotFound, not_found
from .users import require_by_name, require_peer
from .views import connection_view, iso, user_view

PENDING, ACCEPTED, DENIED = "pending", "accepted", "denied"


def request_connection(ctx: Context, me: int, username: str | None) -> dict:
    """Send a contact request to `username`."""
    # One transaction from the checks to the insert: a block cannot slip in between.
    try:
        with ctx.write():
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
            ctx.db.add(conn)
    except IntegrityError:  # both sides asked at the same moment
        raise _already() from None
    ctx.publish(target.id)  # their open pages show the request
    return connection_view(conn, target)


def _already() -> Conflict:
    return Conflict("already_connected", "A request or connection with this user already exists.")


def _between(ctx: Context, a: int, b: int) -> Connection | None:
    return ctx.db.scalar(select(Connection).where(_pair(a, b)))


def _pair(a: int, b: int):
    """The condition that picks the one connection row between a and b."""
    return (Connection.pair_low == min(a, b)) & (Connection.pair_high == max(a, b))


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


def withdraw(ctx: Context, me: int, conn_id: int) -> dict:
    """Take back a pending request I sent: its row goes, so its receiver no longer sees
    it. Answers the receiver (a user object)."""
    with ctx.write():
        conn = ctx.get(Connection, conn_id)
        if conn is None or conn.sender_id != me:
            raise not_found("That request")
        statement = delete(Connection).where(Connection.id == conn.id, Connection.status == PENDING)
        if not cast(CursorResult, ctx.db.execute(statement)).rowcount:
            raise _not_pending()
        receiver = user_view(present(ctx.db.get(User, conn.receiver_id)))
    ctx.publish(conn.receiver_id)  # its streams look again (and step back a reused id)
    return receiver


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
    ctx.publish(sender.id, receiver.id)  # both sides' open pages show the new contact
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


def remove_contact(ctx: Context, me: int, other_id: int) -> dict:
    """End an accepted connection for both people: the connection, both Contact rows and
    the whole conversation go (they cascade from the connection), and so do file shares
    between the two, both ways. Either may send a new request afterwards."""
    with ctx.write():
        conn = _accepted_with(ctx, me, other_id)
        if conn is None:
            raise Forbidden("not_connected", "That user is not one of your contacts.")
        other = user_view(present(ctx.db.get(User, other_id)))
        ctx.db.execute(delete(Connection).where(Connection.id == conn.id))
        _revoke_shares_between(ctx, me, other_id)
    _announce_deletion(ctx, me, other_id)
    return {"removed": True, "user": other}


def _accepted_with(ctx: Context, me: int, other_id: int) -> Connection | None:
    """accepted_between, for an id from a URL: None for myself and for ids no row has."""
    if other_id == me or not 0 < other_id <= MAX_ID:
        return None
    return accepted_between(ctx, me, other_id)


def _announce_deletion(ctx: Context, me: int, other_id: int) -> None:
    """After a commit that deleted a conversation: both people's open streams re-check,
    and the deleted rows become unreadable in the data folder too."""
    ctx.publish(me, other_id)
    ctx.erase_deleted()


def block(ctx: Context, me: int, username: str | None) -> dict:
    """Block anyone, contact or not: any connection between us (pending either way,
    accepted or denied) goes with its conversation, and shares go both ways."""
    if not username:
        raise Invalid("missing_field", "The field 'username' is required.")
    try:
        with ctx.write():
            target = _blockable(ctx, me, username)
            ctx.db.add(Blacklist(blocker_id=me, blocked_id=target.id, created_at=ctx.now()))
            ctx.db.execute(delete(Connection).where(_pair(me, target.id)))
            _revoke_shares_between(ctx, me, target.id)
            blocked = user_view(target)
    except IntegrityError:  # a racing block of the same user committed first
        raise _already_blocked() from None
    _announce_deletion(ctx, me, blocked["id"])
    return {"blocked": blocked}


def _blockable(ctx: Context, me: int, username: str) -> User:
    target = require_by_name(ctx, username)
    if target.id == me:
        raise Invalid("cannot_block_self", "You cannot block yourself.")
    if _blocks(ctx, me, target.id):
        raise _already_blocked()
    return target


def _already_blocked() -> Conflict:
    return Conflict("already_blocked", "You already block this user.")


def list_blocked(ctx: Context, me: int) -> dict:
    """The people I block (never who blocks me), newest first."""
    with ctx.read():
        rows = ctx.db.execute(
            select(Blacklist.created_at, User)
            .join(User, User.id == Blacklist.blocked_id)
            .where(Blacklist.blocker_id == me)
            .order_by(Blacklist.created_at.desc(), Blacklist.id.desc())
        ).all()
    return {"blocked": [{"user": user_view(user), "since": iso(since)} for since, user in rows]}


def unblock(ctx: Context, me: int, other_id: int) -> dict:
    """Stop blocking someone. A denied request left between us goes too, so either may
    ask again, unless the other side blocks me as well: their block stays."""
    with ctx.write():
        user = ctx.get(User, other_id)
        mine = (Blacklist.blocker_id == me) & (Blacklist.blocked_id == other_id)
        if user is None or not cast(CursorResult, ctx.db.execute(delete(Blacklist).where(mine))).rowcount:
            raise NotFound("not_found", "You do not block that user.")
        ctx.db.execute(delete(Connection).where(_pair(me, other_id), Connection.status == DENIED))
        return {"unblocked": True, "user": user_view(user)}
