"""GhostCache's HTTP face as an OpenAPI 3.1 document, built as plain Python data.

docs/API.md is the contract; this module restates it in machine-readable form
and is served at GET /openapi.json. Every route of the app has an entry here
(tests/test_openapi.py checks that against the URL map), JSON routes with their
inputs, answers and error codes, pages with their real content types.
"""

from __future__ import annotations

import copy
from importlib.metadata import PackageNotFoundError, version
from typing import Any

JSON, HTML, FORM_DATA = "application/json", "text/html", "multipart/form-data"
USERNAME_PATTERN = r"^[A-Za-z0-9_.\-]{3,32}$"
# ISO 8601 in UTC with an explicit offset, e.g. 2026-11-28T12:00:00+00:00
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"

DESCRIPTION = """\
The JSON face of GhostCache (docs/API.md is the contract this restates).

A request gets JSON when its body is JSON (`Content-Type: application/json`) or
its `Accept` header prefers `application/json` over `text/html`; otherwise the
same route serves a browser (HTML page, or a flashed message and a redirect).
Send `Accept: application/json` on every call of the JSON face.

Log in with `POST /login` (the session cookie `session` is set). Every POST
carries the session's CSRF token in `X-CSRFToken`: `GET /csrf` gives one for a
new session, and `POST /login` returns a fresh one in `csrf_token`.
Errors are `{"error": "<code>", "message": "<sentence>"}`; a 500 is always a bug.
"""

# --- small builders ---------------------------------------------------------


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict, optional: dict | None = None) -> dict:
    """A closed object: these fields, no others."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


def array(items: dict, **extra) -> dict:
    return {"type": "array", "items": items, **extra}


def const(value) -> dict:
    return {"const": value}


def string(**extra) -> dict:
    return {"type": "string", **extra}


ID = {"type": "integer", "minimum": 1}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
TEXT = string()
PAGE = string(description="An HTML page.")


def content(schema: dict, media_type: str = JSON) -> dict:
    return {media_type: {"schema": schema}}


def answer(description: str, schema: dict, media_type: str = JSON, **extra) -> dict:
    return {"description": description, "content": content(schema, media_type), **extra}


def error_answer(status: int, codes: tuple[str, ...]) -> dict:
    """An Error whose `error` is one of `codes`."""
    schema = {"allOf": [ref("Error"), {"properties": {"error": {"enum": sorted(set(codes))}}}]}
    extra: dict[str, Any] = {}
    if status == 429:
        extra["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait.",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return answer(f"Error: {', '.join(sorted(set(codes)))}", schema, **extra)


def json_body(required: dict, optional: dict | None = None) -> dict:
    return {"required": True, "content": content(obj(required, optional) | {"additionalProperties": True})}


def path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": ID}


def query_param(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def operation(
    op_id: str,
    summary: str,
    responses: dict,
    *,
    errors: dict | None = None,
    login: bool = True,
    limited: bool = False,
    body: dict | None = None,
    params: tuple = (),
    links: dict | None = None,
    tag: str = "accounts",
    method: str = "get",
) -> dict:
    """One operation. Adds the errors every route of its kind has: 401 login_required for
    member routes, 400 csrf_failed for POSTs (invalid_json with a JSON body), 408
    request_timeout and 413 too_large for a body that stalls or passes the route's limit
    (web/edge.py), 404 for an id in the path that is not a whole number, 429
    rate_limited where a limit applies."""
    errors = {status: tuple(codes) for status, codes in (errors or {}).items()}

    def add(status: int, *codes: str) -> None:
        errors[status] = errors.get(status, ()) + codes

    if login:
        add(401, "login_required")
    if method in ("post", "put"):
        add(400, "csrf_failed")
        if body and JSON in body["content"]:
            add(400, "invalid_json")
        add(408, "request_timeout")
        if "too_large" not in errors.get(413, ()):
            add(413, "too_large")
    if any(p["in"] == "path" for p in params):
        add(404, "not_found")
    if limited:
        add(429, "rate_limited")
    security: list[dict[str, list[str]]] = (
        [{"session": [], "csrf": []}] if method in ("post", "put") else [{"session": []}] if login else []
    )
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "security": security,
        "responses": {str(s): r for s, r in responses.items()}
        | {str(s): error_answer(s, codes) for s, codes in sorted(errors.items())},
    }
    if params:
        op["parameters"] = list(params)
    if body:
        op["requestBody"] = body
    if links:
        op["responses"][str(next(iter(responses)))]["links"] = links
    return op


def html_page(
    op_id: str, summary: str, *, login: bool = False, params: tuple = (), tag: str = "pages"
) -> dict:
    return operation(
        op_id, summary, {200: answer("The page.", PAGE, HTML)}, login=login, params=params, tag=tag
    )


def file_link(op_id: str) -> dict:
    return {"operationId": op_id, "parameters": {"file_id": "$response.body#/id"}}


# --- the contract's objects -------------------------------------------------

TIMESTAMP = string(format="date-time", pattern=TIMESTAMP_PATTERN)
USER_FIELDS = {"id": ID, "username": string(pattern=USERNAME_PATTERN)}
MESSAGE_FIELDS = {
    "id": ID,
    "sender_id": ID,
    "sender": string(pattern=USERNAME_PATTERN),
    "receiver_id": ID,
    "timestamp": ref("Timestamp"),
}
TEXT_MESSAGE = MESSAGE_FIELDS | {"message": TEXT, "e2ee": const(False)}
E2EE_MESSAGE = MESSAGE_FIELDS | {"envelope": ref("Envelope"), "e2ee": const(True)}
B64U = r"^[A-Za-z0-9_-]*$"
DECIMAL = r"^(0|[1-9][0-9]{0,18})$"
ENVELOPE = obj(
    {
        "v": const("1"),
        "alg": const("GCE1-X25519-HKDF-SHA256-A256GCM"),
        "conv": string(pattern=r"^c(0|[1-9][0-9]{0,18})$"),
        "sid": string(pattern=DECIMAL),
        "rid": string(pattern=DECIMAL),
        "skid": string(pattern=B64U, minLength=22, maxLength=22),
        "rkid": string(pattern=B64U, minLength=22, maxLength=22),
        "mid": string(pattern=B64U, minLength=22, maxLength=22),
        "ts": string(pattern=DECIMAL),
        "iv": string(pattern=B64U, minLength=16, maxLength=16),
        "ct": string(pattern=B64U, minLength=363, maxLength=87_403),
    }
) | {"description": "A GCE1 envelope (docs/E2EE.md): ciphertext the server never opens."}
NULLABLE_TIME = {"anyOf": [{"$ref": "#/components/schemas/Timestamp"}, {"type": "null"}]}
FILE_FIELDS = {
    "id": ID,
    "filename": string(minLength=1, maxLength=255),
    "size": {"type": "integer", "minimum": 0},
    "created_at": ref("Timestamp"),
    "expiry": ref("Timestamp"),
    "owner": ref("User"),
}
OWNED_FILE_FIELDS = FILE_FIELDS | {"shared_with": array(ref("User"))}
CONNECTION_LIST = array(ref("Connection"))

SCHEMAS = {
    "Timestamp": TIMESTAMP,
    "User": obj(USER_FIELDS),
    "Connection": obj(
        {
            "id": ID,
            "status": {"enum": ["pending", "accepted", "denied"]},
            "created_at": ref("Timestamp"),
            "user": ref("User"),
        }
    ),
    "Message": {"oneOf": [obj(TEXT_MESSAGE), obj(E2EE_MESSAGE)]},
    "HistoryMessage": {
        "oneOf": [obj(TEXT_MESSAGE | {"delivered": BOOL}), obj(E2EE_MESSAGE | {"delivered": BOOL})]
    },
    "Envelope": ENVELOPE,
    "Identity": obj(
        {
            "user_id": ID,
            "username": string(pattern=USERNAME_PATTERN),
            "kid": string(pattern=B64U, minLength=22, maxLength=22),
            "pub": string(pattern=B64U, minLength=43, maxLength=43),
            "created_at": ref("Timestamp"),
        }
    ),
    "Backup": obj(
        {
            "ctr": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
            "salt": string(pattern=B64U, minLength=22, maxLength=22),
            "iv": string(pattern=B64U, minLength=16, maxLength=16),
            "blob": string(pattern=B64U, minLength=23, maxLength=87_382),
            "updated_at": ref("Timestamp"),
        }
    ),
    "File": obj(FILE_FIELDS),
    "OwnedFile": obj(OWNED_FILE_FIELDS),
    "UploadedFile": obj(OWNED_FILE_FIELDS | {"key": string(pattern=r"^AGE-SECRET-KEY-1[0-9A-Z]+$")}),
    "Error": obj({"error": string(pattern=r"^[a-z][a-z0-9_]*$"), "message": string(minLength=1)}),
    "LoggedIn": obj(USER_FIELDS | {"csrf_token": string(minLength=1)}),
    "CsrfToken": obj({"csrf_token": string(minLength=1)}),
    "Connections": obj({"sent": CONNECTION_LIST, "received": CONNECTION_LIST, "accepted": CONNECTION_LIST}),
    "Queued": obj({"status": const("queued"), "id": ID, "timestamp": ref("Timestamp")}),
    "History": obj({"with": ref("User"), "messages": array(ref("HistoryMessage"))}),
    "SearchResults": obj({"query": TEXT, "results": array(ref("User"), maxItems=50)}),
    "Files": obj({"owned": array(ref("OwnedFile")), "shared": array(ref("File"))}),
    "Grant": obj({"file_id": ID, "user": ref("User")}),
    "Deleted": obj({"deleted": const(True)}),
    "Hidden": obj({"hidden": const(True)}),
    "LoggedOut": obj({"ok": const(True)}),
    "PasswordChanged": obj({"ok": const(True), "csrf_token": string(minLength=1)}),
    "Invite": obj({"id": ID, "created_at": ref("Timestamp"), "expires_at": ref("Timestamp")}),
    "NewInvite": obj(
        {
            "id": ID,
            "link": string(
                format="uri", pattern=r"/register\?invite=[A-Za-z0-9_-]+$", description="Shown only once."
            ),
            "expires_at": ref("Timestamp"),
        }
    ),
}

SECURITY_SCHEMES = {
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "session",
        "description": "The Flask session cookie (HttpOnly, SameSite=Lax), set by GET /csrf "
        "for a new session and by POST /login for a logged-in one.",
    },
    "csrf": {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRFToken",
        "description": "The session's CSRF token, required on every POST (also as form "
        "field csrf_token); a missing or wrong one is 400 csrf_failed.",
    },
}

# --- inputs shared by several routes ----------------------------------------

USERNAME_IN = string(minLength=1, description="Looked up without regard to case.")
PASSWORD = string(minLength=8, maxLength=1024)
MESSAGE_IN = string(minLength=1, maxLength=10_000)
MESSAGE_ERRORS = {
    400: ("missing_field", "message_too_long", "invalid_receiver", "bad_envelope"),
    403: ("not_connected",),
    409: ("e2ee_required", "e2ee_off", "stale_key"),
}
ENVELOPE_IN = ref("Envelope") | {
    "description": "Instead of `message`, in an end-to-end encrypted conversation."
}
CONN_ID = path_param("conn_id", "A connection request's id; only its receiver may answer it.")
FILE_ID = path_param("file_id", "A file's id.")
OTHER_ID = path_param("other_id", "The other party's user id.")
OK = 200

# --- the routes -------------------------------------------------------------


def _accounts() -> dict:
    return {
        "/": {"get": html_page("index", "The index page.")},
        "/help": {"get": html_page("help", "The usage guide.")},
        "/openapi.json": {
            "get": operation(
                "openapi",
                "This document.",
                {OK: answer("OpenAPI 3.1 document.", {"type": "object"})},
                login=False,
                tag="docs",
            )
        },
        "/csrf": {
            "get": operation(
                "csrfToken",
                "A CSRF token (starts a session if needed).",
                {OK: answer("The token.", ref("CsrfToken"))},
                login=False,
            )
        },
        "/register": {
            "get": html_page(
                "registerForm",
                "The registration form.",
                params=(query_param("invite", TEXT, "An invite link's token, kept in the form."),),
            ),
            "post": operation(
                "register",
                "Create an account.",
                {201: answer("The new user.", ref("User"))},
                errors={
                    400: (
                        "missing_field",
                        "invalid_username",
                        "weak_password",
                        "password_too_long",
                        "same_passwords",
                        "invalid_field",
                    ),
                    403: ("invite_required",),
                    409: ("username_taken",),
                },
                login=False,
                limited=True,
                method="post",
                body=json_body(
                    {
                        "username": string(pattern=USERNAME_PATTERN),
                        "password": PASSWORD,
                        "d_pass": PASSWORD | {"description": "Destruction password."},
                    },
                    {
                        "invite": string(
                            description="The token of an invite link (or the whole link). Needed "
                            "only with GHOSTCACHE_INVITE_ONLY: without an open invite the answer "
                            "is 403 invite_required, before any other check."
                        )
                    },
                ),
            ),
        },
        "/login": {
            "get": html_page(
                "loginForm",
                "The login form.",
                params=(query_param("next", TEXT, "Local path to go to after logging in."),),
            ),
            "post": operation(
                "login",
                "Log in (a new session; the answer carries its CSRF token).",
                {OK: answer("The user and the new session's CSRF token.", ref("LoggedIn"))},
                errors={400: ("invalid_field",), 401: ("invalid_credentials",)},
                login=False,
                limited=True,
                method="post",
                body=json_body(
                    {"username": TEXT, "password": TEXT},
                    {"next": string(description="Local path (browser face only).")},
                ),
            ),
        },
        "/logout": {
            "get": operation(
                "logoutPage",
                "A page with the log-out button: a GET signs nobody out (scripts POST).",
                {OK: answer("The page.", PAGE, HTML)},
                errors={405: ("method_not_allowed",)},
                login=False,
                tag="pages",
            ),
            "post": operation(
                "logout",
                "Log out: every session of mine ends, on every device.",
                {OK: answer("Logged out.", ref("LoggedOut"))},
                login=False,
                method="post",
            ),
        },
        "/account": {
            "get": operation(
                "account",
                "Who I am signed in as; in a browser, the account page (passwords, "
                "log out everywhere, deletion).",
                {
                    OK: {
                        "description": "The signed-in user, or the page.",
                        "content": content(obj({"user": ref("User")})) | content(PAGE, HTML),
                    }
                },
            )
        },
        "/password": {
            "post": operation(
                "changePassword",
                "Change my password; other sessions end, this one gets a new token.",
                {OK: answer("Changed; the new session's CSRF token.", ref("PasswordChanged"))},
                errors={
                    400: ("missing_field", "weak_password", "password_too_long", "invalid_field"),
                    401: ("invalid_credentials",),
                },
                limited=True,
                method="post",
                body=json_body({"password": TEXT, "new_password": PASSWORD}),
            )
        },
        "/destruction_password": {
            "post": operation(
                "changeDestructionPassword",
                "Replace my destruction password, proving my login password; every session stays.",
                {OK: answer("Changed.", obj({"ok": const(True)}))},
                errors={
                    400: (
                        "missing_field",
                        "weak_password",
                        "password_too_long",
                        "same_passwords",
                        "invalid_field",
                    ),
                    401: ("invalid_credentials",),
                },
                limited=True,
                method="post",
                body=json_body(
                    {
                        "password": TEXT | {"description": "My current login password."},
                        "new_d_pass": PASSWORD | {"description": "Must differ from the login password."},
                    }
                ),
            )
        },
        "/delete_account": {
            "post": operation(
                "deleteAccount",
                "Delete my account and everything it owns; the session ends.",
                {OK: answer("Deleted.", ref("Deleted"))},
                method="post",
            )
        },
    }


def _invites() -> dict:
    return {
        "/invites": {
            "get": operation(
                "listInvites",
                "My invites not yet used nor expired, newest first (never their links); in a "
                "browser, the page to make and revoke them.",
                {
                    OK: {
                        "description": "The list, or its page.",
                        "content": content(obj({"invites": array(ref("Invite"))})) | content(PAGE, HTML),
                    }
                },
            ),
            "post": operation(
                "createInvite",
                "Make a single-use invite link, valid `days` (default 7); its link is shown only "
                "in this answer.",
                {201: answer("The invite and its link.", ref("NewInvite"))},
                errors={400: ("invalid_days",), 409: ("too_many_invites",)},
                limited=True,
                method="post",
                body={
                    "required": False,
                    "content": content(
                        obj({}, {"days": {"type": "integer", "minimum": 1, "maximum": 30}})
                        | {"additionalProperties": True}
                    ),
                },
            ),
        },
        "/invites/{invite_id}/revoke": {
            "post": operation(
                "revokeInvite",
                "Revoke one of my open invites (anything else is 404).",
                {OK: answer("Revoked.", obj({"revoked": const(True)}))},
                params=(path_param("invite_id", "An invite's id."),),
                method="post",
            )
        },
    }


def _connections() -> dict:
    answer_request = {OK: answer("The connection.", ref("Connection"))}
    not_pending = {404: ("not_found",), 409: ("not_pending",)}
    return {
        "/connect": {
            "get": html_page(
                "connectForm",
                "The contact request form.",
                login=True,
                params=(query_param("username", TEXT, "Prefills the form."),),
            ),
            "post": operation(
                "connect",
                "Send a contact request.",
                {201: answer("The pending connection.", ref("Connection"))},
                errors={
                    400: ("missing_field", "cannot_connect_to_self", "invalid_field"),
                    404: ("user_not_found",),
                    403: ("blocked",),
                    409: ("already_connected",),
                },
                limited=True,
                method="post",
                tag="connections",
                body=json_body({"username": USERNAME_IN}),
            ),
        },
        "/connections": {
            "get": operation(
                "listConnections",
                "My pending (sent, received) and accepted connections.",
                {OK: answer("The lists.", ref("Connections"))},
                tag="connections",
            )
        },
        "/connect/accept/{conn_id}": {
            "post": operation(
                "acceptConnection",
                "Accept a request (generates the connection's keys).",
                answer_request,
                errors=not_pending,
                params=(CONN_ID,),
                method="post",
                tag="connections",
            )
        },
        "/connect/deny/{conn_id}": {
            "post": operation(
                "denyConnection",
                "Deny a request; the receiver now blocks the sender.",
                answer_request,
                errors=not_pending,
                params=(CONN_ID,),
                method="post",
                tag="connections",
            )
        },
        "/connect/withdraw/{conn_id}": {
            "post": operation(
                "withdrawConnection",
                "Take back a pending request I sent; its receiver no longer sees it.",
                {OK: answer("Withdrawn.", obj({"withdrawn": const(True)}))},
                errors=not_pending,
                params=(path_param("conn_id", "A pending request's id; only its sender may withdraw it."),),
                method="post",
                tag="connections",
            )
        },
    } | _contact_management()


def _contact_management() -> dict:
    user_id = path_param("user_id", "The other person's user id.")
    blocked_list = array(obj({"user": ref("User"), "since": ref("Timestamp")}))
    return {
        "/contacts/{user_id}/remove": {
            "post": operation(
                "removeContact",
                "Remove a contact: the connection and the whole conversation are deleted for "
                "both people, and file shares between them are taken back both ways.",
                {OK: answer("Removed.", obj({"removed": const(True), "user": ref("User")}))},
                errors={403: ("not_connected",)},
                params=(user_id,),
                method="post",
                tag="connections",
            )
        },
        "/block": {
            "post": operation(
                "block",
                "Block anyone: any connection between us goes with its conversation, "
                "and file shares are taken back both ways.",
                {OK: answer("The blocked user.", obj({"blocked": ref("User")}))},
                errors={
                    400: ("missing_field", "cannot_block_self", "invalid_field"),
                    404: ("user_not_found",),
                    409: ("already_blocked",),
                },
                method="post",
                tag="connections",
                body=json_body({"username": USERNAME_IN}),
            )
        },
        "/blocks": {
            "get": operation(
                "listBlocked",
                "The people I block (never who blocks me), newest first; in a browser, a page.",
                {
                    OK: {
                        "description": "The list, or its page.",
                        "content": content(obj({"blocked": blocked_list})) | content(PAGE, HTML),
                    }
                },
                tag="connections",
            )
        },
        "/blocks/{user_id}/unblock": {
            "post": operation(
                "unblock",
                "Stop blocking someone; a denied request left between us goes too.",
                {OK: answer("Unblocked.", obj({"unblocked": const(True), "user": ref("User")}))},
                params=(user_id,),
                method="post",
                tag="connections",
            )
        },
    }


def _chat() -> dict:
    queued = {201: answer("Stored, waiting for delivery.", ref("Queued"))}
    last_event = "Resume after this message id (also as header Last-Event-ID)."
    return _conversations() | {
        "/chat/send": {
            "post": operation(
                "sendMessage",
                "Send a message to an accepted contact.",
                queued,
                errors=MESSAGE_ERRORS,
                limited=True,
                method="post",
                tag="chat",
                body=json_body({"receiver_id": ID}, {"message": MESSAGE_IN, "envelope": ENVELOPE_IN}),
            )
        },
        "/chat/poll": {
            "post": operation(
                "poll",
                "Every undelivered message to me, oldest first; they are now delivered.",
                {OK: answer("The messages.", array(ref("Message")))},
                method="post",
                tag="chat",
            ),
            "get": operation(
                "pollWithHeader",
                "As POST; a GET must carry the CSRF token in the X-CSRFToken header.",
                {OK: answer("The messages.", array(ref("Message")))},
                errors={400: ("csrf_failed",)},
                params=(
                    {
                        "name": "X-CSRFToken",
                        "in": "header",
                        "required": True,
                        "description": "The session's CSRF token (GET /csrf).",
                        "schema": TEXT,
                    },
                ),
                tag="chat",
            ),
        },
        "/chat/stream": {
            "get": operation(
                "stream",
                "Server-Sent Events: `message` (a message plus `with`, the other user; its `id:` "
                "line is the message id), and, without `id:` lines, `request` (a connection "
                "asking me), `contact` (a connection accepted, by either side), `share` (a file "
                "shared with me), `read` (`{with, unread}`: my read marker moved elsewhere), `e2ee` "
                "(`{with, e2ee_since}`: a conversation turned end-to-end encrypted) and `key` "
                "(`{with, key_changed_at}`: a contact reset their identity key).",
                {
                    OK: answer(
                        "An event stream; ends after GHOSTCACHE_STREAM_SECONDS.", TEXT, "text/event-stream"
                    )
                },
                params=(
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": last_event,
                        "schema": string(pattern=r"^[0-9]{1,18}$"),
                    },
                    query_param("last_event_id", string(pattern=r"^[0-9]{1,18}$"), last_event),
                ),
                errors={403: ("cross_site",)},
                tag="chat",
            )
        },
        "/chat/{other_id}": {
            "get": operation(
                "history",
                "Messages with a contact, oldest first; mine shown here become delivered.",
                {OK: answer("The page of history.", ref("History"))},
                errors={400: ("invalid_parameter",), 403: ("not_connected",)},
                tag="chat",
                params=(
                    OTHER_ID,
                    query_param("before", ID, "Only messages older than this message id."),
                    query_param("limit", ID, "How many (default 50, at most 200; larger is capped)."),
                ),
            ),
            "post": operation(
                "sendTo",
                "Send a message to this contact.",
                queued,
                errors=MESSAGE_ERRORS,
                limited=True,
                params=(OTHER_ID,),
                method="post",
                tag="chat",
                body=json_body({}, {"message": MESSAGE_IN, "envelope": ENVELOPE_IN}),
            ),
        },
    }


def _conversations() -> dict:
    unread = {"type": "integer", "minimum": 0}
    read_state = obj({"with": ref("User"), "unread": unread})
    last_message = obj(
        {"id": ID, "sender_id": ID, "e2ee": BOOL},
        {"preview": {"anyOf": [string(maxLength=100), {"type": "null"}]}},
    )
    conversation = obj(
        {
            "user": ref("User"),
            "unread": unread,
            "last_message_at": {"anyOf": [ref("Timestamp"), {"type": "null"}]},
            "last_message": {"anyOf": [last_message, {"type": "null"}]},
            "e2ee_since": NULLABLE_TIME,
            "key_changed_at": NULLABLE_TIME,
        }
    )
    listing = obj({"requests": array(ref("Connection")), "conversations": array(conversation)})
    upto = obj({}, {"upto": ID | {"description": "A message id; default: the newest."}})
    return {
        "/conversations": {
            "get": operation(
                "conversations",
                "Pending requests for me, then my conversations (unread count, last message), "
                "most recent first, contacts without messages last; in a browser, the home page.",
                {
                    OK: {
                        "description": "The lists, or the page.",
                        "content": content(listing) | content(PAGE, HTML),
                    }
                },
                params=(
                    query_param(
                        "preview", {"enum": ["0", "1"]}, "0 leaves out the previews (default: with them)."
                    ),
                ),
                tag="chat",
            )
        },
        "/chat/{other_id}/latest": {
            "get": operation(
                "chatLatest",
                'For browsers without JavaScript ("Check for new messages"): a redirect to the '
                "chat page at its newest messages, /chat/{other_id}#latest.",
                {302: {"description": "To the chat page."}},
                params=(OTHER_ID,),
                tag="pages",
            )
        },
        "/chat/{other_id}/read": {
            "post": operation(
                "markRead",
                "Mark the conversation read up to a message (default: the newest); the marker "
                "never moves back, and my other tabs learn it (event: read).",
                {OK: answer("What is still unread.", read_state)},
                errors={400: ("invalid_parameter",), 403: ("not_connected",)},
                params=(OTHER_ID,),
                method="post",
                tag="chat",
                body={"required": False, "content": content(upto | {"additionalProperties": True})},
            )
        },
    }


def _e2ee() -> dict:
    pub = string(
        pattern=B64U, minLength=43, maxLength=43, description="The raw X25519 public key, base64url."
    )
    identity = answer("The identity.", ref("Identity"))
    user_id = path_param("user_id", "Yourself or an accepted contact.")
    backup_in = {
        "ctr": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
        "salt": string(pattern=B64U),
        "iv": string(pattern=B64U),
        "blob": string(pattern=B64U),
        "password": PASSWORD,
    }
    switched = obj({"with": ref("User"), "e2ee_since": ref("Timestamp")})
    return {
        "/e2ee/identity": {
            "post": operation(
                "publishIdentity",
                "Publish my GCE1 identity key, once (the server computes its kid).",
                {201: identity},
                errors={400: ("missing_field", "invalid_key"), 409: ("identity_exists",)},
                limited=True,
                method="post",
                tag="e2ee",
                body=json_body({"pub": pub}),
            )
        },
        "/e2ee/identity/reset": {
            "post": operation(
                "resetIdentity",
                "Replace my identity key (needs my login password); records a key event, and "
                "my contacts' conversations with me show the key changed (event: key).",
                {OK: identity},
                errors={
                    400: ("missing_field", "invalid_key", "invalid_field"),
                    401: ("invalid_credentials",),
                    409: ("no_identity",),
                },
                limited=True,
                method="post",
                tag="e2ee",
                body=json_body({"pub": pub, "password": PASSWORD}),
            )
        },
        "/e2ee/identity/{user_id}": {
            "get": operation(
                "identity",
                "My identity or an accepted contact's; 404 for anyone else or no identity.",
                {OK: identity},
                params=(user_id,),
                tag="e2ee",
            )
        },
        "/e2ee/backup": {
            "get": operation(
                "backup",
                "My sealed identity backup (only mine); 404 when there is none.",
                {OK: answer("The backup record.", ref("Backup"))},
                errors={404: ("not_found",)},
                tag="e2ee",
            ),
            "put": operation(
                "putBackup",
                "Store my sealed backup (needs my login password); ctr must be above the stored one.",
                {OK: answer("The backup record as stored.", ref("Backup"))},
                errors={
                    400: ("missing_field", "invalid_backup", "invalid_field"),
                    401: ("invalid_credentials",),
                    409: ("stale_backup",),
                },
                limited=True,
                method="put",
                tag="e2ee",
                body=json_body(backup_in),
            ),
        },
        "/e2ee": {
            "get": html_page(
                "e2eePage",
                "The end-to-end encryption page: its script sets up this browser's identity, or "
                "restores it with the recovery key.",
                login=True,
                tag="e2ee",
            )
        },
        "/contacts/{user_id}/safety": {
            "get": operation(
                "safetyPage",
                "The safety-number page for an accepted contact (HTML only; the number is computed "
                "by its script); 404 for anyone else.",
                {OK: answer("The page.", PAGE, HTML)},
                params=(path_param("user_id", "An accepted contact."),),
                tag="e2ee",
            )
        },
        "/chat/{other_id}/e2ee": {
            "post": operation(
                "enableE2ee",
                "Turn the conversation end-to-end encrypted (idempotent; both need an identity); "
                "both sides' streams get event: e2ee.",
                {OK: answer("The conversation is end-to-end encrypted.", switched)},
                errors={403: ("not_connected",), 409: ("no_identity",)},
                params=(OTHER_ID,),
                method="post",
                tag="e2ee",
            )
        },
    }


def _search() -> dict:
    return {
        "/search": {
            "get": operation(
                "search",
                "Users whose name contains q (any case), minus me and blocks; at most 50.",
                {OK: answer("The matches, sorted by username.", ref("SearchResults"))},
                tag="search",
                params=(query_param("q", TEXT, "Part of a username; empty gives no results."),),
            )
        }
    }


def _files() -> dict:
    upload_body = {
        "required": True,
        "content": {
            FORM_DATA: {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": string(
                            contentMediaType="application/octet-stream",
                            description="The file; its name is kept (last path component).",
                        ),
                        "csrf_token": string(
                            description="The CSRF token, unless sent as X-CSRFToken: a field "
                            "before the file part, checked before any of the file is read."
                        ),
                        "expiry_days": {
                            "type": "integer",
                            "minimum": 1,
                            "description": "Days to keep it: default 365, any whole number above 365 is 365.",
                        },
                    },
                },
            }
        },
    }
    blob = {"type": "string", "contentMediaType": "application/octet-stream"}
    download_headers = {
        "Content-Disposition": {
            "required": True,
            "schema": TEXT,
            "description": "attachment; RFC 6266 filename*.",
        }
    }
    return {
        "/files": {
            "get": operation(
                "listFiles",
                "My unexpired files and those shared with me.",
                {OK: answer("The lists.", ref("Files"))},
                tag="files",
            )
        },
        "/file/upload": {
            "get": html_page("uploadForm", "The upload form.", login=True),
            "post": operation(
                "upload",
                "Upload a file; it is encrypted (age v1) as it arrives.",
                {201: answer("The file and its key (the only copy).", ref("UploadedFile"))},
                errors={400: ("missing_file", "invalid_expiry", "invalid_upload"), 413: ("too_large",)},
                limited=True,
                body=upload_body,
                method="post",
                tag="files",
                links={
                    "view": file_link("viewFile"),
                    "download": file_link("download"),
                    "share": file_link("share"),
                    "delete": file_link("deleteFile"),
                },
            ),
        },
        "/file/{file_id}": {
            "get": operation(
                "download",
                "The encrypted blob, as an attachment.",
                {OK: answer("The age v1 blob.", blob, "application/octet-stream", headers=download_headers)},
                errors={410: ("expired",)},
                params=(FILE_ID,),
                tag="files",
            )
        },
        "/file/{file_id}/view": {
            "get": operation(
                "viewFile",
                "A file I own or that is shared with me; in a browser, its page, "
                "where it can be decrypted without the key leaving the page.",
                {
                    OK: {
                        "description": "The file (with shared_with for its owner), or its page.",
                        "content": content({"oneOf": [ref("OwnedFile"), ref("File")]}) | content(PAGE, HTML),
                    }
                },
                errors={410: ("expired",)},
                params=(FILE_ID,),
                tag="files",
            )
        },
        "/file/{file_id}/delete": {
            "post": operation(
                "deleteFile",
                "Delete a file I own.",
                {OK: answer("Deleted.", ref("Deleted"))},
                params=(FILE_ID,),
                method="post",
                tag="files",
            )
        },
        "/file/{file_id}/share": {
            "post": operation(
                "share",
                "Let an accepted contact download a file I own.",
                {201: answer("The grant.", ref("Grant"))},
                errors={
                    400: ("missing_field", "cannot_share_with_self", "invalid_field"),
                    404: ("user_not_found",),
                    403: ("blocked", "not_connected"),
                    409: ("already_shared",),
                    410: ("expired",),
                },
                params=(FILE_ID,),
                method="post",
                tag="files",
                body=json_body({"username": USERNAME_IN}),
            )
        },
        "/file/{file_id}/unshare": {
            "post": operation(
                "unshare",
                "Take back a share of a file I own (also an expired one); the user loses access at once.",
                {OK: answer("The share taken back.", ref("Grant"))},
                errors={400: ("missing_field", "invalid_field"), 404: ("not_shared",)},
                params=(FILE_ID,),
                method="post",
                tag="files",
                body=json_body({"username": USERNAME_IN}),
            )
        },
        "/file/{file_id}/hide": {
            "post": operation(
                "hideFile",
                "Remove a file shared with me from my list; I lose access to it.",
                {OK: answer("Removed from my list.", ref("Hidden"))},
                params=(FILE_ID,),
                method="post",
                tag="files",
            )
        },
    }


def _health() -> dict:
    checks = {"enum": ["database", "redis", "blobs"]}
    unready = obj({"status": const("unready"), "failed": array(checks, minItems=1, uniqueItems=True)})
    return {
        "/healthz": {
            "get": operation(
                "healthz",
                "The process answers (nothing else is checked). JSON whatever the Accept header; "
                "no session, never rate limited.",
                {OK: answer("Up.", obj({"status": const("ok")}))},
                login=False,
                tag="health",
            )
        },
        "/readyz": {
            "get": operation(
                "readyz",
                "The database, Redis (when configured) and the blob store answer, each within "
                "a few seconds. JSON whatever the Accept header; no session, never rate limited.",
                {
                    OK: answer("Ready.", obj({"status": const("ready")})),
                    503: answer("Not ready: which checks failed, without detail.", unready),
                },
                login=False,
                tag="health",
            )
        },
    }


def openapi_document() -> dict:
    """The whole OpenAPI 3.1.0 document (a fresh dict on every call)."""
    try:
        app_version = version("ghostcache")
    except PackageNotFoundError:
        app_version = "0.0.0"
    return {
        "openapi": "3.1.0",
        "info": {"title": "GhostCache", "version": app_version, "description": DESCRIPTION},
        "tags": [
            {"name": name}
            for name in (
                "accounts",
                "connections",
                "chat",
                "e2ee",
                "search",
                "files",
                "pages",
                "docs",
                "health",
            )
        ],
        "paths": (
            _accounts() | _invites() | _connections() | _chat() | _e2ee() | _search() | _files() | _health()
        ),
        "components": copy.deepcopy({"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES}),
    }
