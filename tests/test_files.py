"""Files: upload, listing, download, sharing, deletion and expiry, per docs/API.md."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from ghostcache import create_app
from ghostcache.database import upgrade
from ghostcache.extensions import db
from ghostcache.models import File
from ghostcache.web.files import time_left
from tests.conftest import JSON, BufferedClient, Session
from tests.test_upload_stream import multipart, post_body

KEY_RE = re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]+")
MIB = 1024 * 1024


def file_rows(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(File.id)))


def blob_names(runtime) -> list[str]:
    return sorted(p.name for p in runtime.settings.blob_path.iterdir() if p.is_file())


def incoming_names(runtime) -> list[str]:
    return sorted(p.name for p in runtime.blobs.incoming.iterdir())


def uploaded(session: Session, content: bytes = b"hello file", filename: str = "notes.txt") -> dict:
    response = session.upload(content, filename)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# ---- upload ------------------------------------------------------------------


def test_upload_answers_201_with_the_file_object_and_its_key(make_user, clock):
    alice = make_user()
    body = uploaded(alice, b"x" * 1234, "report.txt")
    assert set(body) == {"id", "filename", "size", "created_at", "expiry", "owner", "shared_with", "key"}
    assert body["filename"] == "report.txt"
    assert body["size"] == 1234  # the original's size, not the blob's
    assert body["owner"] == {"id": alice.id, "username": alice.username}
    assert body["shared_with"] == []
    assert KEY_RE.fullmatch(body["key"])
    assert datetime.fromisoformat(body["created_at"]) == clock.now().replace(microsecond=0)


def test_html_upload_shows_the_key_once_and_the_file_list_never_shows_it(make_user):
    alice = make_user()
    page = alice.client.post(
        "/file/upload",
        data={"file": (io.BytesIO(b"secret stuff"), "s.txt")},
        headers={"X-CSRFToken": alice.token},
        content_type="multipart/form-data",
    )
    assert page.status_code == 201
    html = page.get_data(as_text=True)
    keys = KEY_RE.findall(html)
    assert keys, "the result page must show the key"
    listing = alice.client.get("/files")
    assert listing.status_code == 200
    assert "s.txt" in listing.get_data(as_text=True)
    assert keys[0] not in listing.get_data(as_text=True)
    assert keys[0] not in str(alice.get("/files").get_json())


@pytest.mark.parametrize(
    "raw, days",
    [
        (None, 365),
        ("", 365),
        ("  ", 365),
        ("1", 1),
        ("30", 30),
        ("365", 365),
        ("366", 365),
        ("400", 365),
        ("1" + "0" * 22, 365),
        ("0000000000000000000000400", 365),
    ],
)
def test_expiry_days_defaults_to_365_and_is_capped_at_365(make_user, clock, raw, days):
    body = make_user().upload(b"data", "a.txt", expiry_days=raw).get_json()
    expiry = datetime.fromisoformat(body["expiry"])
    assert expiry == (clock.now() + timedelta(days=days)).replace(microsecond=0)


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "1.5", "1e3", "ten"])
def test_bad_expiry_days_is_400_invalid_expiry_and_stores_nothing(app, runtime, make_user, raw):
    response = make_user().upload(b"data", "a.txt", expiry_days=raw)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_expiry"
    assert file_rows(app) == 0
    assert blob_names(runtime) == [] and incoming_names(runtime) == []


def test_upload_without_a_file_part_is_400_missing_file(make_user):
    alice = make_user()
    response = alice.client.post(
        "/file/upload", data={"expiry_days": "3"}, headers=alice.headers(), content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "missing_file"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"file": "aGVsbG8="}},
        {"data": "file=hello", "content_type": "application/x-www-form-urlencoded"},
        {"data": b"raw bytes", "content_type": "application/octet-stream"},
    ],
)
def test_non_multipart_upload_is_400_missing_file(make_user, kwargs):
    response = make_user().post("/file/upload", **kwargs)
    assert response.status_code == 400
    assert response.get_json()["error"] == "missing_file"


@pytest.fixture
def small_app(settings, clock):
    app = create_app(settings.with_overrides(max_upload_mb=1), clock=clock)
    app.test_client_class = BufferedClient
    app.config["TESTING"] = True
    upgrade(app)
    return app


def _small_user(small_app) -> Session:
    session = Session(small_app)
    assert session.register("smally").status_code == 201
    assert session.login("smally").status_code == 200
    return session


def test_file_one_byte_over_the_limit_is_413_and_leaves_nothing(small_app):
    rt = small_app.extensions["ghostcache"]
    alice = _small_user(small_app)
    assert alice.upload(b"a" * MIB, "fits.bin").status_code == 201  # exactly the limit is fine
    before = blob_names(rt)
    response = alice.upload(b"a" * (MIB + 1), "big.bin")
    assert response.status_code == 413
    assert response.get_json()["error"] == "too_large"
    assert file_rows(small_app) == 1
    assert blob_names(rt) == before and incoming_names(rt) == []


class _Untouchable(io.BytesIO):
    """A body that fails the test if anyone reads it."""

    def _refuse(self, *args):
        raise AssertionError("the body was read although Content-Length is over the limit")

    read = read1 = readline = readinto = readlines = _refuse


def test_content_length_far_over_the_limit_is_413_before_reading(small_app):
    rt = small_app.extensions["ghostcache"]
    alice = _small_user(small_app)
    response = alice.client.post(
        "/file/upload",
        headers=alice.headers(),
        input_stream=_Untouchable(),
        environ_overrides={"CONTENT_LENGTH": str(50 * MIB)},
        content_type="multipart/form-data; boundary=xyz",
    )
    assert response.status_code == 413
    assert response.get_json()["error"] == "too_large"
    assert file_rows(small_app) == 0 and blob_names(rt) == [] and incoming_names(rt) == []


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("../../etc/passwd", "passwd"),
        ("bad\x00na\x1bme\x7f.txt", "badname.txt"),
        ("tab\there\x85.txt", "tabhere.txt"),
        ("résumé 2026.pdf", "résumé 2026.pdf"),
        ("../", "file"),
        ("x" * 300 + ".txt", "x" * 255),
    ],
)
def test_filename_keeps_only_the_last_component_without_control_characters(make_user, raw, clean):
    assert uploaded(make_user(), b"x", raw)["filename"] == clean


# ---- listing and download ------------------------------------------------------


def test_list_shows_owned_files_with_grantees_and_files_shared_with_me(connect):
    alice, bob = connect()
    mine = uploaded(alice, b"a", "mine.txt")
    other = uploaded(bob, b"b", "bobs.txt")
    assert alice.post(f"/file/{mine['id']}/share", {"username": bob.username}).status_code == 201
    alice_list, bob_list = alice.get("/files").get_json(), bob.get("/files").get_json()
    assert [f["id"] for f in alice_list["owned"]] == [mine["id"]]
    assert alice_list["owned"][0]["shared_with"] == [{"id": bob.id, "username": bob.username}]
    assert alice_list["shared"] == []
    assert [f["id"] for f in bob_list["owned"]] == [other["id"]]
    assert [f["id"] for f in bob_list["shared"]] == [mine["id"]]
    assert bob_list["shared"][0]["owner"]["username"] == alice.username
    assert "key" not in str(alice_list)


@pytest.mark.parametrize("name", ["notes.txt", "résumé 2026.pdf", 'say "hi".txt'])
def test_owner_and_grantee_download_the_blob_as_a_named_attachment(connect, name):
    alice, bob = connect()
    response = post_body(alice, multipart([("file", name, b"content")]))  # escapes the quote
    assert response.status_code == 201
    body = response.get_json()
    assert body["filename"] == name
    alice.post(f"/file/{body['id']}/share", {"username": bob.username})
    for who in (alice, bob):
        response = who.get(f"/file/{body['id']}")
        assert response.status_code == 200
        assert response.mimetype == "application/octet-stream"
        assert response.data.startswith(b"age-encryption.org/v1")
        disposition = response.headers["Content-Disposition"]
        assert response.headers["Cache-Control"] == "no-store"
        assert disposition.startswith("attachment")
        assert "filename*=UTF-8''" + quote(name + ".age", safe="") in disposition
        assert '"' not in disposition.split('filename="', 1)[1].rstrip('"').split('";')[0]


@pytest.mark.parametrize("action", ["download", "delete", "share"])
def test_a_stranger_gets_the_same_404_as_for_a_nonexistent_file(make_user, action):
    alice, mallory = make_user(), make_user()
    real = uploaded(alice)["id"]

    def attempt(file_id):
        if action == "download":
            return mallory.get(f"/file/{file_id}")
        if action == "delete":
            return mallory.post(f"/file/{file_id}/delete")
        return mallory.post(f"/file/{file_id}/share", {"username": alice.username})

    theirs, missing = attempt(real), attempt(real + 1000)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json() == missing.get_json()
    assert alice.get(f"/file/{real}").status_code == 200  # still there


# ---- the file's page ---------------------------------------------------------


def test_view_gives_the_owner_the_file_with_its_grantees(connect):
    alice, bob = connect()
    stored = uploaded(alice, b"x" * 42, "plan.txt")
    alice.post(f"/file/{stored['id']}/share", {"username": bob.username})
    response = alice.get(f"/file/{stored['id']}/view")
    assert response.status_code == 200
    body = response.get_json()
    assert body == {k: v for k, v in stored.items() if k != "key"} | {
        "shared_with": [{"id": bob.id, "username": bob.username}]
    }
    assert response.headers["Cache-Control"] == "no-store"


def test_view_gives_a_grantee_the_file_without_the_grantees(connect):
    alice, bob = connect()
    stored = uploaded(alice, b"abc", "plan.txt")
    alice.post(f"/file/{stored['id']}/share", {"username": bob.username})
    body = bob.get(f"/file/{stored['id']}/view").get_json()
    assert body == {k: v for k, v in stored.items() if k not in ("key", "shared_with")}
    assert body["owner"] == {"id": alice.id, "username": alice.username}


def test_view_is_the_same_404_for_a_stranger_as_for_a_missing_file(make_user):
    alice, mallory = make_user(), make_user()
    real = uploaded(alice)["id"]
    theirs, missing = mallory.get(f"/file/{real}/view"), mallory.get(f"/file/{real + 1000}/view")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json() == missing.get_json()
    assert mallory.client.get(f"/file/{real}/view").status_code == 404  # the page too


def test_view_of_an_expired_file_is_410(clock, connect):
    alice, bob = connect()
    file_id = alice.upload(b"short", "short.txt", expiry_days="2").get_json()["id"]
    alice.post(f"/file/{file_id}/share", {"username": bob.username})
    clock.advance(days=1, hours=23)
    assert bob.get(f"/file/{file_id}/view").status_code == 200
    clock.advance(hours=1, seconds=1)
    for who in (alice, bob):
        response = who.get(f"/file/{file_id}/view")
        assert (response.status_code, response.get_json()["error"]) == (410, "expired")
        page = who.client.get(f"/file/{file_id}/view")
        assert page.status_code == 410 and "expired" in page.get_data(as_text=True)


def test_view_page_has_the_decrypt_form_and_never_the_key(connect):
    alice, bob = connect()
    upload = alice.client.post(
        "/file/upload",
        data={"file": (io.BytesIO(b"secret stuff"), "s<b>.txt")},
        headers={"X-CSRFToken": alice.token},
        content_type="multipart/form-data",
    )
    key = KEY_RE.search(upload.get_data(as_text=True)).group(0)
    file_id = alice.get("/files").get_json()["owned"][0]["id"]
    assert f'href="/file/{file_id}/view"' in upload.get_data(as_text=True)
    alice.post(f"/file/{file_id}/share", {"username": bob.username})
    for who in (alice, bob):
        page = who.client.get(f"/file/{file_id}/view")
        assert page.status_code == 200 and page.mimetype == "text/html"
        html = page.get_data(as_text=True)
        assert key not in html and not KEY_RE.search(html)
        assert "s&lt;b&gt;.txt" in html and "s<b>" not in html
        assert f'href="/file/{file_id}"' in html  # the encrypted download
        assert "The key stays in this page: it is never sent to the server." in html
        form = re.search(r"<form id=\"decrypt-form\"[^>]*>(.*?)</form>", html, re.S)
        assert form, "the decrypt form"
        opening = form.group(0).split(">", 1)[0]
        assert "action=" not in opening and "method=" not in opening
        key_input = re.search(r"<input id=\"file-key\"[^>]*>", form.group(1)).group(0)
        assert 'type="password"' in key_input and 'autocomplete="off"' in key_input
        assert 'spellcheck="false"' in key_input and "name=" not in key_input
        assert '<label for="file-key">File key</label>' in form.group(1)
        assert 'role="status"' in form.group(1) and 'role="alert"' in form.group(1)
        scripts = re.findall(r'<script src="([^"]+)" integrity="sha384-[^"]+" defer></script>', html)
        assert scripts[-2:] == ["/static/age.bundle.js", "/static/decrypt.js"]
    assert "<dt>Shared with</dt>" in alice.client.get(f"/file/{file_id}/view").get_data(as_text=True)
    assert "Shared with" not in bob.client.get(f"/file/{file_id}/view").get_data(as_text=True)
    listing = bob.client.get("/files").get_data(as_text=True)
    assert f'href="/file/{file_id}/view"' in listing


def test_upload_page_gives_the_key_link_with_the_key_in_its_fragment(make_user):
    alice = make_user()
    page = alice.client.post(
        "/file/upload",
        data={"file": (io.BytesIO(b"for bob"), "for-bob.txt")},
        headers={"X-CSRFToken": alice.token},
        content_type="multipart/form-data",
    )
    html = page.get_data(as_text=True)
    key = KEY_RE.search(html).group(0)
    file_id = alice.get("/files").get_json()["owned"][0]["id"]
    link = re.search(r'<textarea id="file-link"[^>]*>([^<]*)</textarea>', html).group(1)
    assert link == f"http://localhost/file/{file_id}/view#key={key}"
    assert '<label for="file-link">' in html and 'data-copy-target="file-link"' in html


@pytest.mark.parametrize(
    ("left", "text"),
    [
        (timedelta(days=365), "in 365 days"),
        (timedelta(days=7) - timedelta(seconds=1), "in 7 days"),
        (timedelta(days=2, hours=13), "in 3 days"),
        (timedelta(days=2), "in 2 days"),
        (timedelta(hours=47, minutes=59), "in 48 hours"),
        (timedelta(hours=2), "in 2 hours"),
        (timedelta(hours=1, minutes=59), "in 119 minutes"),
        (timedelta(minutes=1, seconds=59), "in 1 minute"),
        (timedelta(seconds=59), "in less than a minute"),
        (timedelta(0), "now"),
    ],
)
def test_time_left_is_rounded_to_days_then_hours_then_minutes(left, text):
    assert time_left(left) == text


def test_file_pages_say_how_long_a_file_has_left_without_script(clock, connect):
    alice, bob = connect()
    file_id = alice.upload(b"x", "soon.txt", expiry_days="7").get_json()["id"]
    alice.post(f"/file/{file_id}/share", {"username": bob.username})
    clock.advance(days=4, hours=1)
    expiry = alice.get(f"/file/{file_id}/view").get_json()["expiry"]
    assert "time_left" not in alice.get("/files").get_data(as_text=True)  # JSON as before
    for who, path in ((alice, "/files"), (bob, "/files"), (alice, f"/file/{file_id}/view")):
        html = who.client.get(path).get_data(as_text=True)
        assert "in 3 days" in html, path
        assert f'<time datetime="{expiry}"' in html, path
    clock.advance(days=2, hours=22)
    assert "in 60 minutes" in alice.client.get(f"/file/{file_id}/view").get_data(as_text=True)


def test_only_the_file_page_loads_the_decryption_scripts(make_user):
    alice = make_user()
    uploaded(alice)
    for path in ("/", "/files", "/file/upload", "/help"):
        html = alice.client.get(path).get_data(as_text=True)
        assert "age.bundle.js" not in html and "decrypt.js" not in html, path


def test_the_committed_bundle_names_its_source_and_how_to_rebuild_it(app):
    client = app.test_client()
    bundle = client.get("/static/age.bundle.js")
    assert bundle.status_code == 200
    first_line = bundle.get_data(as_text=True).split("\n", 1)[0]
    assert "age-encryption 0.3.1" in first_line and "make assets" in first_line
    assert "GhostcacheAge" in bundle.get_data(as_text=True)
    assert client.get("/static/decrypt.js").status_code == 200


# ---- sharing -----------------------------------------------------------------


def test_share_answers_201_with_file_id_and_user(connect):
    alice, bob = connect()
    file_id = uploaded(alice)["id"]
    response = alice.post(f"/file/{file_id}/share", {"username": bob.username.upper()})
    assert response.status_code == 201
    assert response.get_json() == {"file_id": file_id, "user": {"id": bob.id, "username": bob.username}}


def test_share_refusals(connect, make_user):
    alice, bob = connect()
    file_id = uploaded(alice)["id"]
    cases = [
        (alice.username, 400, "cannot_share_with_self"),
        ("nobody-here", 404, "user_not_found"),
        (make_user().username, 403, "not_connected"),  # only accepted contacts
    ]
    for username, status, code in cases:
        response = alice.post(f"/file/{file_id}/share", {"username": username})
        assert (response.status_code, response.get_json()["error"]) == (status, code)
    assert alice.post(f"/file/{file_id}/share", {"username": bob.username}).status_code == 201
    again = alice.post(f"/file/{file_id}/share", {"username": bob.username})
    assert (again.status_code, again.get_json()["error"]) == (409, "already_shared")


@pytest.mark.parametrize("sharer", ["denier", "denied"])
def test_share_is_403_blocked_after_a_deny_in_either_direction(make_user, sharer):
    asker, denier = make_user(), make_user()
    conn = asker.post("/connect", {"username": denier.username}).get_json()
    assert denier.post(f"/connect/deny/{conn['id']}").status_code == 200
    owner, target = (denier, asker) if sharer == "denier" else (asker, denier)
    file_id = uploaded(owner)["id"]
    response = owner.post(f"/file/{file_id}/share", {"username": target.username})
    assert (response.status_code, response.get_json()["error"]) == (403, "blocked")


def test_a_grantee_cannot_reshare(connect):
    alice, bob = connect()
    _, carol = connect(bob)
    file_id = uploaded(alice)["id"]
    assert alice.post(f"/file/{file_id}/share", {"username": bob.username}).status_code == 201
    response = bob.post(f"/file/{file_id}/share", {"username": carol.username})
    assert response.status_code == 404
    assert carol.get(f"/file/{file_id}").status_code == 404


# ---- delete and expiry ------------------------------------------------------


def test_delete_removes_row_and_blob_then_404(app, runtime, connect):
    alice, bob = connect()
    file_id = uploaded(alice)["id"]
    alice.post(f"/file/{file_id}/share", {"username": bob.username})
    assert len(blob_names(runtime)) == 1
    response = alice.post(f"/file/{file_id}/delete")
    assert (response.status_code, response.get_json()) == (200, {"deleted": True})
    assert file_rows(app) == 0 and blob_names(runtime) == []
    assert alice.get(f"/file/{file_id}").status_code == 404
    assert bob.get(f"/file/{file_id}").status_code == 404
    assert alice.post(f"/file/{file_id}/delete").status_code == 404


def test_bob_cannot_delete_a_file_shared_with_him(connect):
    alice, bob = connect()
    file_id = uploaded(alice)["id"]
    alice.post(f"/file/{file_id}/share", {"username": bob.username})
    assert bob.post(f"/file/{file_id}/delete").status_code == 404
    assert bob.get(f"/file/{file_id}").status_code == 200


def test_expired_file_is_410_then_404_after_the_purge(app, runtime, clock, connect):
    from ghostcache.services import maintenance
    from ghostcache.services.context import Context

    alice, bob = connect()
    file_id = uploaded(alice)["id"]
    short = alice.upload(b"short", "short.txt", expiry_days="2").get_json()["id"]
    alice.post(f"/file/{short}/share", {"username": bob.username})
    alice.post(f"/file/{file_id}/share", {"username": bob.username})
    clock.advance(days=1, hours=23)
    assert bob.get(f"/file/{short}").status_code == 200
    clock.advance(hours=1, seconds=1)
    for who in (alice, bob):
        response = who.get(f"/file/{short}")
        assert (response.status_code, response.get_json()["error"]) == (410, "expired")
        listing = who.get("/files").get_json()
        assert short not in [f["id"] for f in listing["owned"] + listing["shared"]]
        assert file_id in [f["id"] for f in listing["owned"] + listing["shared"]]
    assert len(blob_names(runtime)) == 2
    with app.app_context():
        report = maintenance.purge(Context(db=db.session, rt=runtime))
    assert report.expired_files == 1
    for who in (alice, bob):
        assert who.get(f"/file/{short}").status_code == 404
        assert who.get(f"/file/{file_id}").status_code == 200
    assert len(blob_names(runtime)) == 1 and file_rows(app) == 1


def test_upload_requires_login(app):
    client = app.test_client()
    token = client.get("/csrf").get_json()["csrf_token"]
    response = client.post(
        "/file/upload",
        data={"file": (io.BytesIO(b"x"), "a.txt")},
        headers={"X-CSRFToken": token, **JSON},
        content_type="multipart/form-data",
    )
    assert response.status_code == 401


@pytest.mark.parametrize("odd_digits", ["٣", "３", "1_0", "1e2", "0x10"])
def test_expiry_days_takes_plain_ascii_digits_only(make_user, odd_digits):
    answer = make_user().upload(b"x", expiry_days=odd_digits)
    assert (answer.status_code, answer.get_json()["error"]) == (400, "invalid_expiry")
