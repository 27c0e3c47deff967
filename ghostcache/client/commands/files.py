"""upload, download, files, check-js."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import checkjs, files
from ..context import Context
from ..errors import ApiError, ClientError
from ..prompts import secret
from ..render import clean


def run_upload(ctx: Context) -> int:
    """Upload, share with each --share contact, and print the key once."""
    ctx.require_login()
    uploaded = files.upload(ctx.api, Path(ctx.args.file), ctx.args.expiry_days)
    ctx.say(f"uploaded file #{uploaded['id']} {clean(uploaded['filename'])} ({uploaded['size']} bytes)")
    ctx.say(f"expires: {uploaded['expiry']}")
    ctx.say(f"key (shown once; the server keeps no copy): {uploaded['key']}")
    failed = 0
    for name in ctx.args.share or []:
        try:
            shared = ctx.api.post(f"/file/{uploaded['id']}/share", {"username": name})
            ctx.say(f"shared with {shared['user']['username']}")
        except ApiError as exc:
            ctx.note(f"error: not shared with {name}: {exc.message}")
            failed += 1
    return 1 if failed else 0


def run_download(ctx: Context) -> int:
    """Download and decrypt into OUT (nothing is left behind on failure)."""
    ctx.require_login()
    key = ctx.args.key
    if key == "-" or key is None:
        key = secret("File key (AGE-SECRET-KEY-1...): ", key == "-")
    out = Path(ctx.args.output)
    if out.exists() and not ctx.args.force:
        raise ClientError(f"{out} exists; use --force to replace it.")
    size = files.download(ctx.api, ctx.args.file_id, key, out)
    ctx.say(f"decrypted file #{ctx.args.file_id} into {out} ({size} bytes)")
    return 0


def run_files(ctx: Context) -> int:
    ctx.require_login()
    listing = ctx.api.get("/files")
    for label in ("owned", "shared"):
        ctx.say(f"{label}:")
        for item in listing.get(label, []):
            owner = item.get("owner", {}).get("username", "?")
            ctx.say(
                f"  #{item['id']} {clean(item['filename'])} {item['size']} bytes, by {clean(owner)}, "
                f"expires {item['expiry']}"
            )
    return 0


def run_check_js(ctx: Context) -> int:
    """One line per script: ok or MISMATCH; exit 1 on any mismatch."""
    verdicts = checkjs.check(ctx.api)
    for verdict in verdicts:
        ctx.say(verdict.line())
    bad = [v for v in verdicts if not v.ok]
    if bad:
        print(f"{len(bad)} script(s) differ from this release ({ctx.server})", file=sys.stderr)
        return 1
    ctx.say(f"all {len(verdicts)} scripts match this release")
    return 0
