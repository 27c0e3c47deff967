"""The gunicorn worker: gevent, so an idle connection costs memory, not a thread.

On top of gunicorn's gevent worker it adds the deadlines an open server needs:
a request's headers must arrive within `header_timeout_seconds` (else 408), a
body or a reader that stalls for `body_timeout_seconds` is cut off (a socket
timeout on every read and write), and an idle kept-alive connection closes
after `keepalive_seconds`. Errors gunicorn answers itself (malformed requests)
use the contract's JSON shape. A graceful stop or reload ends event streams at
once (browsers reconnect) instead of waiting for them."""

from __future__ import annotations

import json
import logging
import re
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import gevent
from gunicorn import util
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

from . import lifecycle

_MESSAGES = {
    400: ("bad_request", "The request could not be understood."),
    403: ("forbidden", "The request is not allowed."),
    408: ("request_timeout", "The request took too long to arrive."),
    414: ("too_large", "The request line is too long."),
    417: ("bad_request", "That expectation cannot be met."),
    431: ("too_large", "The request headers are too large."),
    500: ("internal_error", "Something went wrong on our side. Nothing was changed."),
    501: ("bad_request", "That transfer coding is not supported."),
}


class HeaderTimeout(Exception):
    """The client did not finish sending a request's headers in time."""


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own error answers, in the contract's JSON shape (never echoing input)."""
    code, message = _MESSAGES.get(status_int, ("bad_request", "The request could not be handled."))
    body = json.dumps({"error": code, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class _QuietTimeouts(logging.Filter):
    """A client that stops reading or sending is its own business, not a stack trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], TimeoutError))


class _PrivateErrors(logging.Filter):
    """Without the debugging access log, gunicorn's own messages keep no client
    address and no path (paths name users and files: /chat/42, /file/7)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if text.startswith("Invalid request from ip="):
            record.msg, record.args = "an invalid request was refused", ()
        elif text.startswith("Error handling request") and record.args:
            record.msg, record.args = "error handling a request", ()
        return True


# IPv4, and IPv6 written in full or with "::" (tor's circuit addresses, as nginx passes
# them on, are fc00:dead:beef:4dad::<circuit id>). Clock times (02:45:31) match neither.
_IPV4 = r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"
_HEX = r"[0-9a-f]{1,4}"
_IPV6 = rf"(?<![\w:])(?:(?:{_HEX}:){{7}}{_HEX}|(?:{_HEX}(?::{_HEX})*)?::(?:{_HEX}(?::{_HEX})*)?)(?![\w:])"
_ADDRESS = re.compile(f"{_IPV4}|{_IPV6}", re.IGNORECASE)


def redact_addresses(text: str) -> str:
    """The text with every IP address in it replaced by <address>."""
    return _ADDRESS.sub("<address>", text)


class NoAddresses(logging.Filter):
    """Onion mode: whatever a line says, from whichever logger, it names no address.

    A handler filter, so it sees every record its handler writes (gunicorn's, ours,
    the limiter's, the root logger's), tracebacks included."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_addresses(record.getMessage()), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_addresses(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_addresses(record.stack_info)
        return True


def _hide_addresses(handlers: list[logging.Handler]) -> None:
    """Every handler gets NoAddresses, and the root logger writes through them too
    (rather than through logging's bare last-resort handler, which has no filters)."""
    for handler in handlers:
        handler.addFilter(NoAddresses())
    root = logging.getLogger()
    root.handlers = list(handlers)


class GhostWorker(GeventWorker):
    """gunicorn's gevent worker with header, body and keep-alive deadlines."""

    def init_process(self) -> None:
        util.write_error = write_json_error  # gunicorn looks it up at call time
        errors = logging.getLogger("gunicorn.error")
        errors.addFilter(_QuietTimeouts())
        if not self.app.settings.access_log:
            errors.addFilter(_PrivateErrors())
        # The app's own messages (the purge's report, Redis coming and going, rate limits
        # counted per process meanwhile) go where gunicorn's go, in its format; without a
        # handler only warnings would show, bare.
        for name in ("ghostcache", "flask-limiter"):
            ours = logging.getLogger(name)
            ours.handlers, ours.propagate = list(errors.handlers), False
        if self.app.settings.onion:
            _hide_addresses(errors.handlers)
        self._served: weakref.WeakSet = weakref.WeakSet()
        # Greenlets waiting for a kept-alive connection's next request, and the
        # timeout each waits under: a stop fires those at once.
        self._idle: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        super().init_process()

    @property
    def _settings(self):
        return self.app.settings

    def timeout_ctx(self):
        current = gevent.getcurrent()
        if current in self._served:  # waiting for a kept-alive connection's next request
            return self._idle_wait(current)
        return gevent.Timeout(self._settings.header_timeout_seconds, HeaderTimeout)

    @contextmanager
    def _idle_wait(self, current) -> Iterator[None]:
        timeout = gevent.Timeout(self._settings.keepalive_seconds, False)  # ends quietly
        self._idle[current] = timeout
        try:
            with timeout:
                yield
        finally:
            self._idle.pop(current, None)

    def handle(self, listener, client, addr) -> None:
        # GeventWorker.handle makes the socket blocking without limit; a timeout
        # instead bounds every read and write, so a stalled body or a client that
        # stopped reading frees its connection.
        client.settimeout(self._settings.body_timeout_seconds)
        AsyncWorker.handle(self, listener, client, addr)

    def handle_request(self, listener_name, req, sock, addr):
        self._served.add(gevent.getcurrent())
        kept_alive = super().handle_request(listener_name, req, sock, addr)
        if not self.alive:  # stopping: close now rather than wait out the keep-alive
            raise StopIteration()
        return kept_alive

    def handle_error(self, req, client, addr, exc) -> None:
        if isinstance(exc, HeaderTimeout):
            try:
                write_json_error(client, 408, "Request Timeout", "")
            except OSError:
                pass
            return
        super().handle_error(req, client, addr, exc)

    def _stop_now(self) -> None:
        """Streams end and idle kept-alive connections close, so the stop waits for nothing."""
        lifecycle.shutdown()
        for greenlet, timeout in list(self._idle.items()):
            greenlet.kill(timeout, block=False)

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        gevent.spawn(self._stop_now)

    def handle_quit(self, sig, frame) -> None:
        gevent.spawn(self._stop_now)
        super().handle_quit(sig, frame)
