"""Files: list, upload (streamed and encrypted on arrival), download, share, delete."""

from __future__ import annotations

import re
from urllib.parse import quote

from flask import Blueprint, render_template, request, send_file
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from ..extensions import csrf
from ..services import files
from ..services.errors import Invalid
from .errors import on_error
from .inputs import text_field
from .multipart import MultipartStream
from .negotiation import back_to, respond
from .runtime import context, runtime
from .session import login_required, me

bp = Blueprint("files", __name__)
# RFC 2046's boundary characters; longer than its 70 because some clients (Werkzeug's
# test client among them) make 71-72, and refusing a real client helps nobody.
BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,200}$")


@bp.get("/files")
@login_required
def index():
    found = files.list_files(context(), me())
    return respond(found, 200, html=lambda: render_template("files.html", **found))


@bp.get("/file/upload")
@login_required
def upload_form():
    return render_template(
        "upload.html",
        max_upload_mb=runtime().settings.max_upload_mb,
        default_expiry_days=files.DEFAULT_EXPIRY_DAYS,
    )


@bp.post("/file/upload")
@csrf.exempt  # checked below without touching request.form, which would spool the file
@login_required
@on_error()
def upload():
    header_token = request.headers.get("X-CSRFToken")
    if header_token:
        _check_csrf(header_token)
    form = _multipart()
    if not form.find_file("file") or not form.filename:
        raise Invalid("missing_file", "Choose a file to upload.")
    ctx = context()  # no transaction is open here: the body streams in with none held
    with files.incoming_blob(ctx, form) as blob:
        fields = form.finish()
        if not header_token:
            _check_csrf(fields.get("csrf_token"))
        stored = files.record_upload(ctx, me(), blob, form.filename, fields.get("expiry_days"))
    return respond(stored, 201, html=lambda: _upload_done(stored))


def _upload_done(stored: dict):
    page = render_template("upload_done.html", file=stored, key=stored["key"])
    return page, 201


def _multipart() -> MultipartStream:
    boundary = request.mimetype_params.get("boundary", "")
    if request.mimetype != "multipart/form-data" or not BOUNDARY.match(boundary):
        raise Invalid("missing_file", "Send the file as multipart/form-data in the field 'file'.")
    return MultipartStream(request.stream, boundary)


def _check_csrf(token: str | None) -> None:
    try:
        validate_csrf(token)
    except ValidationError as exc:
        raise CSRFError(str(exc)) from None


@bp.get("/file/<int:file_id>")
@login_required
def download(file_id: int):
    name, blob = files.open_download(context(), me(), file_id)
    response = send_file(blob, mimetype="application/octet-stream", max_age=0, etag=False)
    response.headers["Content-Disposition"] = attachment_header(name)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/file/<int:file_id>/view")
@login_required
def view(file_id: int):
    """The file's page: its facts, the encrypted download, and decryption in the browser."""
    found = files.file_details(context(), me(), file_id)
    return respond(found, 200, html=lambda: render_template("file.html", file=found))


def attachment_header(filename: str) -> str:
    """RFC 6266: an ASCII fallback name plus the exact UTF-8 name in filename*."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@bp.post("/file/<int:file_id>/delete")
@login_required
@on_error(endpoint="files.index")
def delete(file_id: int):
    files.delete_file(context(), me(), file_id)
    return respond({"deleted": True}, 200, html=lambda: back_to("files.index", "File deleted."))


@bp.post("/file/<int:file_id>/share")
@login_required
@on_error(endpoint="files.index")
def share(file_id: int):
    grant = files.share(context(), me(), file_id, text_field("username"))
    message = f"Shared with {grant['user']['username']}."
    return respond(grant, 201, html=lambda: back_to("files.index", message))
