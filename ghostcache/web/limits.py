"""Rate limits, all in one table, applied by endpoint when the app is built.

Counters live in memory by default (per process) or in Redis when
GHOSTCACHE_REDIS_URL is set (shared by every process and machine); both
count atomically. GHOSTCACHE_RATELIMIT=off switches every limit off.
"""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Flask, current_app, g, request
from flask.typing import RouteCallable
from flask_limiter import Limiter

from ..settings import Settings, SettingsError

# name -> (default limit, endpoints it guards, what it counts by). "address" is the
# client's address; behind tor and nginx (onion mode) that is tor's per-circuit address.
# "username" and "everyone" rest on no address at all: a visitor who makes new circuits
# (or owns many addresses) still shares them.
POLICY: dict[str, tuple[str, tuple[str, ...], str]] = {
    "login": ("10/minute", ("auth.login",), "address+username"),
    "login_address": ("60/minute", ("auth.login",), "address"),
    "login_username": ("20/hour", ("auth.login",), "username"),
    "register": ("10/hour", ("auth.register",), "address"),
    "register_global": ("100/hour", ("auth.register",), "everyone"),
    "invite": ("10/hour", ("invites.create",), "user"),
    "connect": ("30/hour", ("connections.connect",), "user"),
    "send": ("120/minute", ("chat.send", "chat.post"), "user"),
    "upload": ("30/hour", ("files.upload",), "user"),
    "password": (
        "10/hour",
        (
            "auth.change_password",
            "auth.change_destruction_password",
            "e2ee.publish_identity",
            "e2ee.reset_identity",
            "e2ee.put_backup",
        ),
        "user",
    ),
}
# Blueprints never counted nor refused: load balancers' probes (/healthz, /readyz).
EXEMPT = ("health",)


def client_address() -> str:
    """The client's address (ProxyFix has already applied trusted X-Forwarded-For)."""
    return request.remote_addr or "unknown"


def _tagged(value: str) -> str:
    """A keyed hash instead of the value: counters (in memory, or in Redis, which may
    save them to disk) never hold a username or a client address in the clear."""
    return current_app.extensions["ghostcache"].tags.tag(value)[:32]


def _username() -> str:
    try:
        body = request.get_json(silent=True) if request.is_json else request.form
        # request.form is an ImmutableMultiDict, itself a dict; a JSON body may be any value.
        name = body.get("username") if isinstance(body, dict) else ""
    except Exception:  # a malformed body is the view's problem, not the limiter's
        name = ""
    return name.strip().lower()[:64] if isinstance(name, str) else ""


def _user_or_address() -> str:
    user = g.get("user")
    return f"user:{user.id}" if user is not None else f"addr:{_tagged(client_address())}"


KEYS = {
    "address": lambda: f"addr:{_tagged(client_address())}",
    "address+username": lambda: f"addr:{_tagged(client_address())}|name:{_tagged(_username())}",
    "username": lambda: f"name:{_tagged(_username())}",
    "everyone": lambda: "everyone",
    "user": _user_or_address,
}


def init_limits(app: Flask, settings: Settings) -> Limiter:
    """Create this app's limiter and attach every limit of POLICY to its endpoints.

    Call after the before_request hook that sets g.user, so per-user keys work.
    """
    limiter = Limiter(
        key_func=KEYS["address"],
        app=app,
        storage_uri=settings.redis_url or "memory://",
        # Redis away: each process counts on its own (a warning is logged) until it is
        # back, rather than every limited route failing.
        in_memory_fallback_enabled=bool(settings.redis_url),
        enabled=settings.ratelimit,
        headers_enabled=True,
        retry_after="delta-seconds",
        strategy="moving-window",
        key_prefix="ghostcache",
    )
    unknown = sorted(set(settings.ratelimits) - set(POLICY))
    if unknown:
        raise SettingsError(
            f"Setting GHOSTCACHE_RATELIMITS names {', '.join(unknown)}. Known limits: {', '.join(POLICY)}."
        )
    for name, (default, endpoints, counted_by) in POLICY.items():
        value = settings.ratelimits.get(name, default)
        shared = limiter.shared_limit(value, scope=name, key_func=KEYS[counted_by])
        for endpoint in endpoints:  # the returned wrapper does the counting: keep it
            # cast: the decorator returns what it wraps, but its overloads cannot say so for
            # Flask's RouteCallable, a union of sync and async view types.
            app.view_functions[endpoint] = cast(RouteCallable, shared(app.view_functions[endpoint]))
    for blueprint in EXEMPT:
        if blueprint in app.blueprints:
            # cast: app.blueprints is typed with Flask's sans-IO base class; it holds flask.Blueprint.
            limiter.exempt(cast(Blueprint, app.blueprints[blueprint]))
    app.extensions["ghostcache_limiter"] = limiter
    return limiter
