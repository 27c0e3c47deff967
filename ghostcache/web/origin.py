"""Proof that a request comes from our own pages or a script, for reads that change state.

POST routes get this from the CSRF token (flask-wtf). A few GETs change state too
(marking messages delivered); a link or an <img> on another site must not be able
to do that, so they ask for proof a cross-site request cannot give: the CSRF token
in a header, or the browser's own Fetch Metadata (`Sec-Fetch-Site`, which pages
cannot set).
"""

from __future__ import annotations

from flask import request
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from ..services.errors import Forbidden

FOREIGN = {"cross-site", "same-site"}  # same-site: a sibling host, not this origin


def check_csrf(token: str | None) -> None:
    """Raise the app's csrf_failed answer unless `token` is this session's CSRF token."""
    try:
        validate_csrf(token)
    except ValidationError as exc:
        raise CSRFError(str(exc)) from None


def require_csrf_header() -> None:
    """A GET that changes state: the token must come as the X-CSRFToken header."""
    check_csrf(request.headers.get("X-CSRFToken"))


def from_elsewhere() -> bool:
    """True when the browser says another site started this request."""
    return request.headers.get("Sec-Fetch-Site", "").strip().lower() in FOREIGN


def refuse_from_elsewhere() -> None:
    """For routes only our own pages open (the event stream): 403 when another site did."""
    if from_elsewhere():
        raise Forbidden("cross_site", "This address opens only from GhostCache's own pages.")
