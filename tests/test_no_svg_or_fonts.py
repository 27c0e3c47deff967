"""Nothing that Tor Browser's "Safest" level blocks: no SVG image and no web font in the
templates, the stylesheet or the scripts, and no CSS that loads anything but data: URLs.
(tests/e2e/test_no_javascript.py checks what the pages really load.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ghostcache"
STATIC = PACKAGE / "static"
SOURCES = sorted(
    [*PACKAGE.glob("templates/*.html"), *PACKAGE.glob("templates/*.md"), *STATIC.glob("*.css")]
    + [p for p in STATIC.glob("*.js") if p.name != "age.bundle.js"]  # built from web-src/, no DOM
)
FORBIDDEN = {
    "an SVG file": re.compile(r"\.svg\b", re.IGNORECASE),
    "inline SVG": re.compile(r"<svg\b|createElementNS", re.IGNORECASE),
    "a web font": re.compile(r"@font-face|\.(woff2?|ttf|otf|eot)\b", re.IGNORECASE),
}
CSS_ONLY = {  # in scripts, `URL(` and `createObjectURL(` are something else
    "a CSS url() that is not data:": re.compile(r"\burl\(\s*(?![\"']?data:)", re.IGNORECASE),
    "a CSS @import": re.compile(r"@import\b", re.IGNORECASE),
}


def test_the_checked_sources_are_there():
    names = {p.name for p in SOURCES}
    assert {"base.html", "chat.html", "app.css", "app.js", "e2ee-chat.js"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_source_refers_to_an_svg_or_a_font(path: Path):
    text = path.read_text(encoding="utf-8")
    patterns = FORBIDDEN if path.suffix == ".js" else FORBIDDEN | CSS_ONLY
    found = [what for what, pattern in patterns.items() if pattern.search(text)]
    assert found == [], f"{path.name} refers to {', '.join(found)}"


def test_no_svg_or_font_file_is_served():
    served = [
        p.name
        for p in STATIC.rglob("*")
        if p.suffix.lower() in {".svg", ".woff", ".woff2", ".ttf", ".otf", ".eot"}
    ]
    assert served == []
