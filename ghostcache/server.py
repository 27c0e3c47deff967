"""Runs GhostCache under gunicorn with gevent workers, configured from Settings."""

from __future__ import annotations

import resource

from gunicorn.app.base import BaseApplication

from .filemodes import PRIVATE_UMASK
from .settings import Settings


class GhostcacheServer(BaseApplication):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options = {
            "bind": f"{s.host}:{s.port}" if ":" not in s.host else f"[{s.host}]:{s.port}",
            "workers": s.workers,
            # gevent: an open chat stream or a slow client costs memory, not a thread
            # (docs/ARCHITECTURE.md has the measurements behind the choice).
            "worker_class": "ghostcache.worker.GhostWorker",
            "worker_connections": s.worker_connections,
            "keepalive": s.keepalive_seconds,
            "timeout": 60,
            # Streams end at once on a stop (lifecycle.shutdown); what is left is
            # ordinary requests, which finish in well under this.
            "graceful_timeout": 10,
            "accesslog": "-" if s.access_log else None,
            # No query strings in the access log: they can carry search terms.
            "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(L)ss',
            "errorlog": "-",
            # One shared control socket path would collide between servers on a machine.
            "control_socket_disable": True,
            # gunicorn applies this only around its own files (a worker's heartbeat file,
            # a Unix listening socket), then restores the process's umask; left at its
            # default 0, those moments would run with no umask at all. The process's own
            # umask (0o077) comes from the `ghostcache` command.
            "umask": PRIVATE_UMASK,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):
        from .wsgi import app

        return app


def _raise_open_file_limit(wanted: int) -> None:
    """Every open connection is a file descriptor: allow as many as the hard limit permits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run(settings: Settings) -> None:
    """Serve until interrupted."""
    _raise_open_file_limit(settings.worker_connections + 256)
    GhostcacheServer(settings).run()
