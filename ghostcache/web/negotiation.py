"""One place that decides between the JSON face and the HTML face."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, flash, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as BaseResponse

from .session import safe_next

# Paths with no HTML face at all, their errors included (a 405 for a POST): the probes.
JSON_ONLY_PATHS = frozenset({"/healthz", "/readyz"})


def wants_json() -> bool:
    """JSON body, or an Accept header that prefers JSON over HTML (a tie means HTML)."""
    if request.is_json or request.path in JSON_ONLY_PATHS:
        return True
    accept = request.accept_mimetypes
    return accept["application/json"] > accept["text/html"]


def respond(data: object, status: int, html: Callable[[], ResponseReturnValue]) -> ResponseReturnValue:
    """JSON for scripts; for browsers whatever `html` makes (a page or a redirect)."""
    if wants_json():
        response = jsonify(data)
        response.status_code = status
        return response
    return html()


def back_to(endpoint: str, message: str | None = None, **values: Any) -> BaseResponse:
    """Flash a success message and redirect (post/redirect/get)."""
    if message:
        flash(message, "success")
    return redirect(url_for(endpoint, **values))


def back_where_asked(endpoint: str, message: str) -> BaseResponse:
    """back_to, unless the form names the page it was on (a local path in `next`): a
    request answered on the home page without JavaScript returns to the home page."""
    flash(message, "success")
    return redirect(safe_next(request.form.get("next")) or url_for(endpoint))


def json_error(code: str, message: str, status: int) -> Response:
    response = jsonify({"error": code, "message": message})
    response.status_code = status
    return response
