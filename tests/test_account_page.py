"""The account page and the destruction password change: the page's four forms, the
route's contract (every error changes nothing), what the change does to logins, its
browser face, and its answers against the OpenAPI document."""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
from sqlalchemy import select

from ghostcache import models
from ghostcache.extensions import db
from ghostcache.openapi import openapi_document
from ghostcache.services import accounts
from ghostcache.services.context import Context
from ghostcache.services.errors import Unauthorized
from tests.conftest import DPASS, PASSWORD, Session

HTML = {"Accept": "text/html"}
NEW_DPASS = "a brand new way out"
WRONG = "not the password at all"
META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


class Page(HTMLParser):
    """The parts of a page these tests read: its main content's forms (action, hidden
    fields, inputs), labels, headings, and whether any script or style is inline."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.labels: set[str] = set()
        self.headings: list[str] = []
        self.inline_code = False
        self._heading: list[str] | None = None
        self._in_main = False  # the header's log-out form is the nav's, not the page's
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "main":
            self._in_main = True
        elif tag == "form" and self._in_main:
            self.forms.append(
                {"action": a.get("action"), "method": a.get("method"), "hidden": {}, "inputs": []}
            )
        elif tag == "input" and self.forms and self._in_main:
            form = self.forms[-1]
            if a.get("type") == "hidden":
                form["hidden"][a.get("name")] = a.get("value")
            else:
                form["inputs"].append(a)
        elif tag == "label":
            self.labels.add(a.get("for") or "")
        elif tag == "h2":
            self._heading = []
        elif tag == "style" or (tag == "script" and "src" not in a) or "style" in a:
            self.inline_code = True

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "main":
            self._in_main = False
        elif tag == "h2" and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def form(self, action: str) -> dict:
        (found,) = [f for f in self.forms if f["action"] == action]
        return found


def account_page(user: Session) -> tuple[str, Page]:
    html = user.client.get("/account", headers=HTML).get_data(as_text=True)
    return html, Page(html)


def hashes(app, user_id: int) -> tuple[str, str] | None:
    with app.app_context():
        query = select(models.User.password_hash, models.User.dpass_hash).where(models.User.id == user_id)
        row = db.session.execute(query).first()
        return None if row is None else (row[0], row[1])


def change(user: Session, password: object = PASSWORD, new_d_pass: object = NEW_DPASS):
    return user.post("/destruction_password", {"password": password, "new_d_pass": new_d_pass})


def form_post(user: Session, path: str, **fields):
    """A browser form post with the page's token, following the redirect."""
    token = META.search(user.client.get("/account").get_data(as_text=True)).group(1)
    return user.client.post(path, data={"csrf_token": token, **fields}, follow_redirects=True)


# ---- the page ---------------------------------------------------------------------


def test_account_page_shows_the_six_sections(make_user):
    user = make_user()
    html, page = account_page(user)
    assert page.headings == [
        "Change your password",
        "Change your destruction password",
        "End-to-end encryption",
        "Invite someone",
        "Log out everywhere",
        "Delete your account",
    ]
    assert user.username in html and "There is no undo" in html
    assert 'href="/e2ee"' in html  # setting it up happens on its own page, in script
    assert 'href="/invites"' in html
    assert not page.inline_code


@pytest.mark.parametrize(
    "action, fields",
    [
        ("/password", {"password", "new_password"}),
        ("/destruction_password", {"password", "new_d_pass"}),
        ("/logout", set()),
        ("/delete_account", set()),
    ],
)
def test_every_account_form_posts_to_its_route_with_the_token_and_labelled_inputs(make_user, action, fields):
    user = make_user()
    html, page = account_page(user)
    form = page.form(action)
    assert form["method"] == "post"
    assert form["hidden"]["csrf_token"] == META.search(html).group(1)
    assert {i["name"] for i in form["inputs"]} == fields
    for field in form["inputs"]:
        assert field["id"] in page.labels and field["type"] == "password", field


def test_every_input_id_on_the_page_is_unique(make_user):
    _, page = account_page(make_user())
    ids = [i["id"] for form in page.forms for i in form["inputs"]]
    assert len(ids) == len(set(ids))


def test_a_signed_in_nav_links_to_the_account_page(app, make_user):
    signed_in = make_user().client.get("/help").get_data(as_text=True)
    assert '<a href="/account"' in signed_in
    assert '<a href="/account"' not in app.test_client().get("/help").get_data(as_text=True)


def test_a_script_gets_the_signed_in_user(make_user):
    user = make_user()
    assert user.get("/account").get_json() == {"user": {"id": user.id, "username": user.username}}


def test_a_logged_out_browser_is_sent_to_login_and_back(app):
    response = app.test_client().get("/account", headers=HTML)
    target = urlsplit(response.location)
    assert response.status_code == 302
    assert target.path == "/login" and parse_qs(target.query)["next"] == ["/account"]


# ---- changing the destruction password -------------------------------------------------


def test_the_old_destruction_password_becomes_a_plain_wrong_password(app, make_user):
    user = make_user()
    assert change(user).get_json() == {"ok": True}
    wrong = Session(app).login(user.username, WRONG)
    old = Session(app).login(user.username, DPASS)
    assert old.status_code == wrong.status_code == 401 and old.get_data() == wrong.get_data()
    assert hashes(app, user.id) is not None  # the account survives
    assert Session(app).login(user.username).status_code == 200


def test_the_new_destruction_password_destroys(app, make_user):
    user = make_user()
    change(user)
    answer = Session(app).login(user.username, NEW_DPASS)
    assert answer.status_code == 401 and answer.get_json()["error"] == "invalid_credentials"
    assert hashes(app, user.id) is None
    assert user.get("/account").status_code == 401


def test_the_login_password_is_untouched(app, make_user):
    user = make_user()
    before = hashes(app, user.id)
    change(user)
    after = hashes(app, user.id)
    assert after is not None and before is not None
    assert after[0] == before[0] and after[1] != before[1]


def test_the_new_one_may_be_the_old_one_nothing_compares_them(app, make_user):
    user = make_user()
    assert change(user, new_d_pass=DPASS).status_code == 200
    assert Session(app).login(user.username, DPASS).status_code == 401
    assert hashes(app, user.id) is None


CHANGE_ERRORS = [
    ({"new_d_pass": NEW_DPASS}, 400, "missing_field"),
    ({"password": "", "new_d_pass": NEW_DPASS}, 400, "missing_field"),
    ({"password": PASSWORD}, 400, "missing_field"),
    ({"password": PASSWORD, "new_d_pass": ""}, 400, "missing_field"),
    ({"password": PASSWORD, "new_d_pass": "1234567"}, 400, "weak_password"),
    ({"password": PASSWORD, "new_d_pass": "x" * 1025}, 400, "password_too_long"),
    ({"password": PASSWORD, "new_d_pass": PASSWORD}, 400, "same_passwords"),
    ({"password": PASSWORD, "new_d_pass": 12345678}, 400, "invalid_field"),
    ({"password": WRONG, "new_d_pass": NEW_DPASS}, 401, "invalid_credentials"),
    ({"password": WRONG, "new_d_pass": "short"}, 401, "invalid_credentials"),  # the password first
    ({"password": WRONG, "new_d_pass": WRONG}, 401, "invalid_credentials"),
    ({"password": DPASS, "new_d_pass": NEW_DPASS}, 401, "invalid_credentials"),  # not the login password
]


@pytest.mark.parametrize("fields, status, code", CHANGE_ERRORS)
def test_a_refused_change_answers_its_code_and_changes_nothing(app, make_user, fields, status, code):
    user = make_user()
    before = hashes(app, user.id)
    answer = user.post("/destruction_password", fields)
    assert (answer.status_code, answer.get_json()["error"]) == (status, code)
    assert answer.get_json()["message"]
    assert hashes(app, user.id) == before
    assert user.get("/account").status_code == 200  # still signed in, and still here


def test_the_boundaries_of_the_new_one_are_accepted(make_user):
    user = make_user()
    assert change(user, new_d_pass="d" * 8).status_code == 200
    assert change(user, new_d_pass="d" * 1024).status_code == 200


def test_a_change_racing_a_deletion_says_the_account_is_gone(make_user, runtime, monkeypatch):
    user = make_user()
    real_run = runtime.cpu.run

    def verify_then_delete(fn, *args):  # the deletion commits between the check and the write
        result = real_run(fn, *args)
        monkeypatch.setattr(runtime.cpu, "run", real_run)
        accounts.delete_account(Context(db=db.session, rt=runtime), user.id)
        return result

    monkeypatch.setattr(runtime.cpu, "run", verify_then_delete)
    answer = change(user)
    assert answer.status_code == 401 and answer.get_json()["error"] == "login_required"


def test_a_change_for_an_account_already_gone_says_so(app, runtime, make_user):
    user = make_user()
    with app.app_context():
        ctx = Context(db=db.session, rt=runtime)
        accounts.delete_account(ctx, user.id)
        with pytest.raises(Unauthorized) as refused:
            accounts.change_destruction_password(ctx, user.id, PASSWORD, NEW_DPASS)
    assert refused.value.code == "login_required"


def test_nothing_about_the_passwords_reaches_the_log(make_user, caplog):
    user = make_user()
    with caplog.at_level(logging.DEBUG):
        change(user)
        change(user, password=WRONG)
        change(user, new_d_pass=PASSWORD)
    for secret in (PASSWORD, NEW_DPASS, WRONG, DPASS):
        assert secret not in caplog.text


# ---- the browser face -------------------------------------------------------------


def test_the_form_changes_it_and_comes_back_with_a_message(app, make_user):
    user = make_user()
    page = form_post(user, "/destruction_password", password=PASSWORD, new_d_pass=NEW_DPASS)
    assert page.request.path == "/account" and "Destruction password changed" in page.get_data(as_text=True)
    assert Session(app).login(user.username, DPASS).status_code == 401
    assert hashes(app, user.id) is not None


def test_a_refused_form_shows_the_reason_on_the_account_page_without_the_passwords(make_user):
    user = make_user()
    page = form_post(user, "/destruction_password", password=PASSWORD, new_d_pass=PASSWORD)
    html = page.get_data(as_text=True)
    assert page.request.path == "/account" and "must differ from the password" in html
    assert PASSWORD not in html
    wrong = form_post(user, "/destruction_password", password=WRONG, new_d_pass=NEW_DPASS)
    assert wrong.request.path == "/account" and "current password is wrong" in wrong.get_data(as_text=True)


def test_the_password_form_comes_back_to_the_account_page(app, make_user):
    user = make_user()
    page = form_post(user, "/password", password=PASSWORD, new_password="a brand new password")
    assert page.request.path == "/account" and "Password changed" in page.get_data(as_text=True)
    assert Session(app).login(user.username, "a brand new password").status_code == 200


def test_the_log_out_everywhere_form_signs_out_every_device(app, make_user):
    user = make_user()
    phone = Session(app, user.username)
    phone.login()
    page = form_post(user, "/logout")
    assert "logged out" in page.get_data(as_text=True)
    assert user.get("/account").status_code == phone.get("/account").status_code == 401


def test_the_delete_form_removes_the_account(app, make_user):
    user = make_user()
    page = form_post(user, "/delete_account")
    assert "gone" in page.get_data(as_text=True)
    assert hashes(app, user.id) is None


# ---- the contract document --------------------------------------------------------


def test_the_answers_match_the_openapi_document(make_user):
    doc, user = openapi_document(), make_user()
    answers = [
        ("get", "/account", user.get("/account")),
        ("post", "/destruction_password", change(user, password=WRONG)),
        ("post", "/destruction_password", change(user, new_d_pass="short")),
        ("post", "/destruction_password", change(user, new_d_pass=PASSWORD)),
        ("post", "/destruction_password", change(user)),
        ("get", "/account", user.client.get("/account")),
    ]
    for method, path, response in answers:
        documented = doc["paths"][path][method]["responses"][str(response.status_code)]["content"]
        schema = documented[response.mimetype]["schema"]
        if response.is_json:
            jsonschema.validate(response.get_json(), {**schema, "components": doc["components"]})
    assert [r.mimetype for _, _, r in answers][::5] == ["application/json", "text/html"]
    assert "429" in doc["paths"]["/destruction_password"]["post"]["responses"]  # the shared limit
