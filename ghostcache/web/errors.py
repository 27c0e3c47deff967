"""Turns domain errors and HTTP errors into the contract's JSON, or a flash for browsers."""

from __future__ import annotations

import logging

from flask import Flask, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, RequestTimeout

from ..extensions import db
from ..services.errors import DomainError
from .negotiation import json_error, wants_json
from .session import redirect_to_login, safe_next

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "login_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    410: "expired",
    413: "too_large",
    429: "rate_limited",
}


FORM_ECHO = ("username", "next", "invite")


def on_error(endpoint: str | None = None, template: str | None = None):
    """Where a browser goes when this view fails: a page re-rendered, or a redirect."""

    def mark(view):
        view.error_endpoint, view.error_template = endpoint, template
        return view

    return mark


def _html_error(error: DomainError):
    if error.code == "login_required":
        return redirect_to_login()
    view = current_app.view_functions.get(request.endpoint or "")
    template = getattr(view, "error_template", None)
    endpoint = getattr(view, "error_endpoint", None)
    if request.method == "GET" and not template:
        return render_template("error.html", status=error.status, message=error.message), error.status
    flash(error.message, "error")
    if template:
        # Only the fields the forms echo back; never passwords, never arbitrary names
        # (a field called "url_for" must not replace the template's own url_for).
        values = {k: request.form.get(k, "") for k in FORM_ECHO}
        return render_template(template, **values), error.status
    back = safe_next(request.form.get("next")) if endpoint else None  # the page it was on
    return redirect(back or (url_for(endpoint) if endpoint else request.path))


def handle_domain_error(error: DomainError):
    db.session.rollback()
    if wants_json():
        return json_error(error.code, error.message, error.status)
    return _html_error(error)


def handle_csrf_error(error: CSRFError):
    return handle_domain_error(
        DomainError("csrf_failed", "The form was stale or incomplete. Please try again.")
    )


def handle_http_error(error: HTTPException):
    status = error.code or 500
    code = _HTTP_CODES.get(status, "http_error")
    message = {
        404: "That page does not exist.",
        405: "That method is not allowed here.",
        413: "The request is too large.",
        429: "Too many requests. Please wait a little and try again.",
    }.get(status, error.description or "The request could not be handled.")
    if (
        isinstance(error, RequestEntityTooLarge | RequestTimeout)
        and error.description != type(error).description
    ):
        message = str(error.description)  # ours (web/edge.py) say which limit was passed
    elif isinstance(error, RequestEntityTooLarge):  # Werkzeug's own guards only the upload
        message = f"Files can be at most {current_app.config['GHOSTCACHE_MAX_UPLOAD_MB']} MB."
    domain = DomainError(code, message)
    domain.status = status
    response = make_response(handle_domain_error(domain))
    if "Allow" in dict(error.get_headers()):  # a 405 says which methods would do
        response.headers["Allow"] = dict(error.get_headers())["Allow"]
    return response


def handle_unexpected(error: Exception):
    # The route's pattern, not its path: a path names users and files (/chat/42).
    route = request.url_rule.rule if request.url_rule else "(no route)"
    log.exception("unhandled error on %s %s", request.method, route)
    db.session.rollback()
    message = "Something went wrong on our side. Nothing was changed."
    if wants_json():
        return json_error("internal_error", message, 500)
    return render_template("error.html", status=500, message=message), 500


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
