"""How messages and events look on the terminal. Text from others is shown with control
characters escaped, so a message cannot move the cursor or rewrite earlier lines."""

from __future__ import annotations

from typing import Any

from .e2ee_session import Opened


def clean(text: str) -> str:
    """Text safe for a terminal: control characters (but newline and tab) escaped."""
    out = []
    for char in text:
        if char in "\n\t" or (char.isprintable() and char not in "\u2028\u2029"):
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    return "".join(out).replace("\n", "\n    ")


def message_line(message: dict[str, Any], me_id: int, opened: Opened | None) -> str:
    """One message: `#id time sender: text`, with [e2ee] and any warning."""
    sender = "me" if message.get("sender_id") == me_id else str(message.get("sender", "?"))
    head = f"#{message.get('id')} {message.get('timestamp', '')} {clean(sender)}"
    if opened is None:  # a plain message
        return f"{head}: {clean(str(message.get('message', '')))}"
    if opened.text is None:
        return f"{head} [e2ee]: [could not decrypt: {clean(opened.error or 'unknown reason')}]"
    line = f"{head} [e2ee]: {clean(opened.text)}"
    if opened.warning:
        line += f"\n    ! WARNING: {clean(opened.warning)}"
    return line


def event_line(kind: str, data: dict[str, Any]) -> str | None:
    """A stream event besides messages, or None for ones not worth a line."""
    other = clean(str((data.get("with") or data.get("user") or {}).get("username", "?")))
    if kind == "e2ee":
        return f"* the conversation with {other} is now end-to-end encrypted (since {data.get('e2ee_since')})"
    if kind == "key":
        return (
            f"! {other} reset their identity key at {data.get('key_changed_at')}: compare safety "
            f"numbers (safety {other}), then run `trust {other}`"
        )
    if kind == "request":
        return f"* {other} asks to connect (accept {other} / deny {other})"
    if kind == "contact":
        return f"* you and {other} are now contacts"
    if kind == "share":
        return f"* {clean(str(data.get('owner', {}).get('username', '?')))} shared file #{data.get('id')}"
    return None  # read markers and unknown events
