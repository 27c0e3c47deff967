"""Chat: send, poll, history page, read markers, the conversation list, and the live
Server-Sent Events stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial

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

from ..app import service_context
from ..services import chat, conversations, e2ee, live
from .disconnect import watch_disconnect
from .errors import on_error
from .inputs import raw_field
from .negotiation import respond
from .origin import from_elsewhere, refuse_from_elsewhere, require_csrf_header
from .runtime import context, runtime
from .session import login_required, me

bp = Blueprint("chat", __name__)


@bp.post("/chat/send")
@login_required
@on_error(endpoint="connections.index")
def send():
    sent = chat.send(context(), me(), raw_field("receiver_id"), raw_field("message"), raw_field("envelope"))
    return respond(sent, 201, html=lambda: redirect(url_for("connections.index")))


@bp.route("/chat/poll", methods=["GET", "POST"])
@login_required
def poll():
    if request.method != "POST":  # GET or HEAD; a POST was checked like every POST
        require_csrf_header()  # it marks messages delivered: no link on another site may do that
    return respond(chat.poll(context(), me()), 200, html=lambda: redirect(url_for("connections.index")))


@bp.get("/chat/<int:other_id>")
@login_required
def page(other_id: int):
    args = request.args
    # Opened from another site's link, the page shows the messages but marks none
    # delivered, nor read.
    ours = not from_elsewhere()
    found = chat.history(context(), me(), other_id, args.get("before"), args.get("limit"), claim=ours)
    return respond(found, 200, html=lambda: _chat_page(found, shown_is_read=ours))


def _chat_page(found: dict, shown_is_read: bool) -> str:
    """The page; what a person sees on it counts as read (scripts POST .../read instead).
    Beside the chat, the conversation list, with the counts as they are once this is read
    (without previews: the list beside a chat shows none, and each costs a decryption)."""
    messages = found["messages"]
    if shown_is_read and messages:
        conversations.mark_read(context(), me(), found["with"]["id"], messages[-1]["id"])
    older_url = None
    if messages and len(messages) >= chat.DEFAULT_LIMIT:
        older_url = url_for("chat.page", other_id=found["with"]["id"], before=messages[0]["id"])
    listed = conversations.overview(context(), me(), with_previews=False)["conversations"]
    return render_template(
        "chat.html",
        with_user=found["with"],
        messages=messages,
        older_url=older_url,
        page_size=chat.DEFAULT_LIMIT,
        conversations=listed,
        e2ee=e2ee.chat_state(context(), me(), found["with"]["id"]),
    )


@bp.get("/chat/<int:other_id>/latest")
@login_required
def latest(other_id: int):
    """The page's "Check for new messages" without JavaScript: a fresh load of the chat,
    scrolled to its newest messages (a link from the page to itself plus a fragment
    would only scroll)."""
    return redirect(_at_latest(other_id))


def _at_latest(other_id: int) -> str:
    return url_for("chat.page", other_id=other_id, _anchor="latest")


@bp.post("/chat/<int:other_id>/read")
@login_required
@on_error(endpoint="auth.index")
def read(other_id: int):
    marked = conversations.mark_read(context(), me(), other_id, raw_field("upto"))
    return respond(marked, 200, html=lambda: redirect(url_for("chat.page", other_id=other_id)))


@bp.get("/conversations")
@login_required
def conversation_list():
    found = conversations.overview(context(), me(), with_previews=request.args.get("preview") != "0")
    return respond(found, 200, html=lambda: render_template("index.html", **found))


@bp.post("/chat/<int:other_id>")
@login_required
@on_error()
def post(other_id: int):
    sent = chat.send(context(), me(), other_id, raw_field("message"), raw_field("envelope"))
    return respond(sent, 201, html=lambda: redirect(_at_latest(other_id)))


@bp.get("/chat/stream")
@login_required
def stream():
    refuse_from_elsewhere()  # only our pages open it, and it marks messages delivered
    rt = runtime()
    sub = rt.broker.subscribe(me())
    stop_watching = watch_disconnect(request.environ, sub)
    app = current_app._get_current_object()
    # Each look at the database gets a fresh app context: the request's ends with the view.
    events = live.follow(partial(service_context, app), rt, sub, session["sv"], _last_event_id())
    response = Response(
        _frames(events),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

    @response.call_on_close  # however the stream ends, even before its first byte
    def _closed() -> None:
        stop_watching()
        rt.broker.unsubscribe(sub)

    return response


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def _frames(events: Iterator[live.StreamEvent]) -> Iterator[str]:
    """Server-Sent Events frames."""
    yield "retry: 3000\n: connected\n\n"  # an early byte so proxies do not buffer
    for event in events:
        if event.kind == "ping":
            yield ": ping\n\n"
        elif event.id is None:  # not a message: no id, so Last-Event-ID stays a message id
            yield f"event: {event.kind}\ndata: {json.dumps(event.data)}\n\n"
        else:
            yield f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(event.data)}\n\n"
