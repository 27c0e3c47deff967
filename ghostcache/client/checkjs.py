"""check-js: does the server serve the JavaScript of this release? Each script in the
installed package's static folder is fetched from /static/<name> and its SHA-384
compared; the pages that load scripts are fetched too, and any Subresource Integrity
attribute (integrity="sha384-...") on a <script src> must name the release's hash.

This proves what the server serves now, to this client; a server can serve other code
to someone else, or later."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib import resources
from urllib.parse import urljoin, urlsplit

from .errors import ApiError
from .http import Api

PAGES = ("/login", "/", "/file/upload")


@dataclass
class Verdict:
    """One script: whether the served file and every integrity attribute match."""

    name: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        detail = "; ".join(self.problems or self.notes)
        return f"{'ok' if self.ok else 'MISMATCH'} {self.name}" + (f" ({detail})" if detail else "")


def release_hashes() -> dict[str, str]:
    """{name: base64 SHA-384} of every .js file in the installed package's static folder."""
    static = resources.files("ghostcache").joinpath("static")
    return {
        entry.name: sri(entry.read_bytes())
        for entry in sorted(static.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".js") and entry.is_file()
    }


def sri(data: bytes) -> str:
    return base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


class _Scripts(HTMLParser):
    """(src, integrity or None) of every <script src> in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(reversed(attrs))  # as in browsers, the first of a repeated attribute counts
        if tag == "script" and values.get("src"):
            self.found.append((str(values["src"]), values.get("integrity")))


def check(api: Api) -> list[Verdict]:
    """A verdict per release script, plus one per page script not in the release."""
    release = release_hashes()
    verdicts = {name: Verdict(name) for name in release}
    for name, expected in release.items():
        response = api.request("GET", f"/static/{name}", headers={"Accept": "*/*"})
        if sri(response.content) != expected:
            verdicts[name].problems.append("the served file differs from the release")
    for page in PAGES:
        for src, integrity in _page_scripts(api, page):
            name = _static_name(urljoin(page, src)) or src
            verdict = verdicts.setdefault(name, Verdict(name))
            if name not in release:
                verdict.problems.append(f"{page} loads a script that is not in this release: {src}")
            elif integrity is None:
                verdict.notes.append(f"no integrity attribute on {page}")
            elif not _integrity_matches(integrity, release[name]):
                verdict.problems.append(f"integrity attribute on {page} is not the release's hash")
    return list(verdicts.values())


def _page_scripts(api: Api, page: str) -> list[tuple[str, str | None]]:
    try:
        response = api.request("GET", page, headers={"Accept": "text/html"})
    except ApiError:
        return []  # a page this session may not see (signed out): nothing to check there
    parser = _Scripts()
    parser.feed(response.text)
    return parser.found


def _static_name(src: str) -> str | None:
    """The file name of a same-origin /static/ script (query string ignored), else None."""
    parts = urlsplit(src)
    if parts.scheme or parts.netloc or not parts.path.startswith("/static/"):
        return None
    name = parts.path[len("/static/") :]
    return name if name and "/" not in name else None


def _integrity_matches(integrity: str, expected: str) -> bool:
    """Strict: every token must be sha384-<the release hash> (a second token would let a
    browser accept another file)."""
    tokens = integrity.split()
    return bool(tokens) and all(token.split("?", 1)[0] == f"sha384-{expected}" for token in tokens)
