"""Errors follow the contract: JSON {error, message} for scripts, a page or flash for browsers."""

from __future__ import annotations

import pytest

from tests.conftest import JSON


def test_unknown_route_is_json_404_for_scripts(make_user):
    response = make_user().get("/no/such/thing")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_unknown_route_is_a_page_for_browsers(app):
    response = app.test_client().get("/no/such/thing")
    assert response.status_code == 404
    assert "text/html" in response.content_type


def test_wrong_method_is_405_in_the_contract_format(make_user):
    response = make_user().client.delete("/files", headers=JSON)
    assert response.status_code == 405
    assert set(response.get_json()) == {"error", "message"}


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "{not json", "null"])
def test_a_body_that_is_not_a_json_object_is_400(make_user, body):
    user = make_user()
    response = user.client.post(
        "/connect", data=body, headers=user.headers(), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.get_json()["error"] in {"invalid_json", "bad_request"}


@pytest.mark.parametrize("value", [5, ["bob"], {"a": 1}, True])
def test_a_field_of_the_wrong_type_is_400_invalid_field(make_user, value):
    response = make_user().post("/connect", {"username": value})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_field"


def test_an_unexpected_failure_is_a_plain_500_without_a_trace(app, make_user):
    def explode():
        raise RuntimeError("secret internal detail")

    app.add_url_rule("/explode", view_func=explode)
    user = make_user()
    json_answer = user.get("/explode")
    assert json_answer.status_code == 500
    assert json_answer.get_json()["error"] == "internal_error"
    page = user.client.get("/explode")
    assert page.status_code == 500
    for text in (json_answer.get_data(as_text=True), page.get_data(as_text=True)):
        assert "Traceback" not in text and "secret internal detail" not in text


def test_html_form_error_is_flashed_and_the_form_is_kept(app):
    client = app.test_client()
    token = client.get("/csrf").get_json()["csrf_token"]
    page = client.post(
        "/register",
        data={"csrf_token": token, "username": "ab", "password": "longenough1", "d_pass": "longenough2"},
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert "Usernames are 3 to 32 characters" in html
    assert 'value="ab"' in html
    assert "longenough" not in html  # passwords are never echoed back
