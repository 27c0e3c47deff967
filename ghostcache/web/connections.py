"""Contact requests: ask, list, accept, deny."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from ..services import connections
from .errors import on_error
from .inputs import text_field
from .negotiation import back_to, respond
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
    return respond(conn, 200, html=lambda: back_to("connections.index", message))


@bp.post("/connect/deny/<int:conn_id>")
@login_required
@on_error(endpoint="connections.index")
def deny(conn_id: int):
    conn = connections.deny(context(), me(), conn_id)
    return respond(conn, 200, html=lambda: back_to("connections.index", "Request denied."))
