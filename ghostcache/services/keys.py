"""Master-key rotation: re-wrap every user key under the keyring's primary key."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update

from ..models import User
from .context import Context

BATCH = 200


def rewrap_user_keys(ctx: Context, after_batch: Callable[[int], None] | None = None) -> int:
    """Re-encrypt every wrapped user key under the primary master key, in committed
    batches. Safe to interrupt and to run again: until the old keys are retired,
    every key opens with the keyring, whichever master key wraps it."""
    done, last_id = 0, 0
    while True:
        rows = ctx.db.execute(
            select(User.id, User.keys_database_key).where(User.id > last_id).order_by(User.id).limit(BATCH)
        ).all()
        if not rows:
            return done
        for user_id, wrapped in rows:
            ctx.db.execute(
                update(User)
                .where(User.id == user_id)
                .values(keys_database_key=ctx.rt.keyring.rewrap(wrapped))
            )
        ctx.db.commit()
        done += len(rows)
        last_id = rows[-1].id
        if after_batch is not None:
            after_batch(done)


def keys_not_under_primary(ctx: Context) -> int:
    """How many user keys still need an old master key to open."""
    wrapped = ctx.db.scalars(select(User.keys_database_key))
    count = sum(not ctx.rt.keyring.opens_with_primary(w) for w in wrapped)
    ctx.db.commit()
    return count
