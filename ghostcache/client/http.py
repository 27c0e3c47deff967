"""One signed-in (or not yet) session with the server over `requests`: the CSRF token,
JSON negotiation, and the contract's errors turned into ApiError."""

from __future__ import annotations

from typing import Any

import requests

from .errors import ApiError, ClientError

TIMEOUT = (10, 60)  # (connect, read) seconds; streams pass their own
JSON_ACCEPT = {"Accept": "application/json"}
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Api:
    """The HTTP contract of one server. Cookies live in `self.http.cookies` (the profile
    saves and restores them); the CSRF token is fetched once per process when needed."""

    def __init__(self, server: str, cookies: dict[str, str] | None = None) -> None:
        self.server = server.rstrip("/")
        self.http = requests.Session()
        self.http.headers.update(JSON_ACCEPT)
        self.http.headers["User-Agent"] = "ghostcache-client"
        if cookies:
            self.http.cookies.update(cookies)
        self.token: str | None = None

    def url(self, path: str) -> str:
        return self.server + path

    def cookies(self) -> dict[str, str]:
        """The session cookies, to be saved in the profile."""
        return requests.utils.dict_from_cookiejar(self.http.cookies)

    def csrf(self) -> str:
        """The session's CSRF token (GET /csrf starts a session if there is none)."""
        if self.token is None:
            self.token = str(self.get("/csrf")["csrf_token"])
        return self.token

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body or {}).json()

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path, json=body).json()

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        """Send one request; ApiError for any answer of 400 or above, ClientError when the
        server cannot be reached. Unsafe methods carry the CSRF token as a header."""
        headers = dict(kw.pop("headers", None) or {})
        if method in UNSAFE:
            headers["X-CSRFToken"] = self.csrf()
        kw.setdefault("timeout", TIMEOUT)
        try:
            response = self.http.request(method, self.url(path), headers=headers, **kw)
        except requests.exceptions.Timeout:
            raise ClientError(f"{self.server} did not answer in time.") from None
        except requests.exceptions.RequestException as exc:
            # The exception text names only the host and port, but keep it to its class.
            raise ClientError(f"Could not reach {self.server} ({type(exc).__name__}).") from None
        if response.status_code >= 400:
            raise api_error(response)
        return response


def api_error(response: requests.Response) -> ApiError:
    """The contract's error body as an ApiError; a non-JSON answer gets a generic message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    finally:
        response.close()
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return ApiError(response.status_code, str(body.get("error", "error")), body["message"])
    if isinstance(body, dict) and isinstance(body.get("error"), str):  # csrf_failed, rate_limited
        return ApiError(response.status_code, body["error"], f"The server refused: {body['error']}.")
    return ApiError(response.status_code, "http_error", f"The server answered HTTP {response.status_code}.")
