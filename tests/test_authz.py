"""Who may do what, generated from the app's own URL map.

Every route must be listed here with its expected answers: a route added later
without a decision (and a check) fails `test_every_route_has_a_decision`.
"""

from __future__ import annotations

import pytest

PUBLIC = {
    "auth.index",
    "auth.help",
    "auth.csrf_token",
    "auth.register_form",
    "auth.register",
    "auth.login_form",
    "auth.login",
    "auth.logout",
    "auth.logout_page",
    "docs.openapi",
    "health.healthz",  # load balancers' probes: no session, no detail (tests/test_health.py)
    "health.readyz",
    "static",
}

# endpoint -> what a logged-in stranger gets when aiming at someone else's object
STRANGER = {
    "connections.accept": 404,
    "connections.deny": 404,
    "connections.withdraw": 404,  # bob's pending request: only its sender may take it back
    "connections.remove": 403,  # user_id is a user id: not_connected, as for chat
    "connections.unblock": 404,  # blocks are keyed by the blocker: a stranger has none
    "files.download": 404,
    "files.view": 404,
    "files.delete": 404,
    "files.share": 404,
    "files.unshare": 404,
    "chat.read": 403,
    "files.hide": 404,
    "chat.page": 403,  # other_id is a user id: answer is not_connected, never the history
    "chat.post": 403,
    "e2ee.identity": 404,  # the same 404 as for no such user and for no identity
    "e2ee.enable": 403,  # other_id is a user id: not_connected, as for chat
    "e2ee.safety_page": 404,  # the same 404 as for no such user
    "invites.revoke": 404,  # alice's open invite: only its creator may revoke it
}

MEMBER_ONLY = {
    "auth.account",
    "auth.delete_account",
    "auth.change_password",
    "auth.change_destruction_password",
    "connections.connect_form",
    "connections.connect",
    "connections.index",
    "connections.block",
    "connections.blocks",
    "chat.send",
    "chat.poll",
    "chat.stream",
    "chat.conversation_list",
    "chat.latest",  # a redirect to chat.page, which decides (the stranger's 403 is there)
    "search.search",
    "files.index",
    "files.upload_form",
    "files.upload",
    "e2ee.publish_identity",
    "e2ee.reset_identity",
    "e2ee.backup",  # only ever the caller's own
    "e2ee.put_backup",
    "e2ee.setup_page",  # the caller's own keys only
    "invites.index",  # the caller's own invites only
    "invites.create",
} | set(STRANGER)


def _routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def test_every_route_has_a_decision(app):
    undecided = {r.endpoint for r, _ in _routes(app)} - PUBLIC - MEMBER_ONLY
    assert not undecided, f"routes without an authorization decision: {undecided}"


@pytest.fixture
def world(connect, make_user):
    """alice and bob connected, bob's pending request to carol, alice's file shared with bob,
    an open invite of alice's."""
    alice, bob = connect()
    carol = make_user()
    pending = bob.post("/connect", {"username": carol.username}).get_json()
    file = alice.upload(b"alice's secret").get_json()
    alice.post(f"/file/{file['id']}/share", {"username": bob.username})
    invite = alice.post("/invites").get_json()
    return {
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "file": file["id"],
        "pending": pending["id"],
        "invite": invite["id"],
    }


def _url(rule, ids: dict) -> str:
    values = {arg: ids[arg] for arg in rule.arguments}
    return rule.build(values, append_unknown=False)[1]


def _ids(world) -> dict:
    return {
        "conn_id": world["pending"],
        "file_id": world["file"],
        "other_id": world["alice"].id,
        "user_id": world["alice"].id,
        "filename": "app.css",
        "invite_id": world["invite"],
    }


def test_anonymous_gets_login_required_on_every_member_route(app, world):
    anonymous = app.test_client()
    token = anonymous.get("/csrf").get_json()["csrf_token"]
    for rule, method in _routes(app):
        if rule.endpoint not in MEMBER_ONLY:
            continue
        response = anonymous.open(
            _url(rule, _ids(world)),
            method=method,
            headers={"Accept": "application/json", "X-CSRFToken": token},
        )
        assert response.status_code == 401, (method, rule.rule)
        assert response.get_json()["error"] == "login_required"


def test_stranger_cannot_touch_other_peoples_objects(app, world, make_user):
    stranger = make_user()
    for rule, method in _routes(app):
        if rule.endpoint not in STRANGER:
            continue
        response = stranger.client.open(
            _url(rule, _ids(world)),
            method=method,
            headers=stranger.headers(),
            json={"username": "x", "message": "hi"},
        )
        assert response.status_code == STRANGER[rule.endpoint], (method, rule.rule)


def test_stranger_answer_is_the_same_as_for_a_missing_object(world, make_user):
    stranger = make_user()
    for path in ("/file/{}", "/file/{}/view"):
        real = stranger.get(path.format(world["file"]))
        missing = stranger.get(path.format(999999))
        assert (real.status_code, real.get_json()) == (missing.status_code, missing.get_json())
    real = stranger.post(f"/connect/accept/{world['pending']}")
    missing = stranger.post("/connect/accept/999999")
    assert (real.status_code, real.get_json()) == (missing.status_code, missing.get_json())


def test_sender_cannot_accept_their_own_request(world):
    assert world["bob"].post(f"/connect/accept/{world['pending']}").status_code == 404


def test_rightful_parties_succeed(world):
    alice, bob, carol = world["alice"], world["bob"], world["carol"]
    assert carol.post(f"/connect/accept/{world['pending']}").status_code == 200
    assert bob.get(f"/file/{world['file']}").status_code == 200
    assert bob.get(f"/file/{world['file']}/view").status_code == 200
    assert alice.get(f"/file/{world['file']}/view").get_json()["shared_with"] == [
        {"id": bob.id, "username": bob.username}
    ]
    assert bob.get(f"/chat/{alice.id}").status_code == 200
    assert alice.post(f"/chat/{bob.id}", {"message": "hello"}).status_code == 201
    assert alice.post(f"/file/{world['file']}/delete").status_code == 200
