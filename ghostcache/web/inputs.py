"""Reading request inputs: from the JSON body when there is one, else the form."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flask import request

from ..services.errors import Invalid


def _body() -> dict:
    if not request.is_json:
        return {}
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting: not a body any route takes
        body = None
    if not isinstance(body, dict):
        raise Invalid("invalid_json", "The request body must be a JSON object.")
    return body


def raw_field(name: str) -> object:
    """The value as sent (JSON may send numbers); None when absent."""
    value = _body().get(name) if request.is_json else request.form.get(name)
    if isinstance(value, str) and not _is_text(value):
        raise Invalid("invalid_field", f"The field '{name}' is not valid text.")
    return value


def _is_text(value: str) -> bool:
    """JSON can smuggle lone surrogates (\\ud800), which no UTF-8 text contains."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_field(name: str) -> str | None:
    """A string field; a JSON value of another type is 400 invalid_field."""
    value = raw_field(name)
    if value is None or isinstance(value, str):
        return value
    raise Invalid("invalid_field", f"The field '{name}' must be a string.")


def invite_token(value: str | None) -> str | None:
    """An invite as typed into the form: the token, or the whole link pasted."""
    value = (value or "").strip()
    if "invite=" in value:
        found = parse_qs(urlsplit(value).query or value).get("invite") or [""]
        value = found[0]
    return value or None
