"""The database schema: users, connections, contacts, files, grants, blocks, messages, invites,
and what end-to-end encryption keeps (identities, backups, key events)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import Base, db

if TYPE_CHECKING:
    # db.Model is built at run time (Base plus Flask-SQLAlchemy's table naming and
    # bind mixins), so type checkers cannot see it as a class: they get Base instead.
    Model = Base
else:
    Model = db.Model


class UTCDateTime(TypeDecorator):
    """Stores naive UTC (SQLite has no time zones); always returns aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _user_fk(**kw) -> Mapped[int]:
    return mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True, **kw)


class User(Model):
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    # Lower-cased copy: unique without regard to case on every database.
    username_key: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    dpass_hash: Mapped[str] = mapped_column(String(255))
    keys_database_key: Mapped[str] = mapped_column(Text)  # wrapped by the master key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Bumped to end every session of the user at once.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    # Bumped whenever one of the user's read markers moves: open streams compare it to
    # learn, in the look they make anyway, that another tab has read something.
    read_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Bumped when one of the user's conversations turns end-to-end encrypted or a
    # contact's identity key changes: open streams compare it, as they do read_version.
    e2ee_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Connection(Model):
    __table_args__ = (UniqueConstraint("pair_low", "pair_high", name="uq_connection_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender_id: Mapped[int] = _user_fk()
    receiver_id: Mapped[int] = _user_fk()
    # min/max of the two ids: one connection per pair, whoever asked first.
    pair_low: Mapped[int] = mapped_column(Integer)
    pair_high: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sender_privkey_enc: Mapped[str | None] = mapped_column(Text)
    sender_pubkey_enc: Mapped[str | None] = mapped_column(Text)
    receiver_privkey_enc: Mapped[str | None] = mapped_column(Text)
    receiver_pubkey_enc: Mapped[str | None] = mapped_column(Text)
    chat_key_enc_sender: Mapped[str | None] = mapped_column(Text)
    chat_key_enc_receiver: Mapped[str | None] = mapped_column(Text)
    # Set once, when the conversation turns end-to-end encrypted (GCE1); never unset.
    e2ee_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def other_party(self, user_id: int) -> int:
        return self.receiver_id if self.sender_id == user_id else self.sender_id


class Contact(Model):
    __table_args__ = (UniqueConstraint("owner_id", "contact_id", name="uq_contact_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = _user_fk()
    contact_id: Mapped[int] = _user_fk()
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The owner has read the conversation up to this message id: messages to the owner
    # above it are unread. It only ever moves forward.
    last_read_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class File(Model):
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = _user_fk()
    filename: Mapped[str] = mapped_column(String(255))
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expiry: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class FileAccess(Model):
    __table_args__ = (UniqueConstraint("file_id", "user_id", name="uq_file_access_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("file.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = _user_fk()
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Blacklist(Model):
    __table_args__ = (UniqueConstraint("blocker_id", "blocked_id", name="uq_blacklist_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    blocker_id: Mapped[int] = _user_fk()
    blocked_id: Mapped[int] = _user_fk()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Message(Model):
    __table_args__ = (
        Index("ix_message_undelivered", "receiver_id", "delivered", "id"),
        # Unread counts: the messages to one side of a conversation above a read marker
        # (the id, as every SQLite index, ends it), without a scan of the conversation.
        Index("ix_message_conversation_receiver", "connection_id", "receiver_id"),
        # Ids only go up, also after the newest messages are deleted: stream cursors and
        # Last-Event-ID rely on it (migration 0004).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connection.id", ondelete="CASCADE"), index=True)
    sender_id: Mapped[int] = _user_fk()
    receiver_id: Mapped[int] = _user_fk()
    content: Mapped[str] = mapped_column(Text)  # encrypted with the connection's chat key
    # A GCE1 envelope (compact JSON) for an end-to-end encrypted message, whose `content`
    # is then empty: the server never holds a key that opens it.
    envelope: Mapped[str | None] = mapped_column(Text, nullable=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)


class Identity(Model):
    """A user's published GCE1 identity: the raw X25519 public key and its key id."""

    __tablename__ = "identity"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    kid: Mapped[str] = mapped_column(String(32))
    pub: Mapped[str] = mapped_column(String(64))  # b64u of 32 bytes
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class E2EEBackup(Model):
    """A user's identity-key backup, sealed with a recovery key the server never sees."""

    __tablename__ = "e2ee_backup"

    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    ctr: Mapped[int] = mapped_column(Integer)
    salt: Mapped[str] = mapped_column(String(32))
    iv: Mapped[str] = mapped_column(String(32))
    blob: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class KeyEvent(Model):
    """An identity reset: the key id a user had and the one that replaced it."""

    __tablename__ = "key_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = _user_fk()
    old_kid: Mapped[str] = mapped_column(String(32))
    new_kid: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class RetiredName(Model):
    """A username whose account ended, reserved so that nobody can tell how it ended.
    Kept as a keyed hash (crypto.KeyedTags), never as the name."""

    __tablename__ = "retired_name"

    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Lease(Model):
    """A named lease: lets one process among many run a periodic job."""

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128), default="")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Invite(Model):
    """A single-use invitation to register (GHOSTCACHE_INVITE_ONLY). Only a hash of its
    token is kept: the link is shown once, when it is made. A member's invites go with
    the member's account (cascade); the operator's have no creator. Using one clears
    its creator too, so no row ties a member to the person they invited."""

    __tablename__ = "invite"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256, hex
    creator_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True, nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
