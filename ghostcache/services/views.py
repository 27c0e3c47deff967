"""Plain-dict shapes of the contract's objects (user, connection, message, file)."""

from __future__ import annotations

from datetime import datetime

from ..models import Connection, File, User


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def user_view(user: User) -> dict:
    return {"id": user.id, "username": user.username}


def connection_view(conn: Connection, other: User) -> dict:
    return {
        "id": conn.id,
        "status": conn.status,
        "created_at": iso(conn.created_at),
        "user": user_view(other),
    }


def message_view(message, sender_name: str, text: str | None, delivered: bool | None = None) -> dict:
    """A message; an end-to-end encrypted one (text None) has no "message" and
    "e2ee": true (the caller adds its "envelope")."""
    view: dict = {
        "id": message.id,
        "sender_id": message.sender_id,
        "sender": sender_name,
        "receiver_id": message.receiver_id,
        "e2ee": text is None,
        "timestamp": iso(message.timestamp),
    }
    if text is not None:
        view["message"] = text
    if delivered is not None:
        view["delivered"] = delivered
    return view


def file_view(file: File, owner: User, shared_with: list[User] | None = None) -> dict:
    view = {
        "id": file.id,
        "filename": file.filename,
        "size": file.size,
        "created_at": iso(file.created_at),
        "expiry": iso(file.expiry),
        "owner": user_view(owner),
    }
    if shared_with is not None:
        view["shared_with"] = [user_view(u) for u in shared_with]
    return view
