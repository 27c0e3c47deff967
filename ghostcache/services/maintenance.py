"""Periodic clean-up: expired files, inactive accounts, abandoned blobs, spent invites."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError

from ..models import File, Lease, User
from . import invites
from .accounts import EPOCH, delete_account, release_names
from .context import Context

log = logging.getLogger(__name__)
PURGE_LEASE = "purge"
# A blob without a row is only removed once it is this old, so an upload in
# flight (blob written, row not yet committed) is never swept from under it.
ORPHAN_GRACE_SECONDS = 3600


@dataclass
class PurgeReport:
    expired_files: int = 0
    inactive_accounts: int = 0
    orphan_blobs: int = 0
    released_names: int = 0
    spent_invites: int = 0  # used or expired


def purge(ctx: Context, orphan_grace_seconds: float = ORPHAN_GRACE_SECONDS) -> PurgeReport:
    """Remove expired files, inactive accounts, abandoned blobs and spent invites."""
    report = PurgeReport()
    report.expired_files = _purge_expired_files(ctx)
    report.inactive_accounts = _purge_inactive_accounts(ctx)
    with ctx.read():
        keep = set(ctx.db.scalars(select(File.stored_name)))
    report.orphan_blobs = ctx.rt.blobs.sweep(keep, orphan_grace_seconds)
    report.released_names = release_names(ctx)
    report.spent_invites = invites.purge(ctx)
    ctx.erase_deleted()  # expired files' names too; and a retry if a deletion's erase was blocked
    return report


def _purge_expired_files(ctx: Context) -> int:
    with ctx.write():
        rows = ctx.db.execute(select(File.id, File.stored_name).where(File.expiry <= ctx.now())).all()
        if rows:
            ctx.db.execute(delete(File).where(File.id.in_([r.id for r in rows])))
    for row in rows:
        ctx.rt.blobs.delete(row.stored_name)
    return len(rows)


def _purge_inactive_accounts(ctx: Context) -> int:
    cutoff = ctx.now() - timedelta(days=ctx.rt.settings.inactivity_days)
    with ctx.read():
        rows = ctx.db.execute(select(User.id, User.last_login).where(User.last_login < cutoff)).all()
    # A destroyed account whose deletion never ran (a crash) has its last login at the
    # epoch: its name is then reserved as if it had been destroyed just now.
    return sum(delete_account(ctx, r.id, r.last_login if r.last_login > EPOCH else None) for r in rows)


def claim_lease(ctx: Context, name: str, seconds: float) -> bool:
    """Take the named lease for `seconds` if nobody holds it: one winner among all
    processes and machines sharing the database. Not released early on purpose:
    the lease doubles as the schedule, so the job runs once per period overall."""
    now = ctx.now()
    holder = f"{socket.gethostname()}:{os.getpid()}"
    until = now + timedelta(seconds=seconds)
    try:
        with ctx.write():
            if ctx.db.get(Lease, name) is None:
                ctx.db.add(Lease(name=name, holder=holder, expires_at=until))
                return True
            won = cast(
                CursorResult,
                ctx.db.execute(
                    update(Lease)
                    .where(Lease.name == name, Lease.expires_at <= now)
                    .values(holder=holder, expires_at=until)
                ),
            ).rowcount
            return bool(won)
    except IntegrityError:  # another process inserted the lease first
        return False
