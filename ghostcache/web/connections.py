"""Contact requests: ask, list, withdraw, accept, deny; removing contacts; blocking."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from ..services import connections
from .errors import on_error
from .inputs import text_field
from .negotiation import back_to, back_where_asked, respond
from .runtime import context
from .session import login_required, me

bp = Blueprint("connections", __name__)


@bp.get("/connect")
@login_required
def connect_form():
    return render_template("connect.html", username=request.args.get("username", ""))


@bp.post("/connect")
@login_required
@on_error(endpoint="connections.connect_form")
def connect():
    conn = connections.request_connection(context(), me(), text_field("username"))
    message = f"Request sent to {conn['user']['username']}."
    return respond(conn, 201, html=lambda: back_to("connections.index", message))


@bp.get("/connections")
@login_required
def index():
    lists = connections.list_connections(context(), me())
    return respond(lists, 200, html=lambda: render_template("connections.html", **lists))


@bp.post("/connect/accept/<int:conn_id>")
@login_required
@on_error(endpoint="connections.index")
def accept(conn_id: int):
    conn = connections.accept(context(), me(), conn_id)
    message = f"You and {conn['user']['username']} are now connected."
    return respond(conn, 200, html=lambda: back_where_asked("connections.index", message))


@bp.post("/connect/deny/<int:conn_id>")
@login_required
@on_error(endpoint="connections.index")
def deny(conn_id: int):
    conn = connections.deny(context(), me(), conn_id)
    return respond(conn, 200, html=lambda: back_where_asked("connections.index", "Request denied."))


@bp.post("/connect/withdraw/<int:conn_id>")
@login_required
@on_error(endpoint="connections.index")
def withdraw(conn_id: int):
    other = connections.withdraw(context(), me(), conn_id)
    message = f"Request to {other['username']} withdrawn."
    return respond({"withdrawn": True}, 200, html=lambda: back_to("connections.index", message))


@bp.post("/contacts/<int:user_id>/remove")
@login_required
@on_error(endpoint="connections.index")
def remove(user_id: int):
    removed = connections.remove_contact(context(), me(), user_id)
    message = f"{removed['user']['username']} removed; your conversation is deleted."
    return respond(removed, 200, html=lambda: back_to("connections.index", message))


@bp.post("/block")
@login_required
@on_error(endpoint="connections.blocks")
def block():
    blocked = connections.block(context(), me(), text_field("username"))
    message = f"{blocked['blocked']['username']} is blocked."
    return respond(blocked, 200, html=lambda: back_to("connections.blocks", message))


@bp.get("/blocks")
@login_required
def blocks():
    found = connections.list_blocked(context(), me())
    return respond(found, 200, html=lambda: render_template("blocks.html", **found))


@bp.post("/blocks/<int:user_id>/unblock")
@login_required
@on_error(endpoint="connections.blocks")
def unblock(user_id: int):
    unblocked = connections.unblock(context(), me(), user_id)
    message = f"{unblocked['user']['username']} is no longer blocked."
    return respond(unblocked, 200, html=lambda: back_to("connections.blocks", message))
