"""Invites: a member makes single-use registration links, sees the open ones, revokes them."""

from __future__ import annotations

from flask import Blueprint, render_template, url_for

from ..services import invites
from ..services.views import iso
from .errors import on_error
from .inputs import raw_field
from .negotiation import back_to, respond
from .runtime import context
from .session import login_required, me

bp = Blueprint("invites", __name__)


@bp.get("/invites")
@login_required
def index():
    found = invites.list_open(context(), me())
    return respond(found, 200, html=lambda: _page(found))


@bp.post("/invites")
@login_required
@on_error(endpoint="invites.index")
def create():
    ctx = context()
    made = invites.create(ctx, me(), invites.parse_days(raw_field("days")))
    link = url_for("auth.register_form", invite=made.token, _external=True)
    body = {"id": made.id, "link": link, "expires_at": iso(made.expires_at)}
    # The page itself, not a redirect: the link exists only in this answer.
    return respond(body, 201, html=lambda: (_page(invites.list_open(ctx, me()), created=body), 201))


@bp.post("/invites/<int:invite_id>/revoke")
@login_required
@on_error(endpoint="invites.index")
def revoke(invite_id: int):
    invites.revoke(context(), me(), invite_id)
    return respond({"revoked": True}, 200, html=lambda: back_to("invites.index", "Invite revoked."))


def _page(found: dict, created: dict | None = None):
    return render_template(
        "invites.html",
        invites=found["invites"],
        created=created,
        default_days=invites.DEFAULT_DAYS,
        max_days=invites.MAX_DAYS,
        max_open=invites.MAX_OPEN,
    )
