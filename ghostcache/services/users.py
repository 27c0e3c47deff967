"""Looking users up, and the blocking rule every social action obeys."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from ..models import Blacklist, User
from .context import Context
from .errors import DomainError, Forbidden, Invalid, NotFound


def find_by_name(ctx: Context, username: str) -> User | None:
    """The user with this name, ignoring case."""
    key = (username or "").strip().lower()
    return ctx.db.scalar(select(User).where(User.username_key == key))


def require_by_name(ctx: Context, username: str) -> User:
    user = find_by_name(ctx, username)
    if user is None:
        raise NotFound("user_not_found", "No user has that name.")
    return user


def require_peer(
    ctx: Context, me: int, username: str | None, self_error: Invalid, blocked_message: str
) -> User:
    """The other user of a social action (connect, share): named, existing, not me,
    and not blocked either way."""
    if not username:
        raise Invalid("missing_field", "The field 'username' is required.")
    target = require_by_name(ctx, username)
    if target.id == me:
        raise self_error
    if blocked_either_way(ctx, me, target.id):
        raise Forbidden("blocked", blocked_message)
    return target


def add_unique(ctx: Context, row: object, conflict: DomainError) -> None:
    """Insert and commit; a unique constraint lost to a racing request becomes `conflict`."""
    try:
        with ctx.write():
            ctx.db.add(row)
    except IntegrityError:
        raise conflict from None


def blocked_either_way(ctx: Context, a: int, b: int) -> bool:
    """True when a blocks b or b blocks a."""
    return (
        ctx.db.scalar(
            select(Blacklist.id)
            .where(
                or_(
                    (Blacklist.blocker_id == a) & (Blacklist.blocked_id == b),
                    (Blacklist.blocker_id == b) & (Blacklist.blocked_id == a),
                )
            )
            .limit(1)
        )
        is not None
    )


def block_partners(ctx: Context, user_id: int):
    """A subquery of every user id that user_id blocks or is blocked by."""
    blocked = select(Blacklist.blocked_id).where(Blacklist.blocker_id == user_id)
    blockers = select(Blacklist.blocker_id).where(Blacklist.blocked_id == user_id)
    return blocked.union(blockers)
