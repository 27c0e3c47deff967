"""Uploads stream: the plaintext never touches disk, and a failed upload leaves nothing."""

from __future__ import annotations

import io
import os
import tempfile

import pyrage
import pytest
import werkzeug.formparser
import werkzeug.wrappers.request
from pyrage import x25519
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session as SASession

from ghostcache.extensions import db
from ghostcache.models import File
from ghostcache.services.errors import Invalid
from ghostcache.web.multipart import MultipartStream
from tests.conftest import JSON

BOUNDARY = "----GhostBoundary7MA4YWxkTrZu0gW"


def multipart(parts: list[tuple], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body, as a careful client writes it.

    Each part is (name, value) for a field or (name, filename, content) for a file;
    backslashes and quotes in names are escaped the way curl does it."""
    out = io.BytesIO()
    for part in parts:
        out.write(f"--{boundary}\r\n".encode())
        if len(part) == 2:
            name, value = part
            out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
            out.write(value.encode() if isinstance(value, str) else value)
        else:
            name, filename, content = part
            escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
            out.write(
                f'Content-Disposition: form-data; name="{name}"; filename="{escaped}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n".encode()
            )
            out.write(content)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def post_body(session, body: bytes, headers: dict | None = None, **kw):
    """POST a hand-built multipart body to /file/upload."""
    return session.client.post(
        "/file/upload",
        data=body,
        headers=headers or session.headers(),
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        **kw,
    )


def nothing_stored(app, runtime) -> bool:
    with app.app_context():
        rows = db.session.scalar(select(func.count(File.id)))
    blobs = [p for p in runtime.settings.blob_path.iterdir() if p.is_file()]
    return rows == 0 and blobs == [] and list(runtime.blobs.incoming.iterdir()) == []


def decrypt(app, runtime, key: str) -> bytes:
    """The one stored blob, decrypted with the upload's key."""
    (blob,) = [p for p in runtime.settings.blob_path.iterdir() if p.is_file()]
    return pyrage.decrypt(blob.read_bytes(), [x25519.Identity.from_str(key)])


# ---- (a) no spool file ---------------------------------------------------------


def test_a_3_mb_upload_never_creates_a_temporary_file(app, runtime, make_user, monkeypatch):
    alice = make_user()
    content = os.urandom(3 * 1024 * 1024)
    body = multipart([("expiry_days", "7"), ("file", "big.bin", content)])  # built before patching

    def forbidden(*args, **kwargs):
        raise AssertionError("a temporary file was created for the upload")

    for target, name in [
        (tempfile, "SpooledTemporaryFile"),
        (tempfile, "TemporaryFile"),
        (tempfile, "NamedTemporaryFile"),
        (tempfile, "mkstemp"),
        (werkzeug.formparser, "default_stream_factory"),
        (werkzeug.formparser, "SpooledTemporaryFile"),
        (werkzeug.wrappers.request, "default_stream_factory"),
    ]:
        monkeypatch.setattr(target, name, forbidden)

    response = post_body(alice, body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["size"] == len(content)
    assert decrypt(app, runtime, response.get_json()["key"]) == content


# ---- (b) the streaming reader ----------------------------------------------------


class Trickle(io.BytesIO):
    """A socket that hands over at most `step` bytes per read."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__(data)
        self.step = step

    def read(self, n: int | None = -1) -> bytes:
        n = self.step if n is None or n < 0 else min(n, self.step)
        return super().read(n)


NASTY = (
    b"start\r\n--\r\n--"
    + BOUNDARY[:-3].encode()
    + b"\r\n-"
    + b"\r\n--"
    + BOUNDARY.encode()
    + b"X not a real boundary\r\n\r\n--\r"
    + os.urandom(5000)
    + b"\r\n--"
)


@pytest.mark.parametrize("step", [1, 7, 13, 4096, 1 << 20])
@pytest.mark.parametrize("read_size", [1, 5, 65536, -1])
def test_reader_returns_the_file_bytes_exactly_whatever_the_chunking(step, read_size):
    body = multipart(
        [("csrf_before", "a"), ("file", "x.bin", NASTY), ("expiry_days", "12"), ("csrf_token", "tok")]
    )
    form = MultipartStream(Trickle(body, step), BOUNDARY)
    assert form.find_file("file") is True
    assert form.filename == "x.bin"
    assert form.fields == {"csrf_before": "a"}
    received = b""
    while chunk := form.read(read_size):
        received += chunk
    assert received == NASTY
    assert form.finish() == {"csrf_before": "a", "expiry_days": "12", "csrf_token": "tok"}


@pytest.mark.parametrize("last", ["file", "field"])
def test_the_last_part_gains_no_stray_byte_wherever_the_reads_split_the_closing_boundary(last):
    content = b"payload-" + os.urandom(100)
    parts = [("csrf_token", "tok"), ("file", "x.bin", content)]
    if last == "field":
        parts = [("file", "x.bin", content), ("csrf_token", "tok")]
    body = multipart(parts)
    for step in range(1, 80):
        form = MultipartStream(Trickle(body, step), BOUNDARY)
        assert form.find_file("file")
        received = b""
        while chunk := form.read():
            received += chunk
        assert (step, received) == (step, content)
        assert (step, form.finish()) == (step, {"csrf_token": "tok"})


def test_reader_finish_collects_later_fields_even_if_the_file_was_not_read_to_the_end():
    body = multipart([("file", "x.bin", NASTY), ("csrf_token", "tok")])
    form = MultipartStream(Trickle(body, 7), BOUNDARY)
    assert form.find_file("file")
    form.read(3)
    assert form.finish() == {"csrf_token": "tok"}


def test_reader_reports_a_form_without_the_file_part():
    body = multipart([("expiry_days", "3"), ("other", "o.txt", b"other file")])
    form = MultipartStream(Trickle(body, 7), BOUNDARY)
    assert form.find_file("file") is False
    assert form.fields == {"expiry_days": "3"}


def test_reader_refuses_a_body_that_ends_inside_the_file():
    body = multipart([("file", "x.bin", NASTY)])
    form = MultipartStream(Trickle(body[: len(body) // 2], 7), BOUNDARY)
    assert form.find_file("file")
    with pytest.raises(Invalid):
        while form.read(1000):
            pass


def test_an_empty_file_is_still_an_upload(app, runtime, make_user):
    response = post_body(make_user(), multipart([("file", "empty.txt", b"")]))
    assert response.status_code == 201
    assert response.get_json()["size"] == 0
    assert decrypt(app, runtime, response.get_json()["key"]) == b""


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\y.txt", "y.txt"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ('say "hi".txt', 'say "hi".txt'),
        ("a\tb\x01c.txt", "abc.txt"),
    ],
)
def test_escaped_filenames_arrive_cleaned(make_user, raw, clean):
    response = post_body(make_user(), multipart([("file", raw, b"x")]))
    assert response.status_code == 201
    assert response.get_json()["filename"] == clean


# ---- (c) CSRF token as a form field: before the file, never after -------------------


def test_csrf_token_before_the_file_part_is_accepted(app, runtime, make_user):
    alice = make_user()
    content = b"\r\n--" + os.urandom(200_000)
    body = multipart([("csrf_token", alice.token), ("file", "early.bin", content), ("expiry_days", "3")])
    response = post_body(alice, body, headers=JSON)
    assert response.status_code == 201, response.get_json()
    assert decrypt(app, runtime, response.get_json()["key"]) == content


def test_a_valid_csrf_token_after_the_file_part_is_refused_and_stores_nothing(app, runtime, make_user):
    alice = make_user()
    content = b"\r\n--" + os.urandom(200_000)
    body = multipart([("file", "late.bin", content), ("csrf_token", alice.token), ("expiry_days", "3")])
    response = post_body(alice, body, headers=JSON)
    assert (response.status_code, response.get_json()["error"]) == (400, "csrf_failed")
    assert nothing_stored(app, runtime)


@pytest.mark.parametrize("token", ["wrong-token", "", None])
def test_a_bad_csrf_token_after_the_file_stores_nothing(app, runtime, make_user, token):
    alice = make_user()
    parts = [("file", "late.bin", os.urandom(200_000))]
    if token is not None:
        parts.append(("csrf_token", token))
    response = post_body(alice, multipart(parts), headers=JSON)
    assert response.status_code == 400
    assert response.get_json()["error"] == "csrf_failed"
    assert nothing_stored(app, runtime)


def test_another_sessions_token_is_refused(app, runtime, make_user):
    alice, bob = make_user(), make_user()
    body = multipart([("csrf_token", bob.token), ("file", "early.bin", b"data")])
    response = post_body(alice, body, headers=JSON)
    assert (response.status_code, response.get_json()["error"]) == (400, "csrf_failed")
    assert nothing_stored(app, runtime)


# ---- (d) client gone half-way --------------------------------------------------------


def _cut_points(body: bytes, content: bytes) -> dict[str, int]:
    start = body.index(content)
    return {
        "in the fields before the file": body.index(b"csrf_token") + 5,
        "inside the file": start + len(content) // 2,
        "right after the file data": start + len(content),
        "inside the field after the file": body.rindex(b"expiry_days") + 3,
        "before the closing boundary": len(body) - len(f"--{BOUNDARY}--\r\n"),
    }


@pytest.mark.parametrize(
    "where",
    [
        "in the fields before the file",
        "inside the file",
        "right after the file data",
        "inside the field after the file",
        "before the closing boundary",
    ],
)
@pytest.mark.parametrize("length_says", ["full", "truncated"])
def test_a_body_cut_off_mid_way_is_refused_and_leaves_nothing(app, runtime, make_user, where, length_says):
    alice = make_user()
    content = os.urandom(300_000)
    body = multipart([("csrf_token", alice.token), ("file", "cut.bin", content), ("expiry_days", "3")])
    cut = body[: _cut_points(body, content)[where]]
    length = len(body) if length_says == "full" else len(cut)
    response = alice.client.post(
        "/file/upload",
        input_stream=io.BytesIO(cut),
        headers=JSON,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        environ_overrides={"CONTENT_LENGTH": str(length)},
    )
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_upload")
    assert nothing_stored(app, runtime)


# ---- (e) the database fails ----------------------------------------------------------


def test_a_failed_insert_leaves_no_blob(app, runtime, make_user, monkeypatch):
    alice = make_user()
    real_flush = SASession.flush

    def failing_flush(self, *args, **kwargs):
        if any(isinstance(obj, File) for obj in self.new):
            raise OperationalError("INSERT INTO file", {}, Exception("disk I/O error"))
        return real_flush(self, *args, **kwargs)

    monkeypatch.setattr(SASession, "flush", failing_flush)
    response = alice.upload(os.urandom(100_000), "doomed.bin")
    assert response.status_code != 201
    monkeypatch.undo()
    assert nothing_stored(app, runtime)
    assert alice.get("/files").get_json()["owned"] == []


def test_a_failure_after_the_insert_leaves_neither_row_nor_blob(app, runtime, make_user, monkeypatch):
    import ghostcache.services.files as files_service

    def broken_view(*args, **kwargs):
        raise RuntimeError("answer could not be built")

    alice = make_user()
    monkeypatch.setattr(files_service, "file_view", broken_view)
    response = alice.upload(b"payload", "doomed.bin")
    assert response.status_code != 201
    monkeypatch.undo()
    assert alice.get("/files").get_json()["owned"] == []  # no listed file without a blob
    assert nothing_stored(app, runtime)


def test_a_boundary_longer_than_rfc_2046_allows_is_still_accepted(make_user):
    user = make_user()
    boundary = "b" * 72
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
        f"hello\r\n--{boundary}--\r\n"
    ).encode()
    answer = user.client.post(
        "/file/upload",
        data=body,
        headers=user.headers(),
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert answer.status_code == 201 and answer.get_json()["size"] == 5
