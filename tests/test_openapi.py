"""The OpenAPI document: valid OpenAPI 3.1, complete against the URL map, and true
to what the server really answers (a scripted session checked against it)."""

from __future__ import annotations

import re

import jsonschema
import pytest
import schemathesis
from jsonschema.exceptions import ValidationError

from ghostcache.openapi import openapi_document
from tests.conftest import JSON, PASSWORD, Session

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def doc() -> dict:
    return openapi_document()


def _operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


# --- (a) a valid OpenAPI 3.1 document ---------------------------------------


def test_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"] == "3.1.0"
    # Schemathesis checks against the official OpenAPI 3.1 meta-schema it ships.
    schemathesis.openapi.from_dict(doc).validate()


def test_the_validation_above_does_reject_a_broken_document(doc):
    broken = openapi_document()
    broken["paths"]["/csrf"]["get"]["responses"] = {"200": {"content": {}}}  # no description
    with pytest.raises(Exception):  # noqa: B017 - any validation error will do
        schemathesis.openapi.from_dict(broken).validate()


def test_component_schemas_are_valid_json_schema_2020_12(doc):
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema), name


def test_every_reference_resolves(doc):
    refs = re.findall(r"'\$ref': '#/([^']+)'", repr(doc))
    assert refs
    for target in refs:
        node = doc
        for part in target.split("/"):
            node = node[part]


def test_operation_ids_are_unique_and_path_parameters_declared(doc):
    ids = [op["operationId"] for _, _, op in _operations(doc)]
    assert len(ids) == len(set(ids))
    for path, method, op in _operations(doc):
        templated = set(re.findall(r"{(\w+)}", path))
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert templated == declared, (method, path)
        assert op["responses"], (method, path)


def test_required_components_and_security_schemes(doc):
    schemas = doc["components"]["schemas"]
    for name in ("User", "Connection", "Message", "HistoryMessage", "File", "OwnedFile", "Error"):
        assert name in schemas
    assert schemas["Error"]["required"] == ["error", "message"]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["session"] == schemes["session"] | {"type": "apiKey", "in": "cookie", "name": "session"}
    assert schemes["csrf"] == schemes["csrf"] | {"type": "apiKey", "in": "header", "name": "X-CSRFToken"}


def test_served_at_openapi_json(app, doc):
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == doc


# --- (b) complete against the URL map ---------------------------------------


def _flask_to_openapi(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_route_is_documented_and_every_documented_route_exists(app, doc):
    routes = {
        (_flask_to_openapi(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, method, _ in _operations(doc)}
    assert routes - documented == set(), "routes without an OpenAPI entry"
    assert documented - routes == set(), "documented routes the app does not have"


# --- (c) real answers match the document ------------------------------------


class Checker:
    """Looks up the documented answer for a route and status and validates a response."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.seen: set[tuple[str, str, int]] = set()

    def __call__(self, method: str, path: str, response):
        responses = self.doc["paths"][path][method]["responses"]
        status = str(response.status_code)
        assert status in responses, f"{method.upper()} {path}: undocumented {status} {response.data[:200]}"
        documented = responses[status]["content"]
        assert response.mimetype in documented, (method, path, status, response.mimetype)
        schema = documented[response.mimetype]["schema"]
        if response.mimetype == "application/json":
            validator = jsonschema.Draft202012Validator({**schema, "components": self.doc["components"]})
            try:
                validator.validate(response.get_json())
            except ValidationError as exc:
                raise AssertionError(f"{method.upper()} {path} {status}: {exc.message}") from None
        for name, header in responses[status].get("headers", {}).items():
            assert not header.get("required") or name in response.headers, (method, path, name)
        self.seen.add((method, path, response.status_code))
        return response.get_json() if response.is_json else response


def test_a_scripted_session_matches_the_document(app, doc, clock):
    check = Checker(doc)
    alice, bob, carol = Session(app), Session(app), Session(app)
    check("get", "/csrf", alice.get("/csrf"))

    for user, name in ((alice, "alice"), (bob, "Bob.b"), (carol, "carol_c")):
        check("post", "/register", user.register(name))
        me = check("post", "/login", user.login(name))
        user.token, user.id = me["csrf_token"], me["id"]
    check("post", "/register", Session(app).register("ALICE"))  # 409 username_taken
    check("post", "/register", Session(app).register("x"))  # 400 invalid_username
    guesser = Session(app)
    for _ in range(10):
        check("post", "/login", guesser.login("alice", "wrong password"))  # 401
    check("post", "/login", guesser.login("alice", "wrong password"))  # 429 with Retry-After

    conn = check("post", "/connect", alice.post("/connect", {"username": "bob.B"}))
    check("post", "/connect", alice.post("/connect", {"username": "bob.b"}))  # 409
    check("post", "/connect", alice.post("/connect", {"username": "nobody"}))  # 404
    check("post", "/connect", alice.post("/connect", {"username": 7}))  # 400 invalid_field
    check("get", "/connections", bob.get("/connections"))
    check("post", "/connect/accept/{conn_id}", bob.post(f"/connect/accept/{conn['id']}"))
    check("post", "/connect/accept/{conn_id}", bob.post(f"/connect/accept/{conn['id']}"))  # 409
    pending = check("post", "/connect", carol.post("/connect", {"username": "alice"}))
    check("post", "/connect/deny/{conn_id}", alice.post(f"/connect/deny/{pending['id']}"))
    check("post", "/connect", carol.post("/connect", {"username": "alice"}))  # 403 blocked
    check("get", "/connections", alice.get("/connections"))

    sent = {"receiver_id": bob.id, "message": "hello <b>bob</b>"}
    check("post", "/chat/send", alice.post("/chat/send", sent))
    check("post", "/chat/send", alice.post("/chat/send", sent | {"receiver_id": carol.id}))  # 403
    check("post", "/chat/send", alice.post("/chat/send", sent | {"message": "x" * 10_001}))  # 400
    check("post", "/chat/{other_id}", bob.post(f"/chat/{alice.id}", {"message": "hi alice"}))
    assert len(check("get", "/chat/poll", bob.get("/chat/poll"))) == 1
    history = check("get", "/chat/{other_id}", alice.get(f"/chat/{bob.id}?limit=1"))
    assert len(history["messages"]) == 1
    check("get", "/chat/{other_id}", alice.get(f"/chat/{bob.id}?before=abc"))  # 400
    check("get", "/chat/{other_id}", alice.get(f"/chat/{carol.id}"))  # 403

    stored = check("post", "/file/upload", alice.upload(b"secret", "a/b/notes.txt", "1"))
    check("post", "/file/upload", alice.upload(b"x", "n.txt", "0"))  # 400 invalid_expiry
    check("post", "/file/{file_id}/share", alice.post(f"/file/{stored['id']}/share", {"username": "bob.b"}))
    check("post", "/file/{file_id}/share", alice.post(f"/file/{stored['id']}/share", {"username": "bob.b"}))
    check("post", "/file/{file_id}/share", alice.post(f"/file/{stored['id']}/share", {"username": "alice"}))
    check("post", "/file/{file_id}/share", alice.post(f"/file/{stored['id']}/share", {"username": "carol_c"}))
    check("get", "/files", alice.get("/files"))
    check("get", "/files", bob.get("/files"))
    check("get", "/file/{file_id}", bob.get(f"/file/{stored['id']}"))
    check("get", "/file/{file_id}", carol.get(f"/file/{stored['id']}"))  # 404
    assert "shared_with" in check("get", "/file/{file_id}/view", alice.get(f"/file/{stored['id']}/view"))
    assert "shared_with" not in check("get", "/file/{file_id}/view", bob.get(f"/file/{stored['id']}/view"))
    check("get", "/file/{file_id}/view", bob.client.get(f"/file/{stored['id']}/view"))  # the page
    check("get", "/file/{file_id}/view", carol.get(f"/file/{stored['id']}/view"))  # 404
    check("get", "/search", alice.get("/search?q=B"))
    check("get", "/search", alice.get("/search"))
    clock.advance(days=2)
    check("get", "/file/{file_id}", bob.get(f"/file/{stored['id']}"))  # 410
    check("get", "/file/{file_id}/view", bob.get(f"/file/{stored['id']}/view"))  # 410
    check("post", "/file/{file_id}/delete", alice.post(f"/file/{stored['id']}/delete"))
    check("post", "/file/{file_id}/delete", alice.post(f"/file/{stored['id']}/delete"))  # 404

    check("post", "/chat/send", alice.post("/chat/send", sent, headers={"X-CSRFToken": "nope"}))  # 400
    check("get", "/files", Session(app).get("/files"))  # 401
    check("get", "/openapi.json", alice.get("/openapi.json"))
    for page in ("/", "/help", "/register", "/login", "/connect", "/file/upload"):
        check("get", page, alice.client.get(page))
    new_password = {"password": "wrong password", "new_password": "another long one"}
    check("post", "/password", carol.post("/password", new_password))  # 401
    check("post", "/password", carol.post("/password", new_password | {"password": PASSWORD}))
    check("get", "/logout", carol.get("/logout"))  # 405: a GET signs nobody out
    check("post", "/logout", carol.post("/logout"))
    check("post", "/delete_account", bob.post("/delete_account"))
    check("post", "/delete_account", bob.post("/delete_account"))  # 401 now

    statuses = {status for _, _, status in check.seen}
    assert statuses >= {200, 201, 400, 401, 403, 404, 409, 410, 429}
    assert len({(m, p) for m, p, _ in check.seen}) >= 25


def test_html_requests_still_get_pages(app):
    """The JSON face is opt-in; without it a page route answers HTML."""
    client = app.test_client()
    assert client.get("/register").mimetype == "text/html"
    assert client.get("/openapi.json", headers={"Accept": "text/html"}).mimetype == "application/json"
    assert client.get("/csrf", headers=JSON).mimetype == "application/json"
