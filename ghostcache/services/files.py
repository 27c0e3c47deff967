"""Files: encrypted upload as a stream, listing, download, sharing (share, unshare,
hide), delete."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO, cast

import pyrage
from sqlalchemy import CursorResult, delete, select

from ..blobs import new_blob_name
from ..crypto import Reader, encrypt_stream, new_file_identity
from ..models import File, FileAccess, User
from ..secrets import Secret
from .connections import accepted_between
from .context import Context, present
from .errors import Conflict, Forbidden, Gone, Invalid, NotFound, TooLarge, not_found
from .users import add_unique, find_by_name, require_peer
from .views import file_view, user_view

DEFAULT_EXPIRY_DAYS = MAX_EXPIRY_DAYS = 365
# ASCII digits with an optional sign, nothing else: int() would also take "٣", "３", "1_0".
WHOLE_NUMBER = re.compile(r"([+-]?)([0-9]+)")


@dataclass
class StoredBlob:
    """A blob fully written and encrypted, not yet recorded in the database."""

    name: str
    key: Secret
    size: int


class _CountingReader:
    """Counts plaintext bytes and stops the upload once it passes the limit.

    pyrage turns any exception raised here into EncryptError, so the original
    is kept in `error` to be raised again with its own meaning.
    """

    def __init__(self, source: Reader, limit: int) -> None:
        self._source, self._limit = source, limit
        self.size = 0
        self.error: BaseException | None = None

    def read(self, n: int = -1) -> bytes:
        try:
            chunk = self._source.read(n)
        except BaseException as exc:
            self.error = exc
            raise
        self.size += len(chunk)
        if self.size > self._limit:
            self.error = _too_large(self._limit)
            raise self.error
        return chunk


def _too_large(limit: int) -> TooLarge:
    return TooLarge("too_large", f"Files can be at most {limit // (1024 * 1024)} MB.")


@contextmanager
def incoming_blob(ctx: Context, source: Reader) -> Iterator[StoredBlob]:
    """Encrypt `source` into a new blob as it arrives; the blob is removed if the
    block raises, so a failed upload leaves nothing behind."""
    identity, recipient = new_file_identity()
    reader = _CountingReader(source, ctx.rt.settings.max_upload_bytes)
    name = new_blob_name()
    try:
        with ctx.rt.blobs.writer(name) as out:
            encrypt_stream(reader, out, recipient)
    except pyrage.EncryptError:
        if reader.error is not None:
            raise reader.error from None
        raise
    blob = StoredBlob(name=name, key=identity, size=reader.size)
    try:
        yield blob
    except BaseException:
        ctx.rt.blobs.delete(name)
        raise


def parse_expiry(raw: object) -> int:
    """Days to keep a file: default 365, any whole number above 365 (of any length) is
    365; zero, negative or not a whole number is 400 invalid_expiry."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return DEFAULT_EXPIRY_DAYS
    if isinstance(raw, str):
        return _days_from_text(raw.strip())
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return min(raw, MAX_EXPIRY_DAYS)
    raise _bad_expiry()


def _days_from_text(text: str) -> int:
    """Decided by the digits' length, not int(): Python refuses int() on strings of
    more than 4300 digits, and any number of four or more significant digits is
    above 365 anyway."""
    match = WHOLE_NUMBER.fullmatch(text)
    if match is None:
        raise _bad_expiry()
    sign, digits = match.group(1), match.group(2).lstrip("0")
    if sign == "-" or not digits:  # negative, or zero however written
        raise _bad_expiry()
    if len(digits) > len(str(MAX_EXPIRY_DAYS)):
        return MAX_EXPIRY_DAYS
    return min(int(digits), MAX_EXPIRY_DAYS)


def _bad_expiry() -> Invalid:
    return Invalid("invalid_expiry", "expiry_days must be a whole number of days from 1 to 365.")


def clean_filename(raw: str | None) -> str:
    """The last path component, without control characters, at most 255 characters."""
    name = re.split(r"[\\/]", raw or "")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return (name or "file")[:255]


def record_upload(ctx: Context, me: int, blob: StoredBlob, filename: str | None, expiry_raw: object) -> dict:
    """Create the File row for a stored blob; returns the file object plus its key."""
    days = parse_expiry(expiry_raw)
    now = ctx.now()
    file = File(
        owner_id=me,
        filename=clean_filename(filename),
        stored_name=blob.name,
        size=blob.size,
        created_at=now,
        expiry=now + timedelta(days=days),
    )
    with ctx.write():
        ctx.db.add(file)
        ctx.db.flush()
        # Build the answer before committing: a failure after the commit would delete
        # the blob (incoming_blob) and leave a listed file that cannot be downloaded.
        view = file_view(file, present(ctx.db.get(User, me)), shared_with=[])
        view["key"] = str(blob.key.reveal())
    return view


def _visible_file(ctx: Context, me: int, file_id: int, owner_only: bool) -> File:
    """The file if `me` may see it (404 otherwise); 410 when it has expired."""
    file = ctx.get(File, file_id)
    allowed = file is not None and (file.owner_id == me or (not owner_only and _granted(ctx, file.id, me)))
    if not allowed:
        raise not_found("That file")
    if file.expiry <= ctx.now():
        raise Gone("expired", "That file has expired.")
    return file


def _granted(ctx: Context, file_id: int, user_id: int) -> bool:
    return (
        ctx.db.scalar(
            select(FileAccess.id).where(FileAccess.file_id == file_id, FileAccess.user_id == user_id)
        )
        is not None
    )


def list_files(ctx: Context, me: int) -> dict:
    """Unexpired files I own (with their grantees) and files shared with me."""
    now = ctx.now()
    owned = ctx.db.scalars(
        select(File).where(File.owner_id == me, File.expiry > now).order_by(File.id.desc())
    ).all()
    grantees = _grantees(ctx, [f.id for f in owned])
    owner = ctx.db.get(User, me)
    shared_rows = ctx.db.execute(
        select(File, User)
        .join(FileAccess, FileAccess.file_id == File.id)
        .join(User, User.id == File.owner_id)
        .where(FileAccess.user_id == me, File.expiry > now)
        .order_by(File.id.desc())
    ).all()
    return {
        "owned": [file_view(f, present(owner), grantees.get(f.id, [])) for f in owned],
        "shared": [file_view(f, o) for f, o in shared_rows],
    }


def _grantees(ctx: Context, file_ids: list[int]) -> dict[int, list[User]]:
    result: dict[int, list[User]] = {}
    if not file_ids:
        return result
    rows = ctx.db.execute(
        select(FileAccess.file_id, User)
        .join(User, User.id == FileAccess.user_id)
        .where(FileAccess.file_id.in_(file_ids))
        .order_by(User.username_key)
    ).all()
    for file_id, user in rows:
        result.setdefault(file_id, []).append(user)
    return result


def file_details(ctx: Context, me: int, file_id: int) -> dict:
    """The file object for its owner (with its grantees) or a grantee (without them)."""
    file = _visible_file(ctx, me, file_id, owner_only=False)
    owner = ctx.db.get(User, file.owner_id)
    if file.owner_id != me:
        return file_view(file, present(owner))
    return file_view(file, present(owner), _grantees(ctx, [file.id]).get(file.id, []))


def open_download(ctx: Context, me: int, file_id: int) -> tuple[str, BinaryIO]:
    """(attachment name, open blob) for the owner or a grantee."""
    with ctx.read():  # ended before the blob streams out
        file = _visible_file(ctx, me, file_id, owner_only=False)
        name, stored = file.filename, file.stored_name
    try:
        return name + ".age", ctx.rt.blobs.open(stored)
    except FileNotFoundError:  # purged or deleted between the check and the read
        raise not_found("That file") from None


def delete_file(ctx: Context, me: int, file_id: int) -> None:
    """Delete a file I own: the row first, then its blob."""
    with ctx.write():
        file = ctx.get(File, file_id)
        if file is None or file.owner_id != me:
            raise not_found("That file")
        stored = file.stored_name
        ctx.db.execute(delete(File).where(File.id == file_id))
    ctx.rt.blobs.delete(stored)


def share(ctx: Context, me: int, file_id: int, username: str | None) -> dict:
    """Grant an accepted contact the right to download a file I own."""
    file = _visible_file(ctx, me, file_id, owner_only=True)
    target = require_peer(
        ctx,
        me,
        username,
        Invalid("cannot_share_with_self", "You already have this file."),
        "You cannot share with this user.",
    )
    if accepted_between(ctx, me, target.id) is None:
        raise Forbidden("not_connected", "You can only share files with accepted contacts.")
    if _granted(ctx, file.id, target.id):
        raise _already_shared()
    grant = FileAccess(file_id=file.id, user_id=target.id, granted_at=ctx.now())
    add_unique(ctx, grant, _already_shared())
    ctx.publish(target.id)  # their open pages show the share
    return {"file_id": file.id, "user": user_view(target)}


def _already_shared() -> Conflict:
    return Conflict("already_shared", "The file is already shared with this user.")


def unshare(ctx: Context, me: int, file_id: int, username: str | None) -> dict:
    """Take back a share of a file I own (expired or not): the user loses access at once."""
    with ctx.write():
        file = ctx.get(File, file_id)
        if file is None or file.owner_id != me:
            raise not_found("That file")
        if not username:
            raise Invalid("missing_field", "The field 'username' is required.")
        grantee = find_by_name(ctx, username)
        if grantee is None or not _revoke(ctx, file.id, grantee.id):
            raise NotFound("not_shared", "That file is not shared with this user.")
        return {"file_id": file.id, "user": user_view(grantee)}


def hide(ctx: Context, me: int, file_id: int) -> None:
    """Remove a file shared with me from my list: my share goes, and my access with it.
    Owners get 404: they delete their files instead."""
    with ctx.write():
        file = ctx.get(File, file_id)  # also keeps ids no column can hold out of the query
        if file is None or not _revoke(ctx, file.id, me):
            raise not_found("That file")


def _revoke(ctx: Context, file_id: int, user_id: int) -> bool:
    """Delete one user's share of a file; False when there was none."""
    result = ctx.db.execute(
        delete(FileAccess).where(FileAccess.file_id == file_id, FileAccess.user_id == user_id)
    )
    return cast(CursorResult, result).rowcount > 0
