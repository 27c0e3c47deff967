"""Finding people by name."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from ..services import search as search_service
from .negotiation import respond
from .runtime import context
from .session import login_required, me

bp = Blueprint("search", __name__)


@bp.get("/search")
@login_required
def search():
    found = search_service.search(context(), me(), request.args.get("q"))
    return respond(found, 200, html=lambda: render_template("search.html", **found))
