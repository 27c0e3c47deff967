"""The WSGI entry point for production servers: `ghostcache.wsgi:app`."""

from . import create_app, maintenance_timer

app = create_app()
maintenance_timer.start(app)
