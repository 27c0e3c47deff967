"""Limits at the edge: every request body is bounded before anyone reads it.

A WSGI middleware in front of Flask finds the route's body limit (a few KB
for JSON and form routes, more for a chat message, the file limit for the
upload), refuses a larger `Content-Length` without reading a byte, and wraps
the body so that a chunked body is cut off as soon as it passes the limit and
a body that stalls is cut off too. Nothing is spooled to disk. The refusal
itself is answered by Flask's error handler, so it takes the contract's shape
(JSON or a page) like every other error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO, NamedTuple

from flask import Flask, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, RequestTimeout

from ..cpu import let_others_run
from ..settings import Settings

SMALL_BODY = 16 * 1024  # logins, registrations, requests, shares: a few short fields
# A 10,000-character message, percent-encoded as a form (up to 9 bytes a character).
MESSAGE_BODY = 96 * 1024
REFUSED = "ghostcache.refused"


class BodyLimit(NamedTuple):
    """The largest body a route takes, what a larger one is told, and whether the body
    may take long to arrive (a file upload) or must come whole within the deadline."""

    size: int
    refusal: str
    slow: bool = False

    def too_large(self) -> RequestEntityTooLarge:
        return RequestEntityTooLarge(self.refusal)


def _form_limit(size: int) -> BodyLimit:
    return BodyLimit(size, f"The request body can be at most {size // 1024} KB here.")


SMALL_LIMIT = _form_limit(SMALL_BODY)


def body_limits(settings: Settings) -> dict[str, BodyLimit]:
    """Endpoint -> its body limit; every other endpoint takes SMALL_LIMIT."""
    upload = BodyLimit(
        settings.max_upload_bytes + 1024 * 1024,  # the file plus its multipart framing
        f"Files can be at most {settings.max_upload_mb} MB.",
        slow=True,
    )
    message = _form_limit(MESSAGE_BODY)
    # A backup's sealed blob may reach 64 KiB (services/e2ee.py): as base64url, 86 KB.
    return {"files.upload": upload, "chat.send": message, "chat.post": message, "e2ee.put_backup": message}


def _stalled() -> RequestTimeout:
    return RequestTimeout("The request body stopped arriving. Please try again.")


class BoundedInput:
    """A request body that stops at `limit` bytes and at a stall or a deadline."""

    def __init__(self, stream: BinaryIO, limit: BodyLimit, deadline: float | None) -> None:
        self._stream, self._limit, self._deadline = stream, limit, deadline
        self._seen = 0
        self._error: HTTPException | None = None

    def _take(self, read: Callable[[int], bytes], size: int | None) -> bytes:
        if self._error is None and self._deadline is not None and time.monotonic() > self._deadline:
            self._error = _stalled()
        if self._error is not None:  # sticky: a reader that swallowed it cannot read on
            raise self._error
        room = self._limit.size - self._seen + 1  # one byte more tells "too large" from "exactly full"
        size = room if size is None or size < 0 else min(size, room)
        try:
            data = read(size)
        except TimeoutError:  # the socket saw nothing for body_timeout_seconds
            self._error = _stalled()
            raise self._error from None
        self._seen += len(data)
        if self._seen > self._limit.size:
            self._error = self._limit.too_large()
            raise self._error
        let_others_run()
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._take(self._stream.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._take(self._stream.readline, size)

    def __iter__(self):
        while line := self.readline():
            yield line


class EdgeLimits:
    """WSGI middleware: per-route body limits and deadlines, before Flask reads anything."""

    def __init__(self, app: Flask, settings: Settings) -> None:
        self._app, self._next = app, app.wsgi_app
        self._limits = body_limits(settings)
        self._body_seconds = settings.body_timeout_seconds
        app.before_request_funcs.setdefault(None, []).insert(0, _refuse_if_marked)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        limit = self._limit_for(environ)
        declared = _content_length(environ)
        if declared is not None and declared > limit.size:
            # Not one byte is read: Flask answers 413 from an empty body.
            environ[REFUSED] = limit.too_large()
            environ["CONTENT_LENGTH"] = "0"
            environ["wsgi.input"] = _Empty()
        else:
            # Small bodies must arrive whole within the deadline; a file upload may
            # take long, but never stall (the server's socket timeout) nor overflow.
            deadline = None if limit.slow else time.monotonic() + self._body_seconds
            environ["wsgi.input"] = BoundedInput(environ["wsgi.input"], limit, deadline)
        return self._next(environ, start_response)

    def _limit_for(self, environ: dict) -> BodyLimit:
        try:
            endpoint, _ = self._app.url_map.bind_to_environ(environ).match()
        except HTTPException:  # unknown route or method: Flask answers it; no body needed
            return SMALL_LIMIT
        return self._limits.get(str(endpoint), SMALL_LIMIT)


def _content_length(environ: dict) -> int | None:
    raw = environ.get("CONTENT_LENGTH") or ""
    return int(raw) if raw.isascii() and raw.isdigit() else None


class _Empty:
    def read(self, size: Any = -1) -> bytes:
        return b""

    def readline(self, size: Any = -1) -> bytes:
        return b""


def _refuse_if_marked() -> None:
    """The first before_request: answer a refused body before anything else runs."""
    refused = request.environ.get(REFUSED)
    if refused is not None:
        raise refused


def init_edge(app: Flask, settings: Settings) -> None:
    """Put the limits in front of the app (call once the routes are registered)."""
    app.wsgi_app = EdgeLimits(app, settings)  # type: ignore[method-assign]
