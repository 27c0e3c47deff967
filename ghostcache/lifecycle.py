"""Process shutdown hooks: the server worker calls `shutdown()` when told to stop,
and long-lived parts (event streams) end at once instead of holding the stop up.

Only plain lists here: the worker imports this module before gevent patches
the standard library, so nothing may create a lock or an event at import."""

from __future__ import annotations

from collections.abc import Callable

_hooks: list[Callable[[], None]] = []
_stopping = [False]


def on_shutdown(hook: Callable[[], None]) -> None:
    """Run `hook` when this process begins to stop."""
    _hooks.append(hook)


def shutdown() -> None:
    """Begin stopping: run every hook once."""
    if _stopping[0]:
        return
    _stopping[0] = True
    for hook in list(_hooks):
        hook()
