"""Contacts as the server lists them: who is an accepted contact, the connection id
(GCE1's conversation id), and whether the conversation is end-to-end encrypted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ClientError
from .http import Api


@dataclass(frozen=True)
class Contact:
    """An accepted contact: their user id and name, and our connection's id."""

    user_id: int
    username: str
    connection_id: int


def accepted(api: Api) -> list[Contact]:
    """Every accepted contact (GET /connections)."""
    listing = api.get("/connections")
    return [_contact(item) for item in listing.get("accepted", [])]


def find(api: Api, username: str) -> Contact:
    """The accepted contact with that name (case does not matter); ClientError if none."""
    for contact in accepted(api):
        if contact.username.lower() == username.lower():
            return contact
    raise ClientError(f"{username} is not one of your accepted contacts (see: ghostcache-client contacts).")


def by_user_id(api: Api) -> dict[int, Contact]:
    return {contact.user_id: contact for contact in accepted(api)}


def e2ee_since(api: Api, user_id: int) -> str | None:
    """When the conversation with user_id turned end-to-end encrypted, or None."""
    listing = api.get("/conversations", params={"preview": "0"})
    for conversation in listing.get("conversations", []):
        if conversation.get("user", {}).get("id") == user_id:
            return conversation.get("e2ee_since")
    return None


def _contact(item: dict[str, Any]) -> Contact:
    user = item["user"]
    return Contact(int(user["id"]), str(user["username"]), int(item["id"]))
