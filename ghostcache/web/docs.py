"""The machine-readable contract: GET /openapi.json."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..openapi import openapi_document

bp = Blueprint("docs", __name__)


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())
