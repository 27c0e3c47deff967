"""The WSGI entry point for production servers: `ghostcache.wsgi:app`."""

from . import create_app, lifecycle, maintenance_timer

app = create_app()
maintenance_timer.start(app)
_broker = app.extensions["ghostcache"].broker
_broker.start()
lifecycle.on_shutdown(lambda: _broker.close_all("the server is restarting"))
