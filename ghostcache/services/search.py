"""Finding people by part of their username."""

from __future__ import annotations

from sqlalchemy import select

from ..models import User
from .context import Context
from .users import block_partners
from .views import user_view

MAX_RESULTS = 50


def _like_pattern(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(ctx: Context, me: int, query: str | None) -> dict:
    """Users whose name contains `query` (any case), minus me and anyone blocking either way."""
    query = (query or "").strip()
    if not query:
        return {"query": "", "results": []}
    if "\x00" in query:  # no name holds NUL, and SQLite's LIKE would stop reading there
        return {"query": query, "results": []}
    users = ctx.db.scalars(
        select(User)
        .where(User.username_key.like(_like_pattern(query.lower()), escape="\\"))
        .where(User.id != me, User.id.not_in(block_partners(ctx, me)))
        .order_by(User.username_key)
        .limit(MAX_RESULTS)
    ).all()
    return {"query": query, "results": [user_view(u) for u in users]}
