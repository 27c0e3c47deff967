"""Chat: send, poll, history page, and the live Server-Sent Events stream."""

from __future__ import annotations

import json
import time

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from ..services import accounts, chat
from .errors import on_error
from .inputs import raw_field
from .negotiation import respond
from .runtime import context
from .session import login_required, me

bp = Blueprint("chat", __name__)
PING_SECONDS = 15
RECHECK_SECONDS = 2.0  # picks up messages sent through other worker processes


@bp.post("/chat/send")
@login_required
@on_error(endpoint="connections.index")
def send():
    sent = chat.send(context(), me(), raw_field("receiver_id"), raw_field("message"))
    return respond(sent, 201, html=lambda: redirect(url_for("connections.index")))


@bp.get("/chat/poll")
@login_required
def poll():
    return respond(chat.poll(context(), me()), 200, html=lambda: redirect(url_for("connections.index")))


@bp.get("/chat/<int:other_id>")
@login_required
def page(other_id: int):
    found = chat.history(context(), me(), other_id, request.args.get("before"), request.args.get("limit"))
    return respond(found, 200, html=lambda: _chat_page(found))


def _chat_page(found: dict) -> str:
    messages = found["messages"]
    older_url = None
    if messages and len(messages) >= chat.DEFAULT_LIMIT:
        older_url = url_for("chat.page", other_id=found["with"]["id"], before=messages[0]["id"])
    return render_template("chat.html", with_user=found["with"], messages=messages, older_url=older_url)


@bp.post("/chat/<int:other_id>")
@login_required
@on_error()
def post(other_id: int):
    sent = chat.send(context(), me(), other_id, raw_field("message"))
    return respond(sent, 201, html=lambda: redirect(url_for("chat.page", other_id=other_id)))


@bp.get("/chat/stream")
@login_required
def stream():
    after = _last_event_id()
    events = _events(current_app._get_current_object(), me(), session["sv"], after)
    return Response(
        events, mimetype="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def _events(app, user_id: int, version: int, after: int | None):
    """Yield SSE frames until the stream's lifetime ends (the browser reconnects)."""
    rt = app.extensions["ghostcache"]
    yield "retry: 3000\n: connected\n\n"  # an early byte so proxies do not buffer
    deadline = time.monotonic() + rt.settings.stream_seconds
    next_ping = time.monotonic() + PING_SECONDS
    seen = rt.broker.counter(user_id)
    replay_after = after
    while time.monotonic() < deadline:
        with app.app_context():
            if not _session_alive(user_id, version):
                return
            batch = chat.stream_batch(context(), user_id, replay_after)
        replay_after = None
        for message in batch:
            yield f"id: {message['id']}\nevent: message\ndata: {json.dumps(message)}\n\n"
        if time.monotonic() >= next_ping:
            next_ping = time.monotonic() + PING_SECONDS
            yield ": ping\n\n"
        seen = rt.broker.wait(user_id, seen, timeout=min(RECHECK_SECONDS, PING_SECONDS))


def _session_alive(user_id: int, version: int) -> bool:
    """The stream ends with its session: logout or a password change elsewhere stops it."""
    row = accounts.session_user(context(), user_id)
    return row is not None and row.session_version == version
