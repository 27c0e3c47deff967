"""Chat: send, poll, history and stream backlog, with exactly-once delivery."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, or_, select, update

from ..crypto import CryptoError, decrypt_for_user, decrypt_message, encrypt_message, unwrap_user_key
from ..models import Connection, Contact, FileAccess, Message, User
from ..secrets import Secret
from . import e2ee
from .connections import ACCEPTED, accepted_between
from .context import MAX_ID, Context, present
from .errors import Conflict, Invalid, not_connected
from .views import iso, message_view, user_view

MAX_MESSAGE = 10_000
DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def parse_receiver(raw: object, me: int) -> int:
    """A positive integer id that is not yourself, else 400 invalid_receiver."""
    if raw is None or raw == "":
        raise Invalid("missing_field", "The field 'receiver_id' is required.")
    value = _positive_int(raw)
    if value is None or value == me:
        raise Invalid("invalid_receiver", "receiver_id must be the id of one of your contacts.")
    return value


def _positive_int(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw > 0 else None
    if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        try:
            value = int(raw.strip())
        except ValueError:  # more digits than Python converts
            return None
        return value if value > 0 else None
    return None


def _chat_key(ctx: Context, conn: Connection, user_id: int, user_key: Secret | None = None) -> Secret:
    if user_key is None:
        user_key = unwrap_user_key(ctx.rt.keyring, present(ctx.db.get(User, user_id)).keys_database_key)
    wrapped = conn.chat_key_enc_sender if conn.sender_id == user_id else conn.chat_key_enc_receiver
    return decrypt_for_user(user_key, present(wrapped))


def send(ctx: Context, me: int, receiver_raw: object, text: object, envelope_raw: object = None) -> dict:
    """Store a message, waiting for delivery: a text encrypted with the connection's chat
    key, or, in an end-to-end encrypted conversation, a GCE1 envelope as it came."""
    receiver_id = parse_receiver(receiver_raw, me)
    envelope = None
    if envelope_raw is not None:
        if text is not None:
            raise e2ee.bad_envelope("send either 'message' or 'envelope', not both")
        envelope = e2ee.envelope_shape(envelope_raw)
    else:
        _check_text(text)
    # One transaction from the check to the insert: a deletion or a block cannot slip in between.
    with ctx.write():
        keys = _sending_keys(ctx, me, receiver_id) if receiver_id <= MAX_ID else None
        if keys is None:
            raise not_connected()
        content, stored = _content(ctx, keys, me, receiver_id, text, envelope)
        timestamp = ctx.now()
        message_id = ctx.db.execute(
            _INSERT,
            {
                "connection_id": keys.id,
                "sender_id": me,
                "receiver_id": receiver_id,
                "content": content,
                "envelope": stored,
                "timestamp": timestamp,
                "delivered": False,
            },
        ).scalar_one()
    # Committed before we answer (an accepted message survives a crash), then announced:
    # the receiver's streams show it, and so do the sender's other tabs.
    ctx.publish(receiver_id, me)
    return {"status": "queued", "id": message_id, "timestamp": iso(timestamp)}


def _check_text(text: object) -> None:
    if not isinstance(text, str) or not text.strip():
        raise Invalid("missing_field", "The field 'message' is required.")
    if len(text) > MAX_MESSAGE:
        raise Invalid("message_too_long", f"Messages can have at most {MAX_MESSAGE:,} characters.")


def _content(
    ctx: Context, keys: Any, me: int, receiver_id: int, text: object, envelope: dict[str, str] | None
) -> tuple[str, str | None]:
    """(content, envelope) to store: no plaintext into an E2EE conversation, no envelope
    into another (409 either way: no silent downgrade, nothing undecryptable)."""
    if keys.e2ee_since is not None:
        if envelope is None:
            raise Conflict(
                "e2ee_required",
                "This conversation is end-to-end encrypted, so the message was not sent: only an "
                "encrypted envelope can be, from a browser with JavaScript on or from ghostcache-client.",
            )
        return "", e2ee.check_envelope(ctx, envelope, me, receiver_id, keys.id)
    if envelope is not None:
        raise Conflict("e2ee_off", "This conversation is not end-to-end encrypted: send the message as text.")
    user_key = unwrap_user_key(ctx.rt.keyring, keys.keys_database_key)
    wrapped = keys.chat_key_enc_sender if keys.sender_id == me else keys.chat_key_enc_receiver
    return encrypt_message(decrypt_for_user(user_key, present(wrapped)), str(text)), None


def _sending_keys(ctx: Context, me: int, other: int) -> Any:
    """The accepted connection with `other` and the wrapped keys I need to write to it, in
    one query (id, sender_id, both wrapped chat keys, my wrapped user key), or None."""
    return ctx.db.execute(_SENDING_KEYS, {"me": me, "low": min(me, other), "high": max(me, other)}).first()


# The hot path (every send and every stream wake-up) runs statements built once, on
# the tables rather than the ORM classes: building and ORM-compiling them on every
# call was the largest part of a message's CPU cost (profiled).
_MESSAGE, _CONN, _USER, _CONTACT, _ACCESS = (
    cast(Table, m.__table__) for m in (Message, Connection, User, Contact, FileAccess)
)
_M, _C, _U, _K, _A = _MESSAGE.c, _CONN.c, _USER.c, _CONTACT.c, _ACCESS.c
_ROW = (
    _M.id,
    _M.connection_id,
    _M.sender_id,
    _M.receiver_id,
    _M.content,
    _M.envelope,
    _M.timestamp,
    _M.delivered,
)
_MINE = or_(_M.receiver_id == bindparam("me"), _M.sender_id == bindparam("me"))
_PENDING = select(_M.id).where(_M.receiver_id == bindparam("me"), _M.delivered.is_(False)).limit(1)
_NEWER = select(*_ROW).where(_MINE, _M.id > bindparam("cursor"))


def _newest(column: Any, owner: Any) -> Any:
    """The highest id among the rows that `owner == me` picks: one index seek."""
    return select(func.max(column)).where(owner == bindparam("me")).scalar_subquery()


# A stream's whole look in one statement: the session check, whether anything waits for
# delivery, the newest message to and from me, and the marks of everything else a
# stream reports (requests, contacts, shares, read markers). Each part is an index seek,
# so a wake-up for a message costs no more queries than it did before the other events.
_LOOK = select(
    _U.session_version,
    _PENDING.scalar_subquery().label("pending"),
    _newest(_M.id, _M.receiver_id).label("newest_in"),
    _newest(_M.id, _M.sender_id).label("newest_out"),
    _newest(_C.id, _C.receiver_id).label("requests"),
    _newest(_K.id, _K.owner_id).label("contacts"),
    _newest(_A.id, _A.user_id).label("shares"),
    _U.read_version,
    _U.e2ee_version,
).where(_U.id == bindparam("me"))
_CLAIM = (
    update(_MESSAGE)
    .where(_M.receiver_id == bindparam("me"), _M.delivered.is_(False))
    .values(delivered=True)
    .returning(*_ROW)
)
_SENDING_KEYS = (
    select(
        _C.id,
        _C.sender_id,
        _C.chat_key_enc_sender,
        _C.chat_key_enc_receiver,
        _C.e2ee_since,
        _U.keys_database_key,
    )
    .select_from(_CONN.join(_USER, _U.id == bindparam("me")))
    .where(_C.pair_low == bindparam("low"), _C.pair_high == bindparam("high"), _C.status == ACCEPTED)
)
_INSERT = insert(_MESSAGE).returning(_M.id)


def claim_undelivered(ctx: Context, me: int, only_ids: list[int] | None = None) -> list:
    """Atomically mark undelivered messages to `me` delivered and return them.

    One UPDATE ... RETURNING: two racing pollers or streams can never both claim a row.
    """
    if only_ids is None:
        statement, params = _CLAIM, {"me": me}
    else:
        statement = (
            update(_MESSAGE)
            .where(_M.receiver_id == me, _M.delivered.is_(False), _M.id.in_(only_ids))
            .values(delivered=True)
            .returning(*_ROW)
        )
        params = {}
    with ctx.write():
        rows = ctx.db.execute(statement, params).all()
    return sorted(rows, key=lambda r: r.id)


def poll(ctx: Context, me: int) -> list[dict]:
    """Every undelivered message to me, oldest first; they are now delivered."""
    claimed = claim_undelivered(ctx, me)
    with ctx.read():
        return render(ctx, me, claimed)


class OpenedKeys:
    """The chat keys and names one reader has opened. A stream keeps one for its life,
    so a wake-up costs no key unwrapping and no name lookups; a chat key never
    changes for its connection."""

    def __init__(self) -> None:
        self.user_key: Secret | None = None
        self.chat: dict[int, Secret] = {}
        self.names: dict[int, str] = {}

    def forget(self) -> None:
        """Drop the chat keys and names (ids may be handed out again after a deletion)."""
        self.chat.clear()
        self.names.clear()

    def load(self, ctx: Context, me: int, rows: Sequence[Any]) -> None:
        """Open whatever these rows need that is not open yet."""
        for row in rows:
            if row.connection_id not in self.chat:
                if self.user_key is None:
                    user = present(ctx.db.get(User, me))
                    self.user_key = unwrap_user_key(ctx.rt.keyring, user.keys_database_key)
                conn = present(ctx.db.get(Connection, row.connection_id))
                self.chat[row.connection_id] = _chat_key(ctx, conn, me, self.user_key)
            for user_id in (row.sender_id, row.receiver_id):
                if user_id not in self.names:
                    self.names[user_id] = present(ctx.db.get(User, user_id)).username


@dataclass
class StreamPosition:
    """Where one stream is: the newest message id it has shown (None before its first
    look) and the keys it has opened."""

    cursor: int | None = None
    keys: OpenedKeys = field(default_factory=OpenedKeys)


@dataclass(frozen=True)
class Marks:
    """The newest request to me, contact and share of mine (highest row ids), my read
    version and my E2EE version, as one look saw them: a stream compares them with what it has seen to know
    whether anything besides messages is new (see conversations.news)."""

    requests: int
    contacts: int
    shares: int
    reads: int
    e2ee: int = 0


@dataclass(frozen=True)
class StreamBatch:
    """What one look found: the messages to show, and the marks of everything else."""

    messages: list[dict]
    marks: Marks


def stream_batch(ctx: Context, me: int, position: StreamPosition, session_version: int) -> StreamBatch | None:
    """What one of my streams shows next (moving its position on), or None once the
    stream's session has ended (logout, password change, deletion, destruction).

    Every undelivered message to me is claimed (now delivered), plus every message
    to or from me above the cursor that it has not shown: what my other tabs or a
    poll claimed, and what I sent from elsewhere. So each open tab shows each message
    once, and each message is marked delivered once. The first look (cursor None)
    sends only the undelivered backlog and starts the cursor at the newest message.
    """
    with ctx.read():  # one snapshot for the session check and what is new
        look = ctx.db.execute(_LOOK, {"me": me}).first()
        if look is None or look.session_version != session_version:
            return None
        newest = max(look.newest_in or 0, look.newest_out or 0)
        if position.cursor is not None and position.cursor > newest:
            position.cursor = newest  # a conversation was deleted: its ids may be handed out again
        newer: Sequence[Any] = []
        if position.cursor is not None and newest > position.cursor:
            newer = ctx.db.execute(_NEWER, {"me": me, "cursor": position.cursor}).all()
    claimed = claim_undelivered(ctx, me) if look.pending is not None else []
    rows = {r.id: r for r in newer} | {r.id: r for r in claimed}
    ordered = sorted(rows.values(), key=lambda r: r.id)
    views: list[dict] = []
    if ordered:
        with ctx.read():
            views = render(ctx, me, ordered, conversation=True, keys=position.keys)
    position.cursor = max([newest if position.cursor is None else position.cursor, *rows])
    marks = Marks(
        look.requests or 0, look.contacts or 0, look.shares or 0, look.read_version, look.e2ee_version
    )
    return StreamBatch(views, marks)


def history(
    ctx: Context, me: int, other_raw: object, before_raw: object, limit_raw: object, claim: bool = True
) -> dict:
    """The newest `limit` messages with a contact older than `before`, oldest first;
    with `claim`, those to me that it shows become delivered."""
    other_id = _positive_int(other_raw)
    before = optional_id(before_raw, "before")
    limit = min(optional_id(limit_raw, "limit") or DEFAULT_LIMIT, MAX_LIMIT)
    if before is not None and before > MAX_ID:
        before = None  # older than an id beyond every row: all of them
    known = other_id is not None and other_id != me and other_id <= MAX_ID
    with ctx.read():
        conn = accepted_between(ctx, me, other_id) if known and other_id is not None else None
        if conn is None:
            raise not_connected()
        query = select(*_ROW).where(_M.connection_id == conn.id)
        if before is not None:
            query = query.where(_M.id < before)
        rows = ctx.db.execute(query.order_by(_M.id.desc()).limit(limit)).all()[::-1]
    mine = [r.id for r in rows if r.receiver_id == me and not r.delivered] if claim else []
    if mine:
        claim_undelivered(ctx, me, mine)  # shown here = delivered
    delivered = {r.id for r in rows if r.delivered} | set(mine)
    with ctx.read():
        other = ctx.db.get(User, other_id)
        return {"with": user_view(present(other)), "messages": render(ctx, me, rows, delivered)}


def optional_id(raw: object, name: str) -> int | None:
    """A positive whole number, or None when absent; else 400 invalid_parameter."""
    if raw is None or raw == "":
        return None
    value = _positive_int(raw)
    if value is None:
        raise Invalid("invalid_parameter", f"'{name}' must be a positive whole number.")
    return value


INLINE_DECRYPTS = 20  # fewer than this are cheaper to decrypt than to hand to a thread


def render(
    ctx: Context,
    me: int,
    rows: Sequence[Any],
    delivered: set[int] | None = None,
    conversation: bool = False,
    keys: OpenedKeys | None = None,
) -> list[dict]:
    """Decrypt rows for `me` into message objects; with `delivered`, history items;
    with `conversation`, each also names the other party (`with`), as stream events do."""
    if not rows:
        return []
    if keys is None:
        keys = OpenedKeys()
        texts = _decrypt(ctx, me, rows, keys)
    else:
        try:
            texts = _decrypt(ctx, me, rows, keys)
        except CryptoError:
            # A key opened earlier no longer fits: its connection was deleted (removed,
            # blocked) and SQLite handed the id to a new one. Open them again, once.
            keys.forget()
            texts = _decrypt(ctx, me, rows, keys)
    result = []
    for row, text in zip(rows, texts, strict=True):
        flag = None if delivered is None else row.id in delivered
        view = message_view(row, keys.names[row.sender_id], text, flag)
        if text is None:
            view["envelope"] = json.loads(row.envelope)
        if conversation:
            other = row.receiver_id if row.sender_id == me else row.sender_id
            view["with"] = {"id": other, "username": keys.names[other]}
        result.append(view)
    return result


def _decrypt(ctx: Context, me: int, rows: Sequence[Any], keys: OpenedKeys) -> list[str | None]:
    """The texts of the rows, None for E2EE ones (the server cannot open those)."""
    keys.load(ctx, me, rows)
    pairs = [(keys.chat[row.connection_id], row.content) for row in rows if row.envelope is None]
    texts = iter(_decrypt_all(pairs) if len(pairs) < INLINE_DECRYPTS else ctx.rt.cpu.run(_decrypt_all, pairs))
    return [None if row.envelope is not None else next(texts) for row in rows]


def _decrypt_all(pairs: list[tuple[Secret, str]]) -> list[str]:
    return [decrypt_message(key, token) for key, token in pairs]
