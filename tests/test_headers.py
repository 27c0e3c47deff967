"""Protective headers on every kind of response; Secure cookies and HSTS over HTTPS."""

from __future__ import annotations

import pytest

from ghostcache.web.files import attachment_header

CSP_PARTS = ["default-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'self'"]


def _assert_protected(response) -> None:
    csp = response.headers["Content-Security-Policy"]
    for part in CSP_PARTS:
        assert part in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response.headers["Permissions-Policy"]


@pytest.fixture
def owner_with_file(make_user):
    owner = make_user()
    file = owner.upload(b"private bytes").get_json()
    return owner, file


def test_pages_json_errors_and_downloads_all_carry_the_headers(app, owner_with_file):
    owner, file = owner_with_file
    responses = [
        app.test_client().get("/"),
        owner.get("/files"),
        owner.get("/file/999"),
        owner.get(f"/file/{file['id']}"),
        app.test_client().get("/nowhere"),
    ]
    for response in responses:
        _assert_protected(response)


@pytest.mark.parametrize("path", ["/files", "/connections", "/chat/poll", "/", "/search?q=a"])
def test_private_answers_are_never_cached(make_user, path):
    assert make_user().get(path).headers["Cache-Control"] == "no-store"


def test_the_upload_answer_with_its_key_is_not_cached(make_user):
    answer = make_user().upload(b"x")
    assert answer.status_code == 201 and answer.headers["Cache-Control"] == "no-store"


def test_static_files_may_be_cached(app):
    response = app.test_client().get("/static/app.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_plain_http_gets_no_hsts_and_no_secure_cookie(app):
    response = app.test_client().get("/csrf")
    assert "Strict-Transport-Security" not in response.headers
    assert "Secure" not in response.headers["Set-Cookie"]


def test_https_gets_hsts_and_a_secure_http_only_lax_cookie(app):
    response = app.test_client().get("/csrf", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_https_behind_a_trusted_proxy_counts_as_https(settings, clock):
    from ghostcache import create_app

    app = create_app(settings.with_overrides(trusted_proxies=1), clock=clock)
    response = app.test_client().get("/csrf", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_proxy_header_is_not_believed_without_a_trusted_proxy(app):
    response = app.test_client().get("/csrf", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in response.headers["Set-Cookie"]


def test_download_is_an_octet_stream_attachment(owner_with_file):
    owner, file = owner_with_file
    response = owner.get(f"/file/{file['id']}")
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment;")


@pytest.mark.parametrize(
    ("name", "fallback", "encoded"),
    [
        ("notes.txt.age", 'filename="notes.txt.age"', "filename*=UTF-8''notes.txt.age"),
        (
            'a "quoted" name.age',
            'filename="a _quoted_ name.age"',
            "filename*=UTF-8''a%20%22quoted%22%20name.age",
        ),
        ("résumé.pdf.age", 'filename="r_sum_.pdf.age"', "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf.age"),
        ("semi;colon.age", 'filename="semi;colon.age"', "filename*=UTF-8''semi%3Bcolon.age"),
    ],
)
def test_attachment_names_are_encoded_per_rfc_6266(name, fallback, encoded):
    header = attachment_header(name)
    assert fallback in header and encoded in header
    assert "\r" not in header and "\n" not in header
