"""Security headers on every response, and cookies marked Secure over HTTPS.

In onion mode (GHOSTCACHE_ONION) no response carries HSTS: an .onion served over
plain http must not get it, and behind https it would pin a name the operator may
not keep. The session cookie is Secure only when the request really is HTTPS, as
on the clearnet: an http .onion is reached through tor's own end-to-end encryption,
and a Secure cookie over plain http is dropped by every client but Tor Browser.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin

from ..settings import Settings
from .session import SESSIONLESS

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'self'",
    ]
)

STATIC_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
HSTS = "max-age=63072000; includeSubDomains"


def security_headers(hsts: bool) -> Callable[[Response], Response]:
    """The after_request hook: the same protective headers on pages, JSON, errors and
    files; HSTS over HTTPS when `hsts`."""

    def add(response: Response) -> Response:
        return add_security_headers(response, hsts)

    return add


def add_security_headers(response: Response, hsts: bool = True) -> Response:
    for name, value in STATIC_HEADERS.items():
        response.headers.setdefault(name, value)
    if hsts and request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if request.endpoint != "static":
        # Everything but the stylesheet and script is private to the person asking.
        response.headers["Cache-Control"] = "no-store"
        response.headers.setdefault("Pragma", "no-cache")
    return response


class SessionCookies(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def should_set_cookie(self, app: Flask, session: SessionMixin) -> bool:
        """Never on the probes: a load balancer keeps no session, and a browser's is not
        refreshed by them."""
        if request.endpoint in SESSIONLESS:
            return False
        return super().should_set_cookie(app, session)


def init_headers(app: Flask, settings: Settings) -> None:
    app.session_interface = SessionCookies()
    app.after_request(security_headers(hsts=not settings.onion))
