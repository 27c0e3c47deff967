"""Shares only where they are wanted: accepted contacts only, the owner revokes, the
recipient hides, a block withdraws them (docs/API.md, Files)."""

from __future__ import annotations

import re
from html import unescape

import jsonschema
import pytest

from ghostcache.extensions import db
from ghostcache.models import FileAccess
from ghostcache.openapi import openapi_document
from ghostcache.services.context import Context
from tests.conftest import Session

META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def upload(session: Session, filename: str = "plan.txt") -> int:
    response = session.upload(b"secret plans", filename)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def share(owner: Session, file_id: int, username: str | None):
    return owner.post(f"/file/{file_id}/share", {} if username is None else {"username": username})


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]


def can_reach(session: Session, file_id: int) -> bool:
    """Download, file page and listing all agree on whether `session` has the file."""
    download = session.get(f"/file/{file_id}").status_code
    view = session.get(f"/file/{file_id}/view").status_code
    listed = file_id in [f["id"] for f in session.get("/files").get_json()["shared"]]
    assert (download, view) in ((200, 200), (404, 404)), (download, view)
    assert listed == (download == 200)
    return listed


def shared_with(owner: Session, file_id: int) -> list[str]:
    return [u["username"] for u in owner.get(f"/file/{file_id}/view").get_json()["shared_with"]]


@pytest.fixture
def shared(connect):
    """alice's file shared with her contact bob: (alice, bob, file id)."""
    alice, bob = connect()
    file_id = upload(alice)
    assert share(alice, file_id, bob.username).status_code == 201
    return alice, bob, file_id


# ---- sharing needs an accepted contact ------------------------------------------


@pytest.mark.parametrize("relation", ["stranger", "request sent", "request received"])
def test_sharing_with_anyone_but_an_accepted_contact_is_403_not_connected(make_user, relation):
    alice, other = make_user(), make_user()
    if relation == "request sent":
        assert alice.post("/connect", {"username": other.username}).status_code == 201
    elif relation == "request received":
        assert other.post("/connect", {"username": alice.username}).status_code == 201
    file_id = upload(alice)
    response = share(alice, file_id, other.username)
    assert error_of(response) == (403, "not_connected")
    assert response.get_json()["message"] == "You can only share files with accepted contacts."
    assert not can_reach(other, file_id)
    assert shared_with(alice, file_id) == []


def test_share_refusals_keep_their_order(make_user, connect):
    alice, bob = connect()
    blocked, stranger = make_user(), make_user()
    request = blocked.post("/connect", {"username": alice.username}).get_json()
    assert alice.post(f"/connect/deny/{request['id']}").status_code == 200  # blocked, and no contact
    file_id = upload(alice)
    assert share(alice, file_id, bob.username).status_code == 201
    cases = [
        (None, 400, "missing_field"),
        ("nobody-here", 404, "user_not_found"),
        (alice.username.upper(), 400, "cannot_share_with_self"),
        (blocked.username, 403, "blocked"),  # before not_connected, although both hold
        (stranger.username, 403, "not_connected"),
        (bob.username, 409, "already_shared"),
    ]
    for username, status, code in cases:
        assert error_of(share(alice, file_id, username)) == (status, code), username


def test_a_contact_can_be_shared_with_in_either_direction_of_the_request(connect):
    bob, alice = connect()  # bob asked, alice accepted
    file_id = upload(alice)
    assert share(alice, file_id, bob.username).status_code == 201
    assert can_reach(bob, file_id)


# ---- the owner revokes -----------------------------------------------------------


def test_unshare_takes_access_away_at_once(shared):
    alice, bob, file_id = shared
    assert can_reach(bob, file_id)
    response = alice.post(f"/file/{file_id}/unshare", {"username": bob.username.upper()})
    assert response.status_code == 200
    assert response.get_json() == {"file_id": file_id, "user": {"id": bob.id, "username": bob.username}}
    assert not can_reach(bob, file_id)
    assert error_of(bob.get(f"/file/{file_id}")) == (404, "not_found")
    assert shared_with(alice, file_id) == []
    assert alice.get(f"/file/{file_id}").status_code == 200  # the owner keeps the file


def test_a_revoked_share_can_be_given_again(shared):
    alice, bob, file_id = shared
    assert alice.post(f"/file/{file_id}/unshare", {"username": bob.username}).status_code == 200
    assert share(alice, file_id, bob.username).status_code == 201
    assert can_reach(bob, file_id)


def test_unshare_leaves_the_other_grantees_alone(shared, connect):
    alice, bob, file_id = shared
    _, carol = connect(alice)
    assert share(alice, file_id, carol.username).status_code == 201
    assert alice.post(f"/file/{file_id}/unshare", {"username": bob.username}).status_code == 200
    assert can_reach(carol, file_id) and not can_reach(bob, file_id)
    assert shared_with(alice, file_id) == [carol.username]


def test_unshare_refusals(shared, make_user, connect):
    alice, bob, file_id = shared
    _, carol = connect(alice)  # a contact, but not holding a share
    cases = [
        ({}, 400, "missing_field"),
        ({"username": ""}, 400, "missing_field"),
        ({"username": 7}, 400, "invalid_field"),
        ({"username": carol.username}, 404, "not_shared"),
        ({"username": "nobody-here"}, 404, "not_shared"),
        ({"username": alice.username}, 404, "not_shared"),
    ]
    for body, status, code in cases:
        assert error_of(alice.post(f"/file/{file_id}/unshare", body)) == (status, code), body
    assert can_reach(bob, file_id)  # none of that touched bob's share
    assert alice.post(f"/file/{file_id}/unshare", {"username": bob.username}).status_code == 200
    again = alice.post(f"/file/{file_id}/unshare", {"username": bob.username})
    assert error_of(again) == (404, "not_shared")


@pytest.mark.parametrize("who", ["stranger", "grantee"])
def test_only_the_owner_may_unshare_and_others_get_the_404_of_a_missing_file(shared, make_user, who):
    alice, bob, file_id = shared
    actor = bob if who == "grantee" else make_user()
    body = {"username": bob.username}
    theirs = actor.post(f"/file/{file_id}/unshare", body)
    missing = actor.post(f"/file/{file_id + 1000}/unshare", body)
    assert error_of(theirs) == error_of(missing) == (404, "not_found")
    assert theirs.get_json() == missing.get_json()
    assert can_reach(bob, file_id)


def test_unshare_works_on_an_expired_file(connect, clock):
    alice, bob = connect()
    file_id = alice.upload(b"short", "short.txt", expiry_days="1").get_json()["id"]
    assert share(alice, file_id, bob.username).status_code == 201
    clock.advance(days=2)
    assert error_of(bob.get(f"/file/{file_id}")) == (410, "expired")
    assert alice.post(f"/file/{file_id}/unshare", {"username": bob.username}).status_code == 200
    assert error_of(bob.get(f"/file/{file_id}")) == (404, "not_found")  # no longer even "expired"


# ---- the recipient hides -----------------------------------------------------------


def test_hide_drops_the_file_from_my_list_and_my_access(shared):
    alice, bob, file_id = shared
    response = bob.post(f"/file/{file_id}/hide")
    assert (response.status_code, response.get_json()) == (200, {"hidden": True})
    assert not can_reach(bob, file_id)
    assert shared_with(alice, file_id) == []
    assert alice.get(f"/file/{file_id}").status_code == 200  # the owner's file is untouched


def test_hide_is_404_unless_you_hold_a_share(shared, make_user):
    alice, bob, file_id = shared
    stranger = make_user()
    owner = alice.post(f"/file/{file_id}/hide")
    assert error_of(owner) == (404, "not_found")  # owners delete, they do not hide
    theirs, missing = stranger.post(f"/file/{file_id}/hide"), stranger.post(f"/file/{file_id + 1000}/hide")
    assert error_of(theirs) == (404, "not_found") and theirs.get_json() == missing.get_json()
    assert can_reach(bob, file_id) and alice.get(f"/file/{file_id}").status_code == 200
    assert bob.post(f"/file/{file_id}/hide").status_code == 200
    assert error_of(bob.post(f"/file/{file_id}/hide")) == (404, "not_found")  # once only


@pytest.mark.parametrize("file_id", [0, 2**31, 2**63, 2**64, 10**40])
def test_unshare_and_hide_with_ids_no_column_can_hold_are_404(shared, file_id):
    alice, bob, _ = shared
    assert error_of(alice.post(f"/file/{file_id}/unshare", {"username": bob.username})) == (404, "not_found")
    assert error_of(bob.post(f"/file/{file_id}/hide")) == (404, "not_found")


# ---- a block withdraws shares both ways -----------------------------------------------


def test_a_block_withdraws_shares_in_both_directions(app, make_user):
    """Shares made before the contact rule (an older version allowed any user) are
    written straight to the database: a deny must still take them back, both ways."""
    asker, denier = make_user(), make_user()
    mine, theirs = upload(denier, "denier.txt"), upload(asker, "asker.txt")
    with app.app_context():
        ctx = Context(db=db.session, rt=app.extensions["ghostcache"])
        with ctx.write():
            ctx.db.add_all(
                [
                    FileAccess(file_id=mine, user_id=asker.id, granted_at=ctx.now()),
                    FileAccess(file_id=theirs, user_id=denier.id, granted_at=ctx.now()),
                ]
            )
    assert can_reach(asker, mine) and can_reach(denier, theirs)
    request = asker.post("/connect", {"username": denier.username}).get_json()
    assert denier.post(f"/connect/deny/{request['id']}").status_code == 200
    assert not can_reach(asker, mine) and not can_reach(denier, theirs)
    assert shared_with(denier, mine) == [] and shared_with(asker, theirs) == []
    assert error_of(share(denier, mine, asker.username)) == (403, "blocked")


# ---- the answers match the OpenAPI document ----------------------------------------


def test_unshare_and_hide_answers_match_the_openapi_document(shared, make_user):
    alice, bob, file_id = shared
    doc = openapi_document()

    def check(path: str, response) -> None:
        documented = doc["paths"][path]["post"]["responses"][str(response.status_code)]
        schema = documented["content"]["application/json"]["schema"]
        jsonschema.validate(response.get_json(), {**schema, "components": doc["components"]})

    check("/file/{file_id}/share", share(alice, file_id, make_user().username))  # 403 not_connected
    check("/file/{file_id}/unshare", alice.post(f"/file/{file_id}/unshare", {}))  # 400
    check("/file/{file_id}/unshare", alice.post(f"/file/{file_id}/unshare", {"username": "nobody"}))
    check("/file/{file_id}/unshare", alice.post(f"/file/{file_id}/unshare", {"username": bob.username}))
    assert share(alice, file_id, bob.username).status_code == 201
    check("/file/{file_id}/hide", bob.post(f"/file/{file_id}/hide"))
    check("/file/{file_id}/hide", bob.post(f"/file/{file_id}/hide"))  # 404


# ---- the browser face ------------------------------------------------------------------


class Browser:
    """A signed-in person with a browser: posts forms with the page's token, follows redirects."""

    def __init__(self, session: Session) -> None:
        self.client = session.client

    def page(self, path: str) -> str:
        response = self.client.get(path)
        assert response.status_code == 200, path
        return response.get_data(as_text=True)

    def submit(self, path: str, **fields) -> str:
        fields.setdefault("csrf_token", META.search(self.page("/")).group(1))
        response = self.client.post(path, data=fields, follow_redirects=True)
        assert response.request.path == "/files", path
        return response.get_data(as_text=True)


def forms_to(html: str, action: str) -> list[str]:
    return re.findall(rf'<form[^>]*action="{re.escape(action)}"[^>]*>.*?</form>', html, re.S)


def accessible_name(button_html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", "", button_html)).split())


def assert_forms_are_sound(html: str) -> None:
    """Every POST form carries the CSRF token; every visible input has a label;
    no inline scripts or styles."""
    for form in re.findall(r'<form[^>]*method="post"[^>]*>.*?</form>', html, re.S):
        assert re.search(r'<input type="hidden" name="csrf_token" value="[^"]+">', form), form
    for field in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        if 'type="hidden"' in field:
            continue
        field_id = re.search(r'id="([^"]+)"', field)
        assert field_id and f'<label for="{field_id.group(1)}"' in html, field
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) and " style=" not in html


def test_files_page_offers_revoke_per_grantee_and_remove_for_shared_files(shared, connect):
    alice, bob, file_id = shared
    _, carol = connect(alice)
    assert share(alice, file_id, carol.username).status_code == 201
    html = Browser(alice).page("/files")
    assert_forms_are_sound(html)
    revokes = forms_to(html, f"/file/{file_id}/unshare")
    assert len(revokes) == 2
    for form, user in zip(revokes, sorted([bob, carol], key=lambda u: u.username.lower()), strict=True):
        assert f'<input type="hidden" name="username" value="{user.username}">' in form
        button = re.search(r"<button[^>]*>(.*?)</button>", form, re.S).group(1)
        assert accessible_name(button) == f"Revoke {user.username}’s access to plan.txt"
    theirs = Browser(bob).page("/files")
    assert_forms_are_sound(theirs)
    (hide,) = forms_to(theirs, f"/file/{file_id}/hide")
    button = re.search(r"<button[^>]*>(.*?)</button>", hide, re.S).group(1)
    assert accessible_name(button) == "Remove from my list: plan.txt"
    assert not forms_to(theirs, f"/file/{file_id}/unshare")
    assert not forms_to(html, f"/file/{file_id}/hide")  # the owner's own file has no such button


def test_file_page_has_the_same_controls(shared):
    alice, bob, file_id = shared
    owner_page = Browser(alice).page(f"/file/{file_id}/view")
    assert_forms_are_sound(owner_page)
    (revoke,) = forms_to(owner_page, f"/file/{file_id}/unshare")
    assert f'name="username" value="{bob.username}"' in revoke
    assert not forms_to(owner_page, f"/file/{file_id}/hide")
    grantee_page = Browser(bob).page(f"/file/{file_id}/view")
    assert_forms_are_sound(grantee_page)
    assert forms_to(grantee_page, f"/file/{file_id}/hide")
    assert not forms_to(grantee_page, f"/file/{file_id}/unshare")


def test_names_in_the_controls_are_escaped(connect):
    alice, bob = connect()
    file_id = upload(alice, "<img src=x onerror=alert(1)>.txt")
    assert share(alice, file_id, bob.username).status_code == 201
    for html in (Browser(alice).page("/files"), Browser(bob).page("/files")):
        assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;.txt" in html


def test_revoke_and_remove_through_the_forms(shared):
    alice, bob, file_id = shared
    page = Browser(alice).submit(f"/file/{file_id}/unshare", username=bob.username)
    assert f"No longer shared with {bob.username}." in page
    assert not can_reach(bob, file_id)
    assert share(alice, file_id, bob.username).status_code == 201
    page = Browser(bob).submit(f"/file/{file_id}/hide")
    assert "Removed from your list." in page and "plan.txt" not in page
    assert not can_reach(bob, file_id)


def test_a_refused_revoke_or_remove_is_flashed_on_the_files_page(shared, make_user):
    alice, bob, file_id = shared
    page = Browser(alice).submit(f"/file/{file_id}/unshare", username="nobody-here")
    assert "That file is not shared with this user." in page
    page = Browser(alice).submit(f"/file/{file_id}/hide")
    assert "does not exist or is not yours to see" in page
    assert can_reach(bob, file_id)


def test_share_form_to_a_non_contact_is_flashed(make_user):
    alice, stranger = make_user(), make_user()
    file_id = upload(alice)
    page = Browser(alice).submit(f"/file/{file_id}/share", username=stranger.username)
    assert "You can only share files with accepted contacts." in page


def test_forms_without_a_token_change_nothing(shared):
    alice, bob, file_id = shared
    for session, path, fields in (
        (alice, f"/file/{file_id}/unshare", {"username": bob.username}),
        (bob, f"/file/{file_id}/hide", {}),
    ):
        response = session.client.post(path, data=fields, headers={"Accept": "application/json"})
        assert error_of(response) == (400, "csrf_failed")
    assert can_reach(bob, file_id)
