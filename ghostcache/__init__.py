"""GhostCache: a self-hosted private messenger with expiring encrypted file drops."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy on purpose: `ghostcache serve` is also the gunicorn master, and it must not
    # import Flask or SQLAlchemy (and the locks they make) before its gevent workers
    # patch the standard library.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'ghostcache' has no attribute {name!r}")
