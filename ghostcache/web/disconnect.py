"""Noticing at once that an event stream's browser has gone.

A stream spends its life waiting; without this, a closed tab would hold its
connection until the next ping write failed. Under the gevent server the
connection's socket is watched for readability: an SSE client sends nothing
after its request, so a readable socket means end-of-file (or a misbehaving
client), and the stream's subscription is closed."""

from __future__ import annotations

import socket
from collections.abc import Callable

from gevent import get_hub, monkey

from ..events import Subscription


def watch_disconnect(environ: dict, sub: Subscription) -> Callable[[], None]:
    """Close `sub` when the client's connection ends; returns a function that stops watching."""
    sock = environ.get("gunicorn.socket")
    if sock is None or not monkey.is_module_patched("socket"):
        return lambda: None
    watcher = get_hub().loop.io(sock.fileno(), 1)

    def readable() -> None:
        watcher.stop()  # once is enough: either it is gone, or it sent bytes we ignore
        try:
            gone = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            gone = False
        except OSError:
            gone = True
        if gone:
            sub.close("the client has gone")

    watcher.start(readable)

    def stop() -> None:
        watcher.stop()
        watcher.close()

    return stop
