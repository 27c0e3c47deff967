"""Building a GhostCache app: `create_app` is the only place things are wired."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import cast

from flask import Flask, g
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.proxy_fix import ProxyFix

from .blobs import blob_store_for
from .clock import Clock
from .cpu import CpuPool
from .crypto import KeyedTags, PasswordHashing
from .database import MIGRATIONS, configure_postgres, configure_sqlite, engine_options, guard_writes
from .events import broker_for
from .extensions import csrf, db, migrate
from .filemodes import precreate_sqlite_file, prepare_data_dir
from .keyfiles import load_master_keyring, load_secret_key
from .services.context import Context, Runtime
from .settings import Settings, check_cluster, check_folders, check_onion, load_settings


@contextmanager
def service_context(app: Flask) -> Iterator[Context]:
    """A service Context outside a request (commands, timers, stream looks), in its own app context."""
    with app.app_context():
        yield Context(db=db.session, rt=app.extensions["ghostcache"])


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> Flask:
    """Build a GhostCache app: settings, then extensions, then blueprints."""
    settings = settings or load_settings()
    check_folders(settings)  # again: tests and commands build Settings without load_settings
    check_cluster(settings)
    check_onion(settings)
    prepare_data_dir(settings.data_dir)
    precreate_sqlite_file(settings.sqlalchemy_url)  # before the engine first connects
    app = Flask("ghostcache")  # the package: templates and static files live there
    _configure(app, settings)
    app.extensions["ghostcache"] = _runtime(settings, clock or Clock())
    _init_extensions(app, settings)
    _register_web(app, settings)
    return app


def _configure(app: Flask, settings: Settings) -> None:
    app.config.update(
        SECRET_KEY=load_secret_key(settings).reveal(),
        SQLALCHEMY_DATABASE_URI=settings.sqlalchemy_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings.sqlalchemy_url),
        # The multipart form around the file may add a little to the request.
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + 1024 * 1024,
        GHOSTCACHE_MAX_UPLOAD_MB=settings.max_upload_mb,
        WTF_CSRF_TIME_LIMIT=None,  # valid for the session's life: no expired forms in open tabs
        WTF_CSRF_SSL_STRICT=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(days=settings.session_max_days),
    )
    # Keep the contract's field order. cast: app.json is typed as the JSONProvider base
    # class, but Flask's own DefaultJSONProvider (which has sort_keys) is what it holds.
    cast(DefaultJSONProvider, app.json).sort_keys = False
    logging.getLogger("ghostcache").setLevel(settings.log_level)
    # The limiter's warnings (Redis gone: counting per process) but not its INFO lines,
    # which name the counter (a keyed hash of an address or a user) of every refusal.
    logging.getLogger("flask-limiter").setLevel(logging.WARNING)


def _runtime(settings: Settings, clock: Clock) -> Runtime:
    return Runtime(
        settings=settings,
        clock=clock,
        keyring=load_master_keyring(settings),
        passwords=PasswordHashing(settings.argon2_profile),
        blobs=blob_store_for(settings),
        broker=broker_for(settings),
        cpu=CpuPool(settings.threads),
        tags=KeyedTags(load_secret_key(settings)),
    )


def _init_extensions(app: Flask, settings: Settings) -> None:
    db.init_app(app)
    with app.app_context():
        guard_writes(db.engine)
    migrate.init_app(app, db, directory=MIGRATIONS, render_as_batch=True)
    csrf.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            configure_sqlite(db.engine)
        elif db.engine.dialect.name == "postgresql":
            configure_postgres(db.engine)


def _register_web(app: Flask, settings: Settings) -> None:
    from .web import auth, chat, connections, docs, e2ee, files, health, invites, search
    from .web.assets import init_assets
    from .web.edge import init_edge
    from .web.errors import register_error_handlers
    from .web.headers import init_headers
    from .web.limits import init_limits
    from .web.session import load_current_user

    if settings.trusted_proxies:
        n = settings.trusted_proxies
        # Flask's documented way to add WSGI middleware; mypy forbids assigning to a method.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n
        )
    for module in (auth, invites, connections, chat, e2ee, search, files, docs, health):
        app.register_blueprint(module.bp)
    register_error_handlers(app)
    init_assets(app)
    app.before_request(load_current_user)
    init_limits(app, settings)  # after load_current_user: per-user limits need g.user
    init_headers(app, settings)
    init_edge(app, settings)  # outermost: body limits apply before Flask reads anything

    @app.context_processor
    def _page_globals() -> dict:
        return {"current_user": g.get("user"), "invite_only": settings.invite_only}
