"""Script tags with Subresource Integrity: `{{ script_tag('app.js') }}` in a template
writes the static script's URL and the SHA-384 of its bytes, hashed once per process.
The scripts are same-origin, so no `crossorigin` attribute is needed."""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from pathlib import Path

from flask import Flask, current_app, url_for
from markupsafe import Markup


def integrity(path: Path) -> str:
    """The `integrity` value of one file: "sha384-" and its digest in base64."""
    digest = hashlib.sha384(path.read_bytes()).digest()
    return "sha384-" + base64.b64encode(digest).decode("ascii")


@cache
def _static_integrity(folder: str, name: str) -> str:
    """integrity() of static/<name>, found and hashed once per process, not per page."""
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if root not in path.parents or not path.is_file():
        raise FileNotFoundError(f"no static script {name!r}")
    return integrity(path)


def script_tag(name: str) -> Markup:
    """A deferred `<script>` for static/<name>, with its integrity; a missing file is a bug."""
    digest = _static_integrity(current_app.static_folder or "", name)
    url = url_for("static", filename=name)
    return Markup('<script src="{}" integrity="{}" defer></script>').format(url, digest)


def init_assets(app: Flask) -> None:
    app.add_template_global(script_tag)
