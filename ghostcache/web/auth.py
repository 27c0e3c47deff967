"""Accounts: register, login, logout, the account page and its changes, delete, CSRF token, help page."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, cast

import markdown
from flask import (
    Blueprint,
    after_this_request,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import generate_csrf
from werkzeug.exceptions import MethodNotAllowed

from ..services import accounts, conversations
from ..services.views import user_view
from .errors import on_error
from .inputs import invite_token, text_field
from .negotiation import back_to, respond, wants_json
from .runtime import context
from .session import end_session, login_required, me, safe_next, start_session

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.local import LocalProxy

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)
USAGE_GUIDE = Path(__file__).resolve().parent.parent / "templates" / "usage.md"


@bp.get("/")
def index():
    """Signed in: requests for me, then my conversations. Signed out: what GhostCache is."""
    if g.get("user") is None:
        return render_template("index.html")
    return render_template("index.html", **conversations.overview(context(), me()))


@bp.get("/help")
def help():
    return render_template("usage.html", content=_usage_html())


@lru_cache(maxsize=1)
def _usage_html() -> str:
    return markdown.markdown(USAGE_GUIDE.read_text(encoding="utf-8"), extensions=["tables"])


@bp.get("/csrf")
def csrf_token():
    return jsonify({"csrf_token": generate_csrf()})


@bp.get("/register")
def register_form():
    """The form; an invite link's token rides along in a hidden field."""
    return render_template("register.html", username="", invite=request.args.get("invite", ""))


@bp.post("/register")
@on_error(template="register.html")
def register():
    user = accounts.register(
        context(),
        text_field("username"),
        text_field("password"),
        text_field("d_pass"),
        invite_token(text_field("invite")),
    )
    return respond(
        user_view(user), 201, html=lambda: back_to("auth.login", "Account created. Please log in.")
    )


@bp.get("/login")
def login_form():
    return render_template("login.html", next=request.args.get("next", ""))


@bp.post("/login")
@on_error(template="login.html")
def login():
    ctx = context()
    outcome = accounts.login(ctx, text_field("username"), text_field("password"))
    if outcome.destroy_user_id is not None:
        _destroy_after_response(outcome.destroy_user_id)
    if outcome.user is None:
        raise accounts.invalid_credentials()
    start_session(outcome.user, ctx.now().timestamp())
    body = user_view(outcome.user) | {"csrf_token": generate_csrf()}
    target = safe_next(text_field("next")) or url_for("auth.index")
    return respond(body, 200, html=lambda: redirect(target))


def _destroy_after_response(user_id: int) -> None:
    """Delete the account once the answer has gone out, so its cost never shows in timing."""
    # cast: Flask types current_app as the Flask it proxies, hiding the proxy's own methods.
    app = cast("LocalProxy[Flask]", current_app)._get_current_object()

    def destroy() -> None:
        with app.app_context():
            try:
                accounts.delete_account(context(), user_id)
            except Exception:
                log.exception("deferred account deletion failed; the purge will retry")

    @after_this_request
    def schedule(response):
        response.call_on_close(destroy)
        return response


@bp.get("/logout")
def logout_page():
    """A GET changes nothing (a link on another site must not sign anyone out): a page
    with the button. Scripts POST."""
    if wants_json():
        raise MethodNotAllowed(valid_methods=["POST"])
    return render_template("logout.html")


@bp.post("/logout")
def logout():
    if g.get("user") is not None:
        accounts.end_all_sessions(context(), me())  # copies of the cookie die too
    end_session()
    return respond({"ok": True}, 200, html=lambda: back_to("auth.index", "You are logged out."))


@bp.get("/account")
@login_required
def account():
    """The account page; a script learns who it is signed in as."""
    user = {"id": g.user.id, "username": g.user.username}
    return respond({"user": user}, 200, html=lambda: render_template("account.html"))


@bp.post("/password")
@login_required
@on_error(endpoint="auth.account")
def change_password():
    ctx = context()
    user = accounts.change_password(ctx, me(), text_field("password"), text_field("new_password"))
    start_session(user, ctx.now().timestamp())  # this device stays signed in; others do not
    return respond(
        {"ok": True, "csrf_token": generate_csrf()},
        200,
        html=lambda: back_to("auth.account", "Password changed. Other devices are signed out."),
    )


@bp.post("/destruction_password")
@login_required
@on_error(endpoint="auth.account")
def change_destruction_password():
    """Sessions stay as they are (see accounts.change_destruction_password)."""
    accounts.change_destruction_password(context(), me(), text_field("password"), text_field("new_d_pass"))
    return respond({"ok": True}, 200, html=lambda: back_to("auth.account", "Destruction password changed."))


@bp.post("/delete_account")
@login_required
@on_error(endpoint="auth.account")
def delete_account():
    accounts.delete_account(context(), me())
    end_session()
    return respond(
        {"deleted": True},
        200,
        html=lambda: back_to("auth.index", "Your account and everything in it are gone."),
    )
