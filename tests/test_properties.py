"""Property tests: arbitrary input to every route never breaks the contract (docs/API.md): no 5xx
(nor an exception escaping the error handlers), no stack trace, and a JSON request gets a JSON object
(a list for /chat/poll) with a status from the contract; errors are exactly {"error", "message"}.
Hypothesis reuses fixtures across examples: the app lives in one module-scoped `world`, which
recreates whatever an example destroys."""

from __future__ import annotations

import itertools
import json
import logging
import re
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ghostcache import create_app
from ghostcache.database import upgrade
from ghostcache.settings import Settings
from tests.conftest import DPASS, PASSWORD, BufferedClient, Session

ALLOWED = {200, 201, 400, 401, 403, 404, 409, 410, 413, 429}
SMALL = settings(
    max_examples=50,
    deadline=None,
    report_multiple_bugs=False,  # shrink one bug: quicker
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
BIG = settings(SMALL, max_examples=150)  # the catch-all tests (paths, queries, uploads)

# Values that tend to break things, mixed into otherwise random text.
WEIRD = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\u202eexe.txt\u202c",
    "\u200b",
    "\ufeff",
    "e\u0301",
    "\r\n",
    "\t",
    "alice",
    "ALICE ",
    "bob",
    "../../etc/passwd",
    "C:\\x\\y.txt",
    "%",
    "_",
    "\\",
    "'\"<>&",
    "//[",
    "/a\nb",
    "http://[::1",
    "//evil.example",
    "/files",
    "0",
    "-1",
    "1",
    "1.5",
    "1e400",
    "١٢",
    "²",
    "1_0",
    " 7 ",
    "9" * 30,
    "9" * 5000,
    "NaN",
    "null",
    "{{7*7}}",
    "%(x)s",
]
text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(WEIRD),
    st.builds(lambda ch, n: ch * n, st.characters(codec="utf-8"), st.integers(1000, 20_000)),
)
ints = st.one_of(st.integers(), st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30, 10**4000]))
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(), text, st.sampled_from(["\ud800", "x\udfff"]))
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=6,
)
garbage = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"",
            b"{",
            b"}",
            b"\xff\xfe\x00",
            b'{"username": "bob"',
            b"{'a': 1}",
            b"[1,]",
            b"\x00",
            b'{"a": NaN}',
            b'{"a": 1e999999}',
            b"1" * 5000,
            b'{"username": "\\ud800"}',
        ]
    ),
    st.integers(500, 10_000).map(lambda n: b"[" * n + b"]" * n),  # deep nesting
    st.integers(500, 10_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)
JSON_TYPES = ["application/json", "application/json; charset=latin-1", "application/vnd.x+json", "text/json"]
ACCEPTS = [  # (Accept header, whether the contract makes that a JSON request)
    (None, False),
    ("text/html", False),
    ("*/*", False),
    ("application/json", True),
    ("text/html;q=0.5, application/json", True),
    ("application/json, text/html", False),
]
FIELD_NAMES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(  # some collide with template globals
        [
            "url_for",
            "csrf_token",
            "template_name_or_list",
            "request",
            "session",
            "g",
            "config",
            "get_flashed_messages",
            "current_user",
            "self",
            "next",
            "username",
            "message",
            "file",
        ]
    ),
)
FILENAMES = [
    "",
    " ",
    ".",
    "..",
    "../",
    "../../etc/passwd",
    "a/b/",
    "C:\\Users\\x\\doc.txt",
    "a\x00b.txt",
    "\x01\x02\x7f",
    "new\nline.txt",
    'quote".txt',
    "x" * 300,
    "\u202egpj.exe",
    "名前.txt",
    "%2e%2e%2f",
    "CON",
    "a;b=c",
    "a\r\nContent-Type: text/html",
]
EXPIRIES = [
    "",
    " ",
    "0",
    "-1",
    "1",
    "365",
    "366",
    "99999999999999999999",
    "9" * 5000,
    "1.5",
    "1e3",
    " 7 ",
    "٣",
    "1_0",
    "NaN",
    "inf",
    "seven",
    "\x00",
]

ROUTES = {  # name: (who acts, method, path, input fields)
    "register": ("anon", "POST", "/register", ("username", "password", "d_pass")),
    "login": ("anon", "POST", "/login", ("username", "password", "next")),
    "logout": ("spare", "POST", "/logout", ()),
    "delete_account": ("spare", "POST", "/delete_account", ()),
    "password": ("spare", "POST", "/password", ("password", "new_password")),
    "destruction_password": ("spare", "POST", "/destruction_password", ("password", "new_d_pass")),
    "connect": ("alice", "POST", "/connect", ("username",)),
    "accept": ("alice", "POST", "/connect/accept/{pending}", ()),
    "deny": ("alice", "POST", "/connect/deny/{pending}", ()),
    "chat_send": ("alice", "POST", "/chat/send", ("receiver_id", "message")),
    "chat_post": ("alice", "POST", "/chat/{bob}", ("message",)),
    "file_delete": ("alice", "POST", "/file/{file}/delete", ()),
    "file_share": ("alice", "POST", "/file/{file}/share", ("username",)),
    "file_unshare": ("alice", "POST", "/file/{file}/unshare", ("username",)),
    "file_hide": ("alice", "POST", "/file/{file}/hide", ()),
    "chat_poll": ("alice", "POST", "/chat/poll", ()),
}


class World:
    """alice <-> bob connected, carol's request to alice pending, alice's file shared with bob."""

    def __init__(self, app) -> None:
        self.app = app
        self._names = itertools.count(1)
        self.alice, self.bob, self.carol = (self.user(n) for n in ("alice", "bob", "carol"))
        conn = self.alice.post("/connect", {"username": "bob"}).get_json()
        assert self.bob.post(f"/connect/accept/{conn['id']}").status_code == 200
        self.pending = self.carol.post("/connect", {"username": "alice"}).get_json()["id"]
        self.file_id: int | None = None
        self.ensure_victim()

    def user(self, name: str | None = None) -> Session:
        """A logged-in user; named ones get a destruction password no example will guess."""
        session = Session(self.app)
        d_pass = DPASS if name is None else f"{name} only knows this one"
        name = name or f"spare{next(self._names)}"
        assert session.register(name, d_pass=d_pass).status_code == 201, name
        assert session.login(name).status_code == 200, name
        return session

    def ensure_victim(self) -> None:  # arbitrary logins aim at 'victim' and may destroy it
        assert Session(self.app).register("victim").status_code in (201, 409)

    def file(self) -> int:
        if self.file_id is None:
            self.file_id = self.alice.upload(b"secret", "a.txt").get_json()["id"]
            assert self.alice.post(f"/file/{self.file_id}/share", {"username": "bob"}).status_code == 201
        return self.file_id

    def actor(self, who: str, data=None) -> Session:  # alice's routes are also tried logged out
        if who == "alice" and data is not None and not data.draw(st.integers(0, 4), label="logged in"):
            who = "anon"
        return {"alice": lambda: self.alice, "anon": lambda: Session(self.app), "spare": self.user}[who]()

    def path(self, template: str) -> str:
        return template.format(pending=self.pending, bob=self.bob.id, file=self.file())

    def hints(self, data) -> dict[str, list]:
        fresh = data.draw(st.from_regex(r"[A-Za-z0-9_.\-]{3,32}", fullmatch=True), label="fresh name")
        return {
            "username": ["bob", "BOB", "carol", "alice", "victim", "nobody_here", fresh],
            "password": [PASSWORD, DPASS, "short"],
            "d_pass": [DPASS, PASSWORD],
            "new_password": ["a brand new password", DPASS, PASSWORD, "short", "x" * 1025],
            "new_d_pass": ["a brand new destruction one", DPASS, PASSWORD, "short", "x" * 1025],
            "receiver_id": [self.bob.id, str(self.bob.id), self.alice.id, self.carol.id],
            "message": ["hello"],
            "next": ["/files", "//[", "/a\nb"],
        }

    def after(self, route: str, response) -> None:  # recreate what an example may have destroyed
        if route == "file_delete" and response.status_code in (200, 302):
            self.file_id = None
        elif route == "login":
            self.ensure_victim()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    app = create_app(
        Settings(
            data_dir=tmp_path_factory.mktemp("properties"),
            argon2_profile="fast",
            purge_interval_seconds=0,
            ratelimit=False,
            log_level="CRITICAL",
        )
    )
    app.test_client_class = BufferedClient
    upgrade(app)
    yield World(app)
    logging.getLogger("ghostcache").setLevel("INFO")  # as create_app leaves it by default


def call(client, method: str, path: str, **kw):  # an exception escaping the app: a bare 500
    try:
        return client.open(path, method=method, **kw)
    except Exception as exc:
        raise AssertionError(f"{method} {path} {kw!r:.300}: unhandled {exc!r} (a 500 in production)") from exc


def check(response, wants_json: bool, what: str, list_ok: bool = False) -> None:
    status = response.status_code
    if response.mimetype == "application/octet-stream" and status == 200:
        return  # a download: the encrypted blob
    body = response.get_data().decode("utf-8", "replace")
    where = f"{what} -> {status} {body[:300]!r}"
    assert status < 500, where
    assert "Traceback" not in body and 'File "' not in body, where
    if not wants_json:
        return
    assert status in ALLOWED, where
    data = response.get_json(silent=True) if response.is_json else None
    assert isinstance(data, dict) or (list_ok and status == 200 and isinstance(data, list)), where
    if status >= 400:
        assert set(data) == {"error", "message"} and all(isinstance(v, str) for v in data.values()), where


def csrf_choice(data, session: Session) -> str | None:
    kind = data.draw(st.sampled_from(["ok", "ok", "ok", "missing", "junk"]), label="csrf")
    return {"ok": session.token, "missing": None, "junk": "junk-token"}[kind]


def accept_choice(data) -> tuple[dict, bool]:
    accept, wants_json = data.draw(st.sampled_from(ACCEPTS), label="accept")
    return ({"Accept": accept} if accept else {}), wants_json


def field_values(data, fields, hints, values):
    """Each field missing, a hint, or arbitrary; plus extra fields under arbitrary names."""
    out = []
    for name in fields:
        choice = data.draw(st.sampled_from(["missing", "hint", "hint", "any"]), label=name)
        if choice != "missing":
            value = data.draw(st.sampled_from(hints[name]) if choice == "hint" else values, label=name)
            out.append((name, value))
    return out + data.draw(st.lists(st.tuples(FIELD_NAMES, values), max_size=3), label="extra fields")


@pytest.mark.parametrize("route", list(ROUTES))
@SMALL
@given(data=st.data())
def test_json_bodies_never_break_the_contract(world, route, data):
    who, method, template, fields = ROUTES[route]
    session = world.actor(who, data)
    kind = data.draw(st.sampled_from(["object", "object", "object", "value", "garbage"]), label="body")
    if kind == "object":
        pairs = field_values(data, fields, world.hints(data), json_values)
        body = json.dumps(dict(reversed(pairs))).encode()  # the named fields win over extras
    elif kind == "value":
        body = json.dumps(data.draw(json_values, label="top-level value")).encode()
    else:
        body = data.draw(garbage, label="raw body")
    token = csrf_choice(data, session)
    headers = {"Accept": "application/json"} | ({"X-CSRFToken": token} if token else {})
    path = world.path(template)
    response = call(
        session.client,
        method,
        path,
        data=body,
        headers=headers,
        content_type=data.draw(st.sampled_from(JSON_TYPES), label="content type"),
    )
    check(response, True, f"{method} {path} json={body[:300]!r}", list_ok=path == "/chat/poll")
    world.after(route, response)


@pytest.mark.parametrize("route, field", [(r, f) for r, spec in ROUTES.items() for f in spec[3]])
@settings(SMALL, max_examples=8)
@given(surrogate=st.integers(0xD800, 0xDFFF).map(chr), after_valid_text=st.booleans())
def test_json_lone_surrogates_never_break_the_contract(world, route, field, surrogate, after_valid_text):
    """Valid JSON may escape a lone surrogate ("\\ud800"); Python reads it as a str that cannot be
    encoded to UTF-8 (for the database, a password hash, a cipher). That is a 400, never a 500."""
    who, method, template, fields = ROUTES[route]
    session = world.actor(who)
    valid = {
        "username": f"new{next(world._names)}" if route == "register" else "bob",
        "password": PASSWORD,
        "d_pass": DPASS,
        "new_password": "a brand new one",
        "new_d_pass": "another destruction one",
        "receiver_id": world.bob.id,
        "message": "hello",
        "next": "/files",
    }
    body = {name: valid[name] for name in fields}
    body[field] = f"{body[field] if after_valid_text else ''}{surrogate}"
    payload, path = json.dumps(body).encode(), world.path(template)  # ASCII, with a \\uXXXX escape
    response = call(
        session.client, method, path, data=payload, headers=session.headers(), content_type="application/json"
    )
    check(response, True, f"{method} {path} json={payload[:300]!r}", list_ok=path == "/chat/poll")
    world.after(route, response)


@pytest.mark.parametrize("route", list(ROUTES))
@SMALL
@given(data=st.data())
def test_form_posts_never_break_the_contract(world, route, data):
    who, method, template, fields = ROUTES[route]
    session = world.actor(who, data)
    headers, wants_json = accept_choice(data)
    token = csrf_choice(data, session)
    if data.draw(st.integers(0, 5), label="well-formed"):
        hints = {k: [str(v) for v in vs] for k, vs in world.hints(data).items()}
        pairs = field_values(data, fields, hints, text)
        if token is not None:
            pairs.insert(data.draw(st.integers(0, len(pairs)), label="token at"), ("csrf_token", token))
        body = urlencode(pairs).encode()
    else:
        body = data.draw(
            st.one_of(
                st.binary(max_size=300),
                st.sampled_from(
                    [b"a=%zz&b=%ff%fe", b"=&&=", b"username=%00&password", b"%", b"csrf_token=%"]
                ),
            ),
            label="raw",
        )
    path = world.path(template)
    response = call(
        session.client,
        method,
        path,
        data=body,
        headers=headers,
        content_type="application/x-www-form-urlencoded",
    )
    check(
        response,
        wants_json,
        f"{method} {path} form={body[:300]!r} headers={headers}",
        list_ok=path == "/chat/poll",
    )
    world.after(route, response)


next_values = st.one_of(
    text,
    st.sampled_from(
        [
            "/files?a=1#b",
            "//[",
            "/[",
            "/a\nb",
            "/\t/evil.example",
            "/\\x",
            "//evil.example",
            "https://evil.example/",
            "/%0a",
        ]
    ),
)


@SMALL
@given(
    nxt=next_values,
    json_next=st.one_of(next_values, json_values),
    as_json=st.booleans(),
    accept=st.sampled_from(ACCEPTS),
)
@example(nxt="/a\nb", json_next="", as_json=False, accept=(None, False))
def test_a_good_login_with_any_next_never_breaks_the_contract(world, nxt, json_next, as_json, accept):
    """`next` is an optional local path: any other value is ignored, never a 5xx or a redirect away."""
    session = Session(world.app)
    fields = {"username": "victim", "password": PASSWORD}
    if as_json:
        fields["next"] = json_next
        headers, wants_json = {"Accept": "application/json", "X-CSRFToken": session.token}, True
        response = call(session.client, "POST", "/login", json=fields, headers=headers)
    else:
        fields |= {"next": nxt, "csrf_token": session.token}
        headers, wants_json = ({"Accept": accept[0]} if accept[0] else {}), accept[1]
        response = call(session.client, "POST", "/login", data=fields, headers=headers)
    check(response, wants_json, what := f"POST /login next={fields['next']!r:.300} headers={headers}")
    if response.status_code == 302:  # where a browser goes (it drops tabs and newlines)
        location = re.sub(r"[\t\r\n]", "", response.headers["Location"])
        assert location.startswith("/") and not location.startswith(("//", "/\\")), what


PAGES = {"/login", "/connect", "/file/upload", "/register", "/", "/help"}  # HTML only (contract)
GETS = [
    "/search",
    "/chat/{bob}",
    "/chat/{carol}",
    "/login",
    "/connect",
    "/files",
    "/chat/poll",
    "/connections",
    "/csrf",
    "/file/upload",
    "/register",
    "/",
    "/help",
    "/file/{file}",
]
QUERY_NAMES = st.one_of(
    st.sampled_from(["q", "before", "limit", "next", "username", "last_event_id"]), st.text(max_size=8)
)


@BIG
@given(data=st.data())
def test_query_strings_never_break_the_contract(world, data):
    template = data.draw(st.sampled_from(GETS), label="page")
    path = template.format(bob=world.bob.id, carol=world.carol.id, file=world.file())
    session = world.actor("alice", data)
    headers, wants_json = accept_choice(data)
    if data.draw(st.booleans(), label="encoded"):
        query = urlencode(data.draw(st.lists(st.tuples(QUERY_NAMES, text), max_size=4), label="query"))
    else:
        query = data.draw(
            st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60), label="raw query"
        )
    response = call(session.client, "GET", path, query_string=query, headers=headers)
    check(
        response,
        wants_json and path not in PAGES,
        f"GET {path}?{query[:300]} headers={headers}",
        list_ok=True,
    )


ID_ROUTES = [
    ("GET", "/chat/{}"),
    ("POST", "/chat/{}"),
    ("POST", "/connect/accept/{}"),
    ("POST", "/connect/deny/{}"),
    ("GET", "/file/{}"),
    ("POST", "/file/{}/delete"),
    ("POST", "/file/{}/share"),
    ("POST", "/file/{}/unshare"),
    ("POST", "/file/{}/hide"),
]


@BIG
@given(data=st.data())
def test_path_ids_never_break_the_contract(world, data):
    method, template = data.draw(st.sampled_from(ID_ROUTES), label="route")
    known = [0, 1, world.bob.id, world.carol.id, world.pending, world.file(), 2**63 - 1, 2**63, 2**64]
    ident = data.draw(st.one_of(st.sampled_from(known), st.integers(0, 10**40)), label="id")
    path = template.format(str(ident).zfill(data.draw(st.integers(0, 3), label="zero padding")))
    session = world.actor("alice", data)
    headers, wants_json = accept_choice(data)
    fields = {"message": "hello", "username": data.draw(st.sampled_from(["bob", "carol", "x"]), label="to")}
    kw = (
        {"json": fields, "headers": headers | {"X-CSRFToken": session.token}}
        if wants_json
        else {"data": fields | {"csrf_token": session.token}, "headers": headers}
    )
    response = call(session.client, method, path, **kw)
    check(response, wants_json, f"{method} {path} headers={headers}")
    world.after("file_delete" if path.endswith("/delete") else "", response)


BOUNDARIES = [b"XyZ", b"----WebKitFormBoundary7MA4YWxkTrZu0gW", b"a" * 70, b"'()+_,-./:=?", b"b o"]


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: bytes) -> bytes:
    out = []
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + ("" if filename is None else f'; filename="{filename}"')
        head = f"Content-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            head += b"Content-Type: application/octet-stream\r\n"
        out.append(b"--" + boundary + b"\r\n" + head + b"\r\n" + value + b"\r\n")
    return b"".join(out) + b"--" + boundary + b"--\r\n"


def upload_body(data, session: Session, headers: dict) -> tuple[bytes, str]:
    """Maybe a file, expiry_days, extra fields, a CSRF token; maybe shuffled, cut, misdeclared."""
    parts: list[tuple[str, str | None, bytes]] = []
    if data.draw(st.integers(0, 5), label="has file"):
        name = data.draw(st.one_of(st.just("file"), st.just("file"), FIELD_NAMES), label="file field")
        filename = data.draw(
            st.one_of(st.sampled_from(FILENAMES), st.text(max_size=40), st.none()), label="filename"
        )
        parts.append((name, filename, data.draw(st.binary(max_size=3000), label="content")))
    expiry = data.draw(st.one_of(st.none(), st.sampled_from(EXPIRIES), text), label="expiry_days")
    if expiry is not None:
        parts.append(("expiry_days", None, expiry.encode()))
    extras = data.draw(st.lists(st.tuples(FIELD_NAMES, st.text(max_size=30)), max_size=3), label="extras")
    parts += [(n, None, v.encode()) for n, v in extras]
    parts += [(f"pad{i}", None, b"x") for i in range(data.draw(st.integers(0, 20), label="padding"))]
    csrf = data.draw(st.sampled_from(["header", "field", "field", "missing", "junk"]), label="csrf")
    if csrf == "header":
        headers["X-CSRFToken"] = session.token
    elif csrf != "missing":
        parts.append(("csrf_token", None, (session.token if csrf == "field" else "junk").encode()))
    if data.draw(st.booleans(), label="shuffle"):
        parts = data.draw(st.permutations(parts), label="order")
    boundary = data.draw(st.sampled_from(BOUNDARIES), label="boundary")
    body = multipart(parts, boundary)
    if data.draw(st.integers(0, 5), label="cut") == 0:
        body = body[: data.draw(st.integers(0, len(body)), label="cut at")]
    declared = data.draw(st.sampled_from([boundary, boundary, b"other"]), label="declared boundary")
    return body, f'multipart/form-data; boundary="{declared.decode()}"'


MP = "multipart/form-data; "
UPLOAD_TYPES = [
    None,
    MP[:-2],
    MP + "boundary=",
    MP + "boundary=x",
    MP + 'boundary="a b"',
    MP + "boundary*=UTF-8''%E2%82%AC",
    MP + "boundary*=UTF-8''abc",
    MP + "boundary=" + "x" * 200,
    "multipart/mixed; boundary=x",
    "application/octet-stream",
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
]
PART = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc'
RAW_UPLOADS = [
    b"",
    b"--x",
    b"--x--",
    b"--x\r\n\r\n--x--",
    b"--x\r\nContent-Disposition: form-data\r\n\r\n",
    PART,
    PART + b"\r\n--x--",
    b"\r\n--x\xff\xfe\r\n\x00",
]


@settings(BIG, max_examples=250)
@given(data=st.data())
def test_uploads_never_break_the_contract(world, data):
    session = world.actor("alice", data)
    headers, wants_json = accept_choice(data)
    if data.draw(st.integers(0, 3), label="well-formed"):
        body, content_type = upload_body(data, session, headers)
    else:
        headers["X-CSRFToken"] = session.token
        content_type = data.draw(st.sampled_from(UPLOAD_TYPES), label="content type")
        body = data.draw(st.one_of(st.binary(max_size=2000), st.sampled_from(RAW_UPLOADS)), label="body")
        wants_json = wants_json or content_type == "application/json"
    response = call(
        session.client, "POST", "/file/upload", data=body, headers=headers, content_type=content_type
    )
    what = f"POST /file/upload {content_type} headers={headers} body={body[:400]!r}"
    check(response, wants_json, what)
    assert response.status_code != 413, what  # 413 means too large; these bodies are a few KB
    if response.status_code == 201 and wants_json:  # what was stored downloads, whatever its name
        download = call(session.client, "GET", f"/file/{response.get_json()['id']}")
        assert download.status_code == 200 and download.mimetype == "application/octet-stream", what
