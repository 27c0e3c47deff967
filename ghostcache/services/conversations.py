"""Conversations: the list a home page shows (requests for me, then every contact with
the unread count and the last message), read markers, and what a live stream reports
besides messages (a request, a new contact, a share, a marker moved in another tab)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, func, select, update

from ..crypto import decrypt_for_user, decrypt_message, unwrap_user_key
from ..models import Connection, Contact, File, FileAccess, Message, User
from ..secrets import Secret
from . import e2ee
from .chat import INLINE_DECRYPTS, Marks, not_connected, optional_id
from .connections import ACCEPTED, PENDING
from .context import MAX_ID, Context
from .views import connection_view, file_view, iso

PREVIEW_CHARS = 100  # of the last message, on one line

_CONTACT, _CONN, _USER, _MESSAGE = (cast(Table, m.__table__) for m in (Contact, Connection, User, Message))
_K, _C, _U, _M = _CONTACT.c, _CONN.c, _USER.c, _MESSAGE.c

# Per contact row, inside one statement (not a query per contact), and never a scan of
# the conversation: the last id is one seek in ix_message_connection_id (SQLite indexes
# end in the id), the unread count a range of ix_message_conversation_receiver above
# the marker.
_LAST_ID = select(func.max(_M.id)).where(_M.connection_id == _K.connection_id).scalar_subquery()
_UNREAD = (
    select(func.count())
    .where(
        _M.connection_id == _K.connection_id,
        _M.id > _K.last_read_id,
        _M.id <= bindparam("upto"),
        _M.receiver_id == bindparam("me"),
    )
    .scalar_subquery()
)
_MY_CONTACTS = _CONTACT.join(_CONN, (_C.id == _K.connection_id) & (_C.status == ACCEPTED)).join(
    _USER, _U.id == _K.contact_id
)
_LAST = _LAST_ID.label("last_id")
_CONVERSATIONS = (
    select(
        _K.contact_id,
        _U.username,
        _C.sender_id,
        _C.chat_key_enc_sender,
        _C.chat_key_enc_receiver,
        _C.e2ee_since,
        _LAST,
        _UNREAD.label("unread"),
    )
    .select_from(_MY_CONTACTS)
    .where(_K.owner_id == bindparam("me"))
    .order_by(_LAST.is_(None), _LAST.desc(), _K.created_at.desc(), _K.id.desc())
)
_LAST_MESSAGES = select(
    _M.id, _M.sender_id, _M.content, _M.envelope.is_not(None).label("e2ee"), _M.timestamp
).where(_M.id.in_(bindparam("ids", expanding=True)))
_USER_KEY = select(_U.keys_database_key).where(_U.id == bindparam("me"))
_READ_VERSION = select(_U.read_version).where(_U.id == bindparam("me"))
_READ_STATE = (
    select(_K.contact_id, _U.username, _K.last_read_id, _UNREAD.label("unread"))
    .select_from(_MY_CONTACTS)
    .where(_K.owner_id == bindparam("me"))
)
_REQUESTS = (
    select(Connection, User)
    .join(User, User.id == Connection.sender_id)
    .where(
        Connection.receiver_id == bindparam("me"),
        Connection.status == PENDING,
        Connection.id > bindparam("after"),
        Connection.id <= bindparam("upto"),
    )
    .order_by(Connection.created_at.desc(), Connection.id.desc())
)


# ---- the list ----------------------------------------------------------------


def overview(ctx: Context, me: int, with_previews: bool = True) -> dict:
    """Pending requests for me (newest first), then my conversations: most recent
    message first, contacts without messages last (most recently accepted first).
    Previews of the last messages cost a decryption each: `with_previews` False skips them."""
    with ctx.read():
        requests = _requests(ctx, me)
        rows = ctx.db.execute(_CONVERSATIONS, {"me": me, "upto": MAX_ID}).all()
        ids = [row.last_id for row in rows if row.last_id is not None]
        last = {m.id: m for m in ctx.db.execute(_LAST_MESSAGES, {"ids": ids})} if ids else {}
        wrapped_key = ctx.db.scalar(_USER_KEY, {"me": me}) if last and with_previews else None
        changed = e2ee.key_changes(ctx, [row.contact_id for row in rows])
    previews = _previews(ctx, me, wrapped_key, rows, last)
    listed = [_conversation(row, last, previews, with_previews) | _e2ee_fields(row, changed) for row in rows]
    return {"requests": requests, "conversations": listed}


def _e2ee_fields(row: Any, changed: dict[int, datetime]) -> dict:
    """When the conversation turned end-to-end encrypted, and when the contact's identity
    key last changed (a reset: clients warn and compare safety numbers again)."""
    at = changed.get(row.contact_id)
    return {
        "e2ee_since": iso(row.e2ee_since) if row.e2ee_since is not None else None,
        "key_changed_at": iso(at) if at is not None else None,
    }


def _requests(ctx: Context, me: int, after: int = 0, upto: int = MAX_ID) -> list[dict]:
    """Pending requests for me with ids in (after, upto], newest first."""
    rows = ctx.db.execute(_REQUESTS, {"me": me, "after": after, "upto": upto}).all()
    return [connection_view(conn, sender) for conn, sender in rows]


def _conversation(row: Any, last: dict[int, Any], previews: dict[int, str], with_previews: bool) -> dict:
    message = last.get(row.last_id)
    view: dict[str, Any] = {
        "user": {"id": row.contact_id, "username": row.username},
        "unread": row.unread,
        "last_message_at": iso(message.timestamp) if message is not None else None,
        "last_message": None,
    }
    if message is not None:
        view["last_message"] = {"id": message.id, "sender_id": message.sender_id, "e2ee": message.e2ee}
        if with_previews:  # an end-to-end encrypted message has none: the server cannot read it
            view["last_message"]["preview"] = previews.get(message.id)
    return view


def _previews(
    ctx: Context, me: int, wrapped_key: str | None, rows: Sequence[Any], last: dict[int, Any]
) -> dict[int, str]:
    """The last messages' texts, decrypted (two Fernet tokens each: the chat key, then the
    text) and cut to a one-line preview. Many go to the CPU pool, as history pages do."""
    if wrapped_key is None:
        return {}
    user_key = unwrap_user_key(ctx.rt.keyring, wrapped_key)
    jobs = []
    for row in rows:
        if row.last_id in last and not last[row.last_id].e2ee:
            wrapped = row.chat_key_enc_sender if row.sender_id == me else row.chat_key_enc_receiver
            jobs.append((row.last_id, wrapped, last[row.last_id].content))
    if len(jobs) < INLINE_DECRYPTS:
        return _decrypt_previews(user_key, jobs)
    return ctx.rt.cpu.run(_decrypt_previews, user_key, jobs)


def _decrypt_previews(user_key: Secret, jobs: list[tuple[int, str, str]]) -> dict[int, str]:
    return {
        message_id: preview(decrypt_message(decrypt_for_user(user_key, wrapped), content))
        for message_id, wrapped, content in jobs
    }


def preview(text: str) -> str:
    """One line of at most PREVIEW_CHARS characters, an ellipsis marking a cut."""
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1].rstrip() + "…"


# ---- read markers ------------------------------------------------------------


@dataclass(frozen=True)
class _ReadTarget:
    contact_row: int
    username: str
    last_read_id: int
    newest: int  # the newest message of the conversation up to the `upto` asked for
    unread: int  # messages to me above the marker once it has moved


_TARGET = (
    select(
        _K.id,
        _K.connection_id,
        _K.last_read_id,
        _U.username,
        select(func.max(_M.id))
        .where(_M.connection_id == _K.connection_id, _M.id <= bindparam("upto"))
        .scalar_subquery()
        .label("newest"),
    )
    .select_from(_MY_CONTACTS)
    .where(_K.owner_id == bindparam("me"), _K.contact_id == bindparam("other"))
)
_UNREAD_AFTER = select(func.count()).where(
    _M.connection_id == bindparam("conn"), _M.receiver_id == bindparam("me"), _M.id > bindparam("after")
)
_ADVANCE = (
    update(_CONTACT)
    .where(_K.id == bindparam("row"), _K.last_read_id < bindparam("upto"))
    .values(last_read_id=bindparam("upto"))
)
_BUMP = update(_USER).where(_U.id == bindparam("me")).values(read_version=_U.read_version + 1)


def mark_read(ctx: Context, me: int, other_id: int, upto_raw: object = None) -> dict:
    """Move my read marker for the conversation with `other_id` up to message `upto`
    (default: the newest), never backwards, and wake my streams so every tab learns it.
    Answers the other user and how many messages to me are still unread."""
    upto = min(optional_id(upto_raw, "upto") or MAX_ID, MAX_ID)
    with ctx.read():
        target = _read_target(ctx, me, other_id, upto)
    if target.newest > target.last_read_id and _advance(ctx, me, target):
        ctx.publish(me)
    return {"with": {"id": other_id, "username": target.username}, "unread": target.unread}


def _advance(ctx: Context, me: int, target: _ReadTarget) -> bool:
    """Move the marker forward (a racing request may have moved it further: then it
    stays) and bump my read version with it; True if it moved."""
    with ctx.write():
        params = {"row": target.contact_row, "upto": target.newest}
        moved = cast(CursorResult, ctx.db.execute(_ADVANCE, params)).rowcount > 0
        if moved:
            ctx.db.execute(_BUMP, {"me": me})
    return moved


def _read_target(ctx: Context, me: int, other_id: int, upto: int) -> _ReadTarget:
    """My contact row for `other_id` and where its marker would go; 403 not_connected
    unless we have an accepted connection."""
    known = other_id != me and 0 < other_id <= MAX_ID
    row = ctx.db.execute(_TARGET, {"me": me, "other": other_id, "upto": upto}).first() if known else None
    if row is None:
        raise not_connected()
    after = max(row.last_read_id, row.newest or 0)
    unread = ctx.db.scalar(_UNREAD_AFTER, {"conn": row.connection_id, "me": me, "after": after}) or 0
    return _ReadTarget(row.id, row.username, row.last_read_id, row.newest or 0, unread)


# ---- what a stream reports besides messages ----------------------------------


@dataclass
class NewsPosition:
    """What one stream has reported besides messages: the marks of its last look (None
    before its first), my read markers (contact id -> marker) as of `read_version`, and
    my conversations' E2EE state (see e2ee.conversation_state) as of `e2ee_version`."""

    marks: Marks | None = None
    read_version: int = 0
    read_markers: dict[int, int] = field(default_factory=dict)
    e2ee_version: int = 0
    e2ee_state: dict[int, tuple] = field(default_factory=dict)


def news(ctx: Context, me: int, seen: NewsPosition, marks: Marks, shown_upto: int) -> list[tuple[str, dict]]:
    """The events besides messages since this stream's last look, as (event, data), and
    the position moved on; the first look only notes where things stand.

    `marks` come from the look that found the messages (chat.stream_batch); rows are
    fetched only for the kinds whose mark moved, and only up to that mark, so a later
    look never reports one twice. A mark that went down (rows deleted) just moves back.
    Unread counts include only messages this stream has shown (ids up to `shown_upto`),
    so that a client adding messages as they arrive never counts one twice."""
    before, seen.marks = seen.marks, marks
    if before is None:
        with ctx.read():
            _note_read_markers(ctx, me, seen)
            seen.e2ee_version, seen.e2ee_state = marks.e2ee, e2ee.conversation_state(ctx, me)
        return []
    if marks == before:
        return []
    events: list[tuple[str, dict]] = []
    with ctx.read():
        if marks.requests > before.requests:
            events += [("request", c) for c in reversed(_requests(ctx, me, before.requests, marks.requests))]
        if marks.contacts > before.contacts:
            events += [("contact", c) for c in _new_contacts(ctx, me, before.contacts, marks.contacts)]
        if marks.shares > before.shares:
            events += [("share", f) for f in _new_shares(ctx, me, before.shares, marks.shares)]
        if marks.reads != seen.read_version:
            events += [("read", r) for r in _read_changes(ctx, me, seen, shown_upto)]
        if marks.e2ee != seen.e2ee_version:
            events += _e2ee_changes(ctx, me, seen, marks.e2ee)
    return events


_NEW_CONTACTS = (
    select(Connection, User)
    .join(Contact, Contact.connection_id == Connection.id)
    .join(User, User.id == Contact.contact_id)
    .where(
        Contact.owner_id == bindparam("me"),
        Contact.id > bindparam("after"),
        Contact.id <= bindparam("upto"),
        Connection.status == ACCEPTED,
    )
    .order_by(Contact.id)
)
_NEW_SHARES = (
    select(File, User)
    .join(FileAccess, FileAccess.file_id == File.id)
    .join(User, User.id == File.owner_id)
    .where(
        FileAccess.user_id == bindparam("me"),
        FileAccess.id > bindparam("after"),
        FileAccess.id <= bindparam("upto"),
        File.expiry > bindparam("now"),
    )
    .order_by(FileAccess.id)
)


def _new_contacts(ctx: Context, me: int, after: int, upto: int) -> list[dict]:
    """Connections accepted (by either side) whose contact rows of mine are in (after, upto]."""
    rows = ctx.db.execute(_NEW_CONTACTS, {"me": me, "after": after, "upto": upto}).all()
    return [connection_view(conn, other) for conn, other in rows]


def _new_shares(ctx: Context, me: int, after: int, upto: int) -> list[dict]:
    """Unexpired files shared with me by grants in (after, upto], as /files lists them."""
    params = {"me": me, "after": after, "upto": upto, "now": ctx.now()}
    return [file_view(file, owner) for file, owner in ctx.db.execute(_NEW_SHARES, params).all()]


def _note_read_markers(ctx: Context, me: int, seen: NewsPosition) -> None:
    """Remember my read version and markers, read in one snapshot so no move between
    the two goes unnoticed."""
    seen.read_version = ctx.db.scalar(_READ_VERSION, {"me": me}) or 0
    rows = ctx.db.execute(_READ_STATE, {"me": me, "upto": 0}).all()
    seen.read_markers = {row.contact_id: row.last_read_id for row in rows}


def _read_changes(ctx: Context, me: int, seen: NewsPosition, shown_upto: int) -> list[dict]:
    """{"with": user, "unread": int} for each conversation whose marker moved."""
    seen.read_version = ctx.db.scalar(_READ_VERSION, {"me": me}) or 0
    rows = ctx.db.execute(_READ_STATE, {"me": me, "upto": shown_upto}).all()
    before, seen.read_markers = seen.read_markers, {row.contact_id: row.last_read_id for row in rows}
    return [
        {"with": {"id": row.contact_id, "username": row.username}, "unread": row.unread}
        for row in rows
        if row.last_read_id != before.get(row.contact_id, 0)
    ]


def _e2ee_changes(ctx: Context, me: int, seen: NewsPosition, version: int) -> list[tuple[str, dict]]:
    """`e2ee` for each conversation that turned end-to-end encrypted, `key` for each
    contact whose identity key changed, since the state this stream last noted."""
    before, seen.e2ee_version = seen.e2ee_state, version
    seen.e2ee_state = e2ee.conversation_state(ctx, me)
    events: list[tuple[str, dict]] = []
    for contact_id, (user, since, changed) in seen.e2ee_state.items():
        # A contact new since then starts with no E2EE, and with its key as it is now.
        _, since_before, changed_before = before.get(contact_id, (user, None, changed))
        if since is not None and since_before is None:
            events.append(("e2ee", {"with": user, "e2ee_since": iso(since)}))
        if changed is not None and changed != changed_before:
            events.append(("key", {"with": user, "key_changed_at": iso(changed)}))
    return events
