"""contacts, connect, accept, deny."""

from __future__ import annotations

from typing import Any

from .. import contacts
from ..context import Context
from ..errors import ClientError
from ..render import clean


def run_contacts(ctx: Context) -> int:
    """Accepted contacts (with [e2ee] where the chat is end-to-end encrypted) and
    pending requests both ways."""
    ctx.require_login()
    listing = ctx.api.get("/connections")
    encrypted = {
        c["user"]["id"]
        for c in ctx.api.get("/conversations", params={"preview": "0"}).get("conversations", [])
        if c.get("e2ee_since")
    }
    ctx.say("contacts:")
    for item in listing.get("accepted", []):
        mark = " [e2ee]" if item["user"]["id"] in encrypted else ""
        ctx.say(f"  {clean(item['user']['username'])} (user {item['user']['id']}){mark}")
    ctx.say("requests to you:")
    for item in listing.get("received", []):
        ctx.say(f"  #{item['id']} from {clean(item['user']['username'])}")
    ctx.say("requests you sent:")
    for item in listing.get("sent", []):
        ctx.say(f"  #{item['id']} to {clean(item['user']['username'])}")
    return 0


def run_connect(ctx: Context) -> int:
    ctx.require_login()
    conn = ctx.api.post("/connect", {"username": ctx.args.username})
    ctx.say(f"request #{conn['id']} sent to {conn['user']['username']}")
    return 0


def _received(ctx: Context, who: str) -> dict[str, Any]:
    """The pending request to me from that username, or with that id."""
    pending = ctx.api.get("/connections").get("received", [])
    for item in pending:
        if item["user"]["username"].lower() == who.lower():
            return dict(item)
    for item in pending:
        if who.isdigit() and item["id"] == int(who):
            return dict(item)
    raise ClientError(f"No pending request to you from {who!r} (see: ghostcache-client contacts).")


def run_accept(ctx: Context) -> int:
    return _answer(ctx, "accept", "accepted {name}")


def run_deny(ctx: Context) -> int:
    return _answer(ctx, "deny", "denied {name} (the server now blocks them for you)")


def _answer(ctx: Context, answer: str, said: str) -> int:
    """Answer the pending request named on the command line with `answer` (accept, deny)."""
    ctx.require_login()
    request = _received(ctx, ctx.args.who)
    conn = ctx.api.post(f"/connect/{answer}/{request['id']}")
    ctx.say(said.format(name=conn["user"]["username"]))
    return 0


def contact(ctx: Context, username: str) -> contacts.Contact:
    ctx.require_login()
    return contacts.find(ctx.api, username)
