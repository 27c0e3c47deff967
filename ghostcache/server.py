"""Runs GhostCache under gunicorn, configured from Settings."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

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
            "threads": s.threads,
            "worker_class": "gthread",  # threads keep long-lived event streams cheap
            "timeout": 60,
            "graceful_timeout": 10,
            "accesslog": "-",
            # No query strings in the access log: they can carry search terms.
            "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(L)ss',
            "errorlog": "-",
            # One shared control socket path would collide between servers on a machine.
            "control_socket_disable": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):
        from .wsgi import app

        return app


def run(settings: Settings) -> None:
    """Serve until interrupted."""
    GhostcacheServer(settings).run()
