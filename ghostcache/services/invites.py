"""Invites: single-use registration links from a member or the operator.

Only a SHA-256 hash of each token is stored (the token is 256 random bits, so a
plain hash is as good as a keyed one, and it survives a change of secret key).
A token is shown once, when its invite is made. Every refusal to register with
one (none given, unknown, used, expired, revoked) is the same 403
`invite_required`, so invites cannot be probed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, delete, func, or_, select, update

from ..models import Invite
from .context import MAX_ID, Context
from .errors import Conflict, Forbidden, Invalid, not_found
from .views import iso

DEFAULT_DAYS, MAX_DAYS = 7, 30
MAX_OPEN = 10  # a member's invites not yet used nor expired
_DAYS = re.compile(r"\s*(\d{1,2})\s*")


@dataclass(frozen=True)
class NewInvite:
    """A just-made invite: the only moment its token exists outside the link."""

    id: int
    token: str
    expires_at: datetime


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def invite_required() -> Forbidden:
    return Forbidden(
        "invite_required",
        "Registration needs an invite link from a member, and this one is missing, used or expired.",
    )


def parse_days(raw: object) -> int:
    """Days an invite stays valid: absent or empty is 7; else a whole number 1 to 30."""
    if raw is None or raw == "":
        return DEFAULT_DAYS
    match = _DAYS.fullmatch(raw) if isinstance(raw, str) else None
    days = int(match.group(1)) if match else raw
    if isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= MAX_DAYS:
        return days
    raise Invalid("invalid_days", f"days must be a whole number from 1 to {MAX_DAYS}.")


def create(ctx: Context, creator_id: int | None, days: int = DEFAULT_DAYS) -> NewInvite:
    """A new invite valid for `days`; a member (not the operator, creator None) may hold
    at most MAX_OPEN open ones (409 too_many_invites)."""
    token = secrets.token_urlsafe(32)
    now = ctx.now()
    with ctx.write():
        if creator_id is not None and _open_count(ctx, creator_id) >= MAX_OPEN:
            raise Conflict(
                "too_many_invites",
                f"You have {MAX_OPEN} open invites. Revoke one, or wait until one is used or expires.",
            )
        invite = Invite(
            token_hash=hash_token(token),
            creator_id=creator_id,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        ctx.db.add(invite)
        ctx.db.flush()
        return NewInvite(invite.id, token, invite.expires_at)


def _open(ctx: Context):
    return (Invite.used_at.is_(None)) & (Invite.expires_at > ctx.now())


def _open_count(ctx: Context, creator_id: int) -> int:
    query = select(func.count()).select_from(Invite).where(Invite.creator_id == creator_id, _open(ctx))
    return ctx.db.scalar(query) or 0


def list_open(ctx: Context, creator_id: int) -> dict:
    """My invites not yet used nor expired, newest first (their tokens are not known)."""
    with ctx.read():
        rows = ctx.db.scalars(
            select(Invite).where(Invite.creator_id == creator_id, _open(ctx)).order_by(Invite.id.desc())
        ).all()
    return {"invites": [invite_view(row) for row in rows]}


def invite_view(invite: Invite) -> dict:
    return {"id": invite.id, "created_at": iso(invite.created_at), "expires_at": iso(invite.expires_at)}


def revoke(ctx: Context, creator_id: int, invite_id: int) -> None:
    """Delete one of my open invites; anything else is 404 not_found."""
    if not 0 < invite_id <= MAX_ID:  # no row has it, and the database could not take it
        raise not_found("That invite")
    with ctx.write():
        gone = ctx.db.execute(
            delete(Invite).where(Invite.id == invite_id, Invite.creator_id == creator_id, _open(ctx))
        )
    if not cast(CursorResult, gone).rowcount:
        raise not_found("That invite")


def check(ctx: Context, token: str | None) -> None:
    """403 invite_required unless `token` names an open invite (a read: claim() decides)."""
    if not token:
        raise invite_required()
    with ctx.read():
        found = ctx.db.scalar(select(Invite.id).where(Invite.token_hash == hash_token(token), _open(ctx)))
    if found is None:
        raise invite_required()


def claim(ctx: Context, token: str) -> None:
    """Use the invite, inside the caller's write transaction: one conditional UPDATE, so
    of two registrations racing with one token exactly one wins; the other gets 403
    invite_required (and its transaction rolls back). The creator is forgotten at once,
    so no row ties a member to the account they invited."""
    used = ctx.db.execute(
        update(Invite)
        .where(Invite.token_hash == hash_token(token), _open(ctx))
        .values(used_at=ctx.now(), creator_id=None)
    )
    if cast(CursorResult, used).rowcount != 1:
        raise invite_required()


def purge(ctx: Context) -> int:
    """Remove used and expired invites; returns how many."""
    with ctx.write():
        gone = ctx.db.execute(
            delete(Invite).where(or_(Invite.used_at.is_not(None), Invite.expires_at <= ctx.now()))
        )
    return cast(CursorResult, gone).rowcount
