"""Who is asking: the session cookie, checked against the user's session version."""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from urllib.parse import urlsplit

from flask import g, redirect, request, session, url_for

from ..services import accounts
from ..services.errors import Unauthorized
from .runtime import context, runtime

# Endpoints that never look at the session (no database read) and never set its cookie.
SESSIONLESS = frozenset({"health.healthz", "health.readyz"})


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str


def load_current_user() -> None:
    """before_request: set g.user from the session, or None (ending stale sessions)."""
    g.user = None
    uid, version = session.get("uid"), session.get("sv")
    if uid is None or request.endpoint == "static":  # stylesheets need no database
        return
    if request.endpoint in SESSIONLESS:  # a probe must not depend on the session's row
        return
    ctx = context()
    with ctx.read():  # one short read: the view starts with no transaction open
        row = accounts.session_user(ctx, uid)
    # An inactive account is as good as deleted: an old session must not revive it.
    if (
        row is None
        or row.session_version != version
        or accounts.is_inactive(ctx, row)
        or _expired(ctx.now().timestamp())
    ):
        session.clear()
        return
    g.user = CurrentUser(id=row.id, username=row.username)
    accounts.touch(ctx, row.id, row.last_login)


def _expired(now: float) -> bool:
    """Idle and absolute session lifetimes; refreshes the last-seen mark once a minute."""
    settings = runtime().settings
    started, seen = session.get("t0", 0), session.get("seen", 0)
    if now - started > settings.session_max_days * 86400:
        return True
    if now - seen > settings.session_idle_hours * 3600:
        return True
    if now - seen > 60:
        session["seen"] = int(now)
    return False


def start_session(user, now: float) -> None:
    """A fresh session for a fresh login (the old one, and its CSRF token, are dropped)."""
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    session["sv"] = user.session_version
    session["t0"] = session["seen"] = int(now)


def end_session() -> None:
    session.clear()


def me() -> int:
    return g.user.id


def login_required(view):
    """401 login_required for JSON; a redirect to the login page for browsers."""

    @wraps(view)
    def guarded(*args, **kwargs):
        if g.get("user") is None:
            raise Unauthorized("login_required", "Please log in first.")
        return view(*args, **kwargs)

    return guarded


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths may be redirected to after login."""
    if not target:
        return None
    try:
        parts = urlsplit(target)
    except ValueError:  # e.g. "//[" is not even a URL
        return None
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None  # backslashes and control characters make a header or a path ambiguous
    return target


def login_url_for_current() -> str:
    return url_for("auth.login", next=request.full_path.rstrip("?"))


def redirect_to_login():
    return redirect(login_url_for_current())
