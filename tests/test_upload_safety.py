"""Upload safety: expiry_days of any length, a decryption command safe to paste into a
shell, and the CSRF check made before a byte of the file is read (docs/API.md, Files)."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import func, select

import ghostcache.services.files as files_service
from ghostcache.extensions import db
from ghostcache.models import File
from ghostcache.services.errors import Invalid
from ghostcache.services.files import MAX_EXPIRY_DAYS, parse_expiry
from ghostcache.web.files import decrypt_command
from tests.conftest import JSON, Session

BOUNDARY = "----SafetyBoundary0123456789"
MB = 1024 * 1024
META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
COMMAND = re.compile(r"<pre><code>(age -d .*?)</code></pre>", re.S)


def multipart(parts: list[tuple]) -> bytes:
    """(name, value) fields and (name, filename, content) files, in this order;
    quotes and backslashes in names escaped as curl does."""
    out = io.BytesIO()
    for part in parts:
        out.write(f"--{BOUNDARY}\r\n".encode())
        if len(part) == 2:
            out.write(f'Content-Disposition: form-data; name="{part[0]}"\r\n\r\n{part[1]}'.encode())
        else:
            name, filename, content = part
            escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
            out.write(f'Content-Disposition: form-data; name="{name}"; filename="{escaped}"\r\n\r\n'.encode())
            out.write(content)
        out.write(b"\r\n")
    out.write(f"--{BOUNDARY}--\r\n".encode())
    return out.getvalue()


def post_upload(session: Session, body: bytes, headers: dict | None = None, stream: io.BytesIO | None = None):
    """POST a hand-built body to /file/upload; JSON answers, no CSRF header unless given."""
    return session.client.post(
        "/file/upload",
        input_stream=stream or io.BytesIO(body),
        headers={**JSON, **(headers or {})},
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        environ_overrides={"CONTENT_LENGTH": str(len(body))},
    )


def nothing_stored(app, runtime) -> bool:
    """No File row, no blob, no partial blob."""
    with app.app_context():
        rows = db.session.scalar(select(func.count(File.id)))
    blobs = [p for p in runtime.blobs.root.iterdir() if p.is_file()]
    return rows == 0 and blobs == [] and list(runtime.blobs.incoming.iterdir()) == []


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]


# ---- expiry_days: capped however many digits ------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "1" + "0" * 22,
        "0000000000000000000000400",
        "+" + "9" * 30,
        " 366 ",
        "9" * 5000,  # longer than the 4300 digits int() accepts
        "0" * 4999 + "1000",
    ],
)
def test_a_long_expiry_above_365_is_capped_at_365(make_user, clock, raw):
    response = make_user().upload(b"x", "a.txt", expiry_days=raw)
    assert response.status_code == 201, response.get_json()
    expiry = datetime.fromisoformat(response.get_json()["expiry"])
    assert expiry == (clock.now() + timedelta(days=365)).replace(microsecond=0)


@pytest.mark.parametrize(
    "raw",
    [
        "0" * 30,
        "-0",
        "-" + "1" * 30,
        "-" + "9" * 5000,
        "0" * 5000,
        "1" * 30 + "x",
        "1 000",
        "++5",
        "١٢",  # Arabic-Indic digits: int() would take them
        "１２",  # fullwidth digits
        "1" * 23 + ".0",
    ],
)
def test_a_long_expiry_that_is_not_a_positive_whole_number_is_400(app, runtime, make_user, raw):
    response = make_user().upload(b"x", "a.txt", expiry_days=raw)
    assert error_of(response) == (400, "invalid_expiry")
    assert nothing_stored(app, runtime)


@pytest.mark.parametrize("raw, days", [(10**30, 365), (366, 365), (365, 365), (1, 1), ("7", 7), (None, 365)])
def test_parse_expiry_caps_json_integers_too(raw, days):
    assert parse_expiry(raw) == days


@pytest.mark.parametrize("raw", [0, -1, -(10**30), True, False, 1.5, 30.0, [], {}])
def test_parse_expiry_refuses_non_positive_or_non_integer_values(raw):
    with pytest.raises(Invalid) as refused:
        parse_expiry(raw)
    assert refused.value.code == "invalid_expiry"


def test_parse_expiry_never_converts_a_huge_string():
    assert parse_expiry("7" * 100_000) == MAX_EXPIRY_DAYS  # int() would raise ValueError here


# ---- the decryption command --------------------------------------------------------------

HOSTILE = [
    "notes.txt",
    "$(touch pwned)",
    "`touch pwned`",
    '"; rm -rf ~; "',
    "it's \"quoted\" 'twice'.txt",
    "-rf",
    "--help.txt",
    "-o pwned",
    "$HOME ${IFS} * ?.txt",
    "a;touch pwned&&echo|cat>pwned",
    "résumé 2026 ünïcødé 文件 🙂.pdf",
    "!!.txt",
    "~",
]
SHELLS = [name for name in ("sh", "dash", "bash") if shutil.which(name)]


def _sandbox(tmp_path: Path) -> dict[str, str]:
    """An environment in which any command a broken quoting would run only leaves a
    file named `pwned` behind: PATH holds nothing but traps, HOME is the sandbox."""
    traps = tmp_path / "bin"
    traps.mkdir()
    for name in ("touch", "rm", "echo", "cat", "id", "age"):
        trap = traps / name
        trap.write_text('#!/bin/sh\nprintf "%s\\n" "$0 $*" >> pwned\n')
        trap.chmod(0o755)
    return {"PATH": str(traps), "HOME": str(tmp_path), "LC_ALL": "C.UTF-8"}


def run_as_pasted(command: str, shell: str, tmp_path: Path) -> list[str]:
    """Run `command` in `shell` where `age` is a function printing its arguments one a line."""
    result = subprocess.run(
        [shutil.which(shell) or shell, "-c", "age() { printf '%s\\n' \"$@\"; }; " + command],
        cwd=tmp_path,
        env=_sandbox(tmp_path),
        capture_output=True,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.decode("utf-8").split("\n")[:-1]


def expected_args(filename: str) -> list[str]:
    out = "./" + filename if filename.startswith("-") else filename
    return ["-d", "-i", "key.txt", "-o", out, out + ".age"]


def test_an_ordinary_name_gives_the_plain_command():
    assert decrypt_command("notes.txt") == "age -d -i key.txt -o notes.txt notes.txt.age"


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("filename", HOSTILE)
def test_the_command_gives_age_exactly_its_arguments_in_a_real_shell(tmp_path, shell, filename):
    args = run_as_pasted(decrypt_command(filename), shell, tmp_path)
    assert args == expected_args(filename)
    assert not (tmp_path / "pwned").exists(), (tmp_path / "pwned").read_text()


@pytest.mark.parametrize("filename", HOSTILE)
def test_the_upload_page_shows_that_command_escaped(tmp_path, make_user, filename):
    alice = make_user()
    page = alice.client.post(
        "/file/upload",
        data=multipart([("file", filename, b"content")]),
        headers={"X-CSRFToken": alice.token},
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )
    assert page.status_code == 201 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    shown = COMMAND.search(html).group(1)
    assert unescape(shown) == decrypt_command(filename)
    assert "<" not in unescape(shown) or "&lt;" in shown  # markup arrives as text
    args = run_as_pasted(unescape(shown), SHELLS[0], tmp_path)
    assert args == expected_args(filename)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.skipif(shutil.which("age") is None, reason="the age tool is not installed")
@pytest.mark.parametrize("filename", ['$(touch pwned) `id` "x".txt', "-rf ünï.bin"])
def test_the_shown_command_really_decrypts_with_age(tmp_path, make_user, filename):
    alice = make_user()
    content = os.urandom(5000)
    page = alice.client.post(
        "/file/upload",
        data=multipart([("file", filename, content)]),
        headers={"X-CSRFToken": alice.token},
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
    )
    html = page.get_data(as_text=True)
    key = re.search(r"AGE-SECRET-KEY-1[0-9A-Z]+", html).group(0)
    file_id = alice.get("/files").get_json()["owned"][0]["id"]
    (tmp_path / "key.txt").write_text(key + "\n")
    (tmp_path / (filename + ".age")).write_bytes(alice.get(f"/file/{file_id}").data)
    command = unescape(COMMAND.search(html).group(1))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = subprocess.run(["sh", "-c", command], cwd=tmp_path, env=env, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / filename).read_bytes() == content
    assert not (tmp_path / "pwned").exists()


# ---- CSRF: checked as the file part begins ----------------------------------------------


class CountingStream(io.BytesIO):
    """A request body that records how many bytes the server read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk

    def read1(self, size: int = -1) -> bytes:
        chunk = super().read1(size)
        self.taken += len(chunk)
        return chunk

    def readinto(self, buffer) -> int:
        count = super().readinto(buffer)
        self.taken += count
        return count

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.taken += len(line)
        return line


@pytest.fixture
def no_encryption(monkeypatch):
    """Fails the request (and the test) if anything reaches the encrypting writer."""
    calls: list[object] = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the file reached the encryptor")

    monkeypatch.setattr(files_service, "incoming_blob", forbidden)
    return calls


def test_a_token_field_after_the_file_is_400_and_stores_nothing(app, runtime, make_user, no_encryption):
    alice = make_user()
    body = multipart([("file", "late.bin", os.urandom(100_000)), ("csrf_token", alice.token)])
    assert error_of(post_upload(alice, body)) == (400, "csrf_failed")
    assert no_encryption == [] and nothing_stored(app, runtime)


def test_a_token_field_before_the_file_is_accepted(app, runtime, make_user):
    alice = make_user()
    body = multipart([("csrf_token", alice.token), ("file", "early.bin", b"data"), ("expiry_days", "3")])
    response = post_upload(alice, body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["size"] == 4


def test_the_header_token_still_works_without_a_field(make_user):
    alice = make_user()
    body = multipart([("file", "header.bin", b"data")])
    assert post_upload(alice, body, headers={"X-CSRFToken": alice.token}).status_code == 201


@pytest.mark.parametrize("token", ["wrong-token", "", "other session"])
def test_a_bad_token_before_the_file_is_400_and_stores_nothing(app, runtime, make_user, no_encryption, token):
    alice = make_user()
    if token == "other session":
        token = make_user().token
    body = multipart([("csrf_token", token), ("file", "early.bin", os.urandom(100_000))])
    assert error_of(post_upload(alice, body)) == (400, "csrf_failed")
    assert no_encryption == [] and nothing_stored(app, runtime)


def test_a_right_token_after_a_wrong_one_before_the_file_does_not_help(app, runtime, make_user):
    alice = make_user()
    parts = [("csrf_token", "forged"), ("file", "x.bin", b"data"), ("csrf_token", alice.token)]
    assert error_of(post_upload(alice, multipart(parts))) == (400, "csrf_failed")
    assert nothing_stored(app, runtime)


@pytest.mark.parametrize("token_where", ["after the file", "wrong, before the file", "missing"])
def test_a_refused_upload_stops_reading_where_the_file_begins(
    app, runtime, make_user, no_encryption, token_where
):
    alice = make_user()
    content = os.urandom(5 * MB)
    parts: list[tuple] = [("expiry_days", "3"), ("file", "big.bin", content)]
    if token_where == "after the file":
        parts.append(("csrf_token", alice.token))
    elif token_where == "wrong, before the file":
        parts.insert(0, ("csrf_token", "forged"))
    body = multipart(parts)
    stream = CountingStream(body)
    response = post_upload(alice, body, stream=stream)
    assert error_of(response) == (400, "csrf_failed")
    file_starts = body.index(content)
    assert stream.taken < file_starts + MB, f"read {stream.taken} of {len(body)} bytes"
    assert no_encryption == []
    assert nothing_stored(app, runtime)


def test_the_upload_form_puts_the_token_before_the_file(make_user):
    alice = make_user()
    html = alice.client.get("/file/upload").get_data(as_text=True)
    form = re.search(r'<form[^>]*action="/file/upload"[^>]*>.*?</form>', html, re.S).group(0)
    names = re.findall(r'<input[^>]*\bname="([^"]+)"', form)
    assert names.index("csrf_token") < names.index("file"), names


def test_a_browser_sending_the_form_in_its_order_uploads(make_user):
    """The fields in the page's order, the token from the form, no header: as a browser posts it."""
    alice = make_user()
    html = alice.client.get("/file/upload").get_data(as_text=True)
    form = re.search(r'<form[^>]*action="/file/upload"[^>]*>.*?</form>', html, re.S).group(0)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    values = {"csrf_token": token, "expiry_days": "2"}
    parts = [
        (name, "form.txt", b"from the form") if name == "file" else (name, values[name])
        for name in re.findall(r'<input[^>]*\bname="([^"]+)"', form)
    ]
    page = alice.client.post(
        "/file/upload",
        data=multipart(parts),
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        headers={"Accept": "text/html"},
    )
    assert page.status_code == 201 and "AGE-SECRET-KEY-1" in page.get_data(as_text=True)


def test_a_browser_posting_the_token_after_the_file_sees_the_form_again(app, runtime, make_user):
    alice = make_user()
    body = multipart([("file", "late.txt", b"x"), ("csrf_token", alice.token)])
    page = alice.client.post(
        "/file/upload",
        data=body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        headers={"Accept": "text/html"},
        follow_redirects=True,
    )
    assert page.request.path == "/file/upload"
    assert "Please try again" in page.get_data(as_text=True)
    assert nothing_stored(app, runtime)
