"""End-to-end encryption (GCE1): identities, the sealed backup, turning a conversation
end-to-end encrypted (JSON only: the browser's pages call these from script), and the two
HTML pages whose scripts do so: setting up encryption, and a contact's safety number."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template

from ..services import e2ee
from .inputs import raw_field, text_field
from .runtime import context
from .session import login_required, me

bp = Blueprint("e2ee", __name__)


@bp.post("/e2ee/identity")
@login_required
def publish_identity():
    return jsonify(e2ee.publish_identity(context(), me(), raw_field("pub"))), 201


@bp.post("/e2ee/identity/reset")
@login_required
def reset_identity():
    return jsonify(e2ee.reset_identity(context(), me(), raw_field("pub"), text_field("password")))


@bp.get("/e2ee/identity/<int:user_id>")
@login_required
def identity(user_id: int):
    return jsonify(e2ee.identity_of(context(), me(), user_id))


@bp.get("/e2ee/backup")
@login_required
def backup():
    return jsonify(e2ee.get_backup(context(), me()))


@bp.put("/e2ee/backup")
@login_required
def put_backup():
    given = e2ee.BackupInput(raw_field("ctr"), raw_field("salt"), raw_field("iv"), raw_field("blob"))
    return jsonify(e2ee.put_backup(context(), me(), given, text_field("password")))


@bp.post("/chat/<int:other_id>/e2ee")
@login_required
def enable(other_id: int):
    return jsonify(e2ee.enable(context(), me(), other_id))


@bp.get("/e2ee")
@login_required
def setup_page():
    """Set up (or restore) this browser's identity: all of it happens in static/e2ee-setup.js."""
    return render_template("e2ee.html")


@bp.get("/contacts/<int:user_id>/safety")
@login_required
def safety_page(user_id: int):
    """The safety number with a contact, computed in the page (static/e2ee-safety.js)."""
    people = e2ee.safety_peers(context(), me(), user_id)
    return render_template("safety.html", me_user=people["me"], peer=people["with"])
