"""Files: list, upload (streamed and encrypted on arrival), download, share, unshare,
hide, delete."""

from __future__ import annotations

import re
import shlex
from datetime import datetime, timedelta
from urllib.parse import quote

from flask import Blueprint, render_template, request, send_file, url_for

from ..extensions import csrf
from ..services import files
from ..services.errors import Invalid
from .errors import on_error
from .inputs import text_field
from .multipart import MultipartStream
from .negotiation import back_to, respond
from .origin import check_csrf
from .runtime import context, runtime
from .session import login_required, me

bp = Blueprint("files", __name__)
HOUR, DAY = 3600, 86400  # seconds
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
    form = _upload_source()
    ctx = context()  # no transaction is open here: the body streams in with none held
    with files.incoming_blob(ctx, form) as blob:
        fields = form.finish()
        stored = files.record_upload(ctx, me(), blob, form.filename, fields.get("expiry_days"))
    return respond(stored, 201, html=lambda: _upload_done(stored))


def _upload_source() -> MultipartStream:
    """The upload's body, stopped where its file part begins, once the CSRF token has
    passed: the X-CSRFToken header before the body is read, else the csrf_token field,
    which must come before the file (browsers send fields in form order), so that no
    byte of a forged upload is encrypted or stored."""
    header_token = request.headers.get("X-CSRFToken")
    if header_token:
        check_csrf(header_token)
    form = _multipart()
    found = form.find_file("file")
    if not header_token:
        check_csrf(form.fields.get("csrf_token"))
    if not found or not form.filename:
        raise Invalid("missing_file", "Choose a file to upload.")
    return form


def _upload_done(stored: dict):
    page = render_template(
        "upload_done.html",
        file=stored,
        key=stored["key"],
        key_link=key_link(stored["id"], stored["key"]),
        decrypt_command=decrypt_command(stored["filename"]),
    )
    return page, 201


def key_link(file_id: int, key: str) -> str:
    """The file's page with its key in the fragment (`/file/<id>/view#key=...`): what the
    uploader sends the recipient. Browsers never send a fragment to the server; the page's
    script takes the key from it and clears it from the address bar."""
    return url_for("files.view", file_id=file_id, _anchor="key=" + key, _external=True)


def decrypt_command(filename: str) -> str:
    """The `age -d` command that decrypts the download of `filename`, safe to paste into
    a POSIX shell: every argument quoted (shlex.quote), and a name starting with '-'
    prefixed with './' so that age cannot take it for an option."""
    out = "./" + filename if filename.startswith("-") else filename
    return shlex.join(["age", "-d", "-i", "key.txt", "-o", out, out + ".age"])


def client_download_command(file_id: int, filename: str) -> str:
    """The `ghostcache-client download` command (docs/CLIENT.md) that fetches and decrypts
    the file in one step, the key read from key.txt; quoted like decrypt_command."""
    out = "./" + filename if filename.startswith("-") else filename
    server = url_for("auth.index", _external=True).rstrip("/")
    command = ["ghostcache-client", "--server", server, "download", str(file_id), "--key", "-", "-o", out]
    return shlex.join(command) + " < key.txt"


def _multipart() -> MultipartStream:
    boundary = request.mimetype_params.get("boundary", "")
    if request.mimetype != "multipart/form-data" or not BOUNDARY.match(boundary):
        raise Invalid("missing_file", "Send the file as multipart/form-data in the field 'file'.")
    return MultipartStream(request.stream, boundary)


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
    return respond(found, 200, html=lambda: _file_page(found))


def _file_page(found: dict) -> str:
    """With the commands that decrypt it outside the browser (for pages without scripts)."""
    return render_template(
        "file.html",
        file=found,
        decrypt_command=decrypt_command(found["filename"]),
        client_command=client_download_command(found["id"], found["filename"]),
    )


@bp.app_template_filter("time_left")
def time_left_filter(expiry: str) -> str:
    """`{{ file.expiry|time_left }}`: "in 6 days", from the server's clock, so that the
    pages say it without JavaScript."""
    return time_left(datetime.fromisoformat(expiry) - runtime().clock.now())


def time_left(left: timedelta) -> str:
    """A span ahead, rounded: in days from 2 days, in hours from 2 hours, else in minutes."""
    seconds = left.total_seconds()
    if seconds >= 2 * DAY:
        return _in(int(seconds / DAY + 0.5), "day")
    if seconds >= 2 * HOUR:
        return _in(int(seconds / HOUR + 0.5), "hour")
    if seconds >= 60:
        return _in(int(seconds // 60), "minute")
    return "in less than a minute" if seconds > 0 else "now"


def _in(count: int, unit: str) -> str:
    return f"in {count} {unit}" + ("" if count == 1 else "s")


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


@bp.post("/file/<int:file_id>/unshare")
@login_required
@on_error(endpoint="files.index")
def unshare(file_id: int):
    revoked = files.unshare(context(), me(), file_id, text_field("username"))
    message = f"No longer shared with {revoked['user']['username']}."
    return respond(revoked, 200, html=lambda: back_to("files.index", message))


@bp.post("/file/<int:file_id>/hide")
@login_required
@on_error(endpoint="files.index")
def hide(file_id: int):
    files.hide(context(), me(), file_id)
    return respond({"hidden": True}, 200, html=lambda: back_to("files.index", "Removed from your list."))
