"""Runs the purge on a timer inside each server process; a database lease makes
sure only one process among all workers and machines does it per period."""

from __future__ import annotations

import logging
import threading

from flask import Flask

from .app import service_context
from .services import maintenance

log = logging.getLogger(__name__)


def run_purge_if_due(app: Flask) -> maintenance.PurgeReport | None:
    """Run one purge if this process wins the lease for the current period."""
    with service_context(app) as ctx:
        if not maintenance.claim_lease(ctx, maintenance.PURGE_LEASE, ctx.rt.settings.purge_interval_seconds):
            return None
        report = maintenance.purge(ctx)
        log.info("purge: %s", report)
        return report


def start(app: Flask) -> threading.Thread | None:
    """Start the background timer (a daemon thread); None when switched off."""
    interval = app.extensions["ghostcache"].settings.purge_interval_seconds
    if interval <= 0:
        return None
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval / 10):
            try:
                run_purge_if_due(app)
            except Exception:
                log.exception("periodic purge failed; will try again")

    thread = threading.Thread(target=loop, name="ghostcache-purge", daemon=True)
    thread.start()
    return thread
