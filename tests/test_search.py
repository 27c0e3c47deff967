"""Finding people by part of their name."""

from __future__ import annotations

import pytest

from ghostcache.extensions import db
from ghostcache.services import accounts
from ghostcache.services.context import Context
from tests.conftest import DPASS, PASSWORD


@pytest.fixture
def add_users(app, runtime):
    """Create accounts straight through the service (no HTTP, no rate limit)."""

    def add(*names: str) -> None:
        with app.app_context():
            ctx = Context(db=db.session, rt=runtime)
            for name in names:
                accounts.register(ctx, name, PASSWORD, DPASS)

    return add


@pytest.fixture
def me(make_user):
    return make_user("searcher")


def names(response) -> list[str]:
    assert response.status_code == 200
    return [u["username"] for u in response.get_json()["results"]]


def test_results_are_user_objects(me, make_user):
    other = make_user("Findable")
    body = me.get("/search?q=find").get_json()
    assert body == {"query": "find", "results": [{"id": other.id, "username": "Findable"}]}


def test_matches_a_substring_without_regard_to_case(me, add_users):
    add_users("BlueWhale", "whalesong", "orca", "narWHAL")
    assert names(me.get("/search?q=WhAl")) == ["BlueWhale", "narWHAL", "whalesong"]


def test_keeps_the_query_as_typed(me, add_users):
    add_users("Trinity")
    assert me.get("/search?q=TRIN").get_json()["query"] == "TRIN"


def test_never_finds_yourself(me, add_users):
    add_users("searcher2")
    assert names(me.get("/search?q=searcher")) == ["searcher2"]
    assert names(me.get("/search?q=SEARCHER")) == ["searcher2"]


def test_excludes_people_you_blocked_and_who_blocked_you(me, make_user):
    blocked_by_me = make_user("pal_one")
    blocker = make_user("pal_two")
    make_user("pal_three")
    # me denies pal_one (me blocks pal_one); pal_two denies me (pal_two blocks me).
    conn = blocked_by_me.post("/connect", {"username": "searcher"}).get_json()
    assert me.post(f"/connect/deny/{conn['id']}").status_code == 200
    conn = me.post("/connect", {"username": "pal_two"}).get_json()
    assert blocker.post(f"/connect/deny/{conn['id']}").status_code == 200
    assert names(me.get("/search?q=pal")) == ["pal_three"]
    assert "searcher" not in names(blocked_by_me.get("/search?q=search"))
    assert "searcher" not in names(blocker.get("/search?q=search"))


def test_at_most_fifty_results_sorted_by_username(me, add_users):
    created = [f"crowd{i:02d}" for i in range(60)]
    add_users(*reversed(created))
    assert names(me.get("/search?q=crowd")) == created[:50]


def test_sorting_ignores_case(me, add_users):
    add_users("zed_b", "Zed_a", "ZED_c")
    assert names(me.get("/search?q=zed")) == ["Zed_a", "zed_b", "ZED_c"]


@pytest.mark.parametrize("path", ["/search", "/search?q=", "/search?q=%20%20"])
def test_empty_or_absent_query_gives_no_results(me, add_users, path):
    add_users("anybody")
    assert me.get(path).get_json() == {"query": "", "results": []}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("_", ["under_score"]),
        ("%", []),
        ("r_s", ["under_score"]),
        ("r%s", []),
        ("\\", []),
        ("t.o", ["dot.org"]),
        ("\x00", []),
        ("d\x00", []),
    ],
)
def test_like_wildcards_are_matched_literally(me, add_users, query, expected):
    add_users("under_score", "plainname", "dot.org", "dashy-one")
    assert names(me.get("/search", query_string={"q": query})) == expected


def test_logged_out_search_is_login_required(app):
    response = app.test_client().get("/search?q=a", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "login_required"


def test_html_page_lists_results(me, add_users):
    add_users("visible_one")
    html = me.client.get("/search?q=visible").get_data(as_text=True)
    assert "visible_one" in html
    assert "Send contact request" in html


def test_html_page_escapes_the_query(me):
    payload = '<script>alert("x")</script>'
    response = me.client.get("/search", query_string={"q": payload})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html
