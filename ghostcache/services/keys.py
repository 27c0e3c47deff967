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
        with ctx.write():
            rows = ctx.db.execute(
                select(User.id, User.keys_database_key)
                .where(User.id > last_id)
                .order_by(User.id)
                .limit(BATCH)
            ).all()
            for user_id, wrapped in rows:
                rewrapped = ctx.rt.keyring.rewrap(wrapped)
                ctx.db.execute(update(User).where(User.id == user_id).values(keys_database_key=rewrapped))
        if not rows:
            return done
        done += len(rows)
        last_id = rows[-1].id
        if after_batch is not None:
            after_batch(done)


def keys_not_under_primary(ctx: Context) -> int:
    """How many user keys still need an old master key to open."""
    with ctx.read():
        wrapped = list(ctx.db.scalars(select(User.keys_database_key)))
    return sum(not ctx.rt.keyring.opens_with_primary(w) for w in wrapped)
