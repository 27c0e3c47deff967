"""Access to the app's Runtime and a per-request service Context."""

from __future__ import annotations

from flask import current_app

from ..extensions import db
from ..services.context import Context, Runtime


def runtime() -> Runtime:
    return current_app.extensions["ghostcache"]


def context() -> Context:
    return Context(db=db.session, rt=runtime())
