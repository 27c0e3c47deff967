"""The pages of end-to-end encryption, without a browser: every script a page loads carries
the SHA-384 of the bytes served (Subresource Integrity), the CSP stays as strict as it was,
the setup and safety-number pages render (the latter for contacts only), and a chat page
hands its script each envelope as escaped JSON."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re

import pytest

from ghostcache import e2ee as gce1
from ghostcache.web.headers import CONTENT_SECURITY_POLICY

SCRIPT = re.compile(r"<script\b([^>]*)>\s*</script>")
ATTRIBUTE = re.compile(r'(\w[\w-]*)(?:="([^"]*)")?')
EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
)


def scripts(page: str) -> list[dict[str, str]]:
    """The attributes of every <script> on a page."""
    return [
        {k: html.unescape(v or "") for k, v in ATTRIBUTE.findall(attrs)} for attrs in SCRIPT.findall(page)
    ]


def sha384(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


@pytest.fixture
def contacts(connect):
    """Two connected users, alice with an identity, and their connection id."""
    alice, bob = connect()
    pub = gce1.public_raw(gce1.generate_identity())
    assert alice.post("/e2ee/identity", {"pub": gce1.b64u(pub)}).status_code == 201
    return alice, bob


def page(session, path: str) -> str:
    response = session.client.get(path)
    assert response.status_code == 200, path
    return response.get_data(as_text=True)


def test_every_script_carries_the_integrity_of_what_is_served(contacts):
    alice, bob = contacts
    file_id = alice.upload(b"x").get_json()["id"]
    paths = ["/", "/account", "/file/upload", f"/file/{file_id}/view", "/e2ee", f"/chat/{bob.id}"]
    paths.append(f"/contacts/{bob.id}/safety")
    seen = set()
    for path in paths:
        found = scripts(page(alice, path))
        assert found, path
        for attrs in found:
            served = alice.client.get(attrs["src"])
            assert served.status_code == 200, attrs["src"]
            assert attrs["integrity"] == sha384(served.get_data()), (path, attrs["src"])
            assert "crossorigin" not in attrs and "defer" in attrs
            seen.add(attrs["src"].rsplit("/", 1)[-1])
    expected = {"app.js", "e2ee.js", "e2ee-keys.js", "e2ee-setup.js", "e2ee-chat.js", "e2ee-safety.js"}
    assert expected | {"upload.js", "decrypt.js", "age.bundle.js"} <= seen


def test_the_csp_is_unchanged_and_allows_nothing_unsafe(contacts):
    alice, bob = contacts
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP
    for path in ("/e2ee", f"/chat/{bob.id}", f"/contacts/{bob.id}/safety"):
        csp = alice.client.get(path).headers["Content-Security-Policy"]
        assert csp == EXPECTED_CSP and "unsafe" not in csp


def test_the_setup_page_works_through_its_script_and_says_so_without_it(make_user):
    text = page(make_user(), "/e2ee")
    assert "End-to-end encryption" in text and "needs JavaScript" in text
    assert "<script>" not in text and "style=" not in text and " on" + "click" not in text


def test_the_safety_page_is_for_contacts_only(contacts, make_user, app):
    alice, bob = contacts
    text = page(alice, f"/contacts/{bob.id}/safety")
    assert alice.username in text and bob.username in text
    assert f"ghostcache-client safety {bob.username}" in text
    stranger = make_user()
    for user_id in (stranger.id, alice.id, 999_999, 0):
        assert alice.client.get(f"/contacts/{user_id}/safety").status_code == 404
    assert app.test_client().get(f"/contacts/{bob.id}/safety").status_code == 302


def test_the_chat_page_hands_the_script_each_envelope_as_escaped_json(contacts):
    alice, bob = contacts
    key = gce1.generate_identity()
    assert bob.post("/e2ee/identity", {"pub": gce1.b64u(gce1.public_raw(key))}).status_code == 201
    assert bob.post(f"/chat/{alice.id}/e2ee").status_code == 200
    alice_pub = gce1.b64u_decode(alice.get(f"/e2ee/identity/{alice.id}").get_json()["pub"])
    conv = int(re.search(r'data-conv="(\d+)"', page(bob, f"/chat/{alice.id}")).group(1))
    envelope = gce1.encrypt_message(key, bob.id, alice_pub, alice.id, conv, "<b>'hi'</b> & \"bye\"")
    assert bob.post("/chat/send", {"receiver_id": alice.id, "envelope": envelope}).status_code == 201
    text = page(alice, f"/chat/{bob.id}")
    raw = re.search(r"data-envelope='([^']*)'", text).group(1)
    assert json.loads(html.unescape(raw)) == envelope
    assert "Encrypted message" in text and "data-e2ee-since=" in text
