"""Every page renders for a browser, with the CSRF meta tag and no inline script."""

import pytest

PAGES_LOGGED_OUT = ["/", "/register", "/login", "/help"]
PAGES_LOGGED_IN = [
    "/",
    "/connect",
    "/connections",
    "/blocks",
    "/account",
    "/search?q=a",
    "/files",
    "/file/upload",
    "/logout",
    "/e2ee",
]


@pytest.mark.parametrize("path", PAGES_LOGGED_OUT)
def test_public_pages_render(app, path):
    response = app.test_client().get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<meta name="csrf-token"' in html
    assert "<script>" not in html and "style=" not in html


@pytest.mark.parametrize("path", PAGES_LOGGED_IN)
def test_member_pages_render(make_user, path):
    user = make_user()
    response = user.client.get(path)
    assert response.status_code == 200
    assert user.username in response.get_data(as_text=True)


def test_help_page_shows_the_usage_guide(app):
    html = app.test_client().get("/help").get_data(as_text=True)
    assert "destruction password" in html.lower()
