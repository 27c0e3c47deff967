"""Accounts: registration, login with the destruction password, deletion."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, Table, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from ..crypto import PasswordHashing, new_fernet_key, wrap_user_key
from ..models import File, RetiredName, User
from . import invites
from .context import Context, present
from .errors import Conflict, Invalid, Unauthorized
from .users import find_by_name

USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{3,32}$")
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LoginOutcome:
    """A successful login has a user; `destroy_user_id` is work to do after answering."""

    user: User | None = None
    destroy_user_id: int | None = None


def invalid_credentials() -> Unauthorized:
    return Unauthorized("invalid_credentials", "Wrong username or password.")


def _require(value: str | None, field: str) -> str:
    if not value:
        raise Invalid("missing_field", f"The field '{field}' is required.")
    return value


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid("weak_password", f"Passwords need at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise Invalid("password_too_long", f"Passwords can have at most {MAX_PASSWORD} characters.")


def register(
    ctx: Context,
    username: str | None,
    password: str | None,
    d_pass: str | None,
    invite: str | None = None,
) -> User:
    """Create an account; both passwords are hashed, the user key is wrapped. With
    GHOSTCACHE_INVITE_ONLY the invite is checked first (403 invite_required before any
    other answer) and used up in the transaction that adds the account; otherwise it
    is ignored."""
    if not ctx.rt.settings.invite_only:
        invite = None
    else:
        invites.check(ctx, invite)
    username = _require(username, "username").strip()
    password = _require(password, "password")
    d_pass = _require(d_pass, "d_pass")
    if not USERNAME.match(username):
        raise Invalid(
            "invalid_username",
            "Usernames are 3 to 32 characters: letters, digits, '_', '.' or '-'.",
        )
    _check_password(password)
    _check_password(d_pass)
    if password == d_pass:
        raise Invalid("same_passwords", "The destruction password must differ from the password.")
    with ctx.read():
        if find_by_name(ctx, username) is not None or _retired(ctx, username):
            raise _taken()
    hashes = ctx.rt.cpu.run(_hash_both, ctx.rt.passwords, password, d_pass)
    now = ctx.now()
    user = User(
        username=username,
        username_key=username.lower(),
        password_hash=hashes[0],
        dpass_hash=hashes[1],
        keys_database_key=wrap_user_key(ctx.rt.keyring, new_fernet_key()),
        created_at=now,
        last_login=now,
        # Random, not 1: a database may give a new account the id of a deleted one,
        # and a cookie left over from that account must not fit the new one.
        session_version=secrets.randbelow(2**31) + 1,
    )
    _insert(ctx, user, invite)
    return user


def _insert(ctx: Context, user: User, invite: str | None) -> None:
    """Add the account, using up its invite in the same transaction: a lost race for
    the name (409) leaves the invite unused, a lost race for the invite (403) adds no
    account."""
    try:
        with ctx.write():
            if invite is not None:
                invites.claim(ctx, invite)
            ctx.db.add(user)
    except IntegrityError:  # a racing registration took the name first
        raise _taken() from None


def _retired(ctx: Context, username: str) -> bool:
    """True while the name of an account that ended is still reserved."""
    until = ctx.db.scalar(select(RetiredName.until).where(RetiredName.tag == ctx.rt.tags.tag(username)))
    return until is not None and until > ctx.now()


def reserved_for(ctx: Context) -> timedelta:
    """How long after its account's last activity a name stays reserved: until an
    idle account would have been purged and its name reserved as long again, so a
    destroyed account's name comes free exactly when an abandoned one's would."""
    return 2 * timedelta(days=ctx.rt.settings.inactivity_days)


def _hash_both(hashes: PasswordHashing, password: str, d_pass: str) -> tuple[str, str]:
    return hashes.hash(password), hashes.hash(d_pass)


def _verify_both(hashes: PasswordHashing, user: User | None, password: str) -> tuple[bool, bool]:
    """(login password matches, destruction password matches); always two Argon2 runs."""
    login_ok = hashes.verify(user.password_hash if user else None, password)
    destroy_ok = hashes.verify(user.dpass_hash if user else None, password)
    return login_ok, destroy_ok


def _taken() -> Conflict:
    return Conflict("username_taken", "That username is taken.")


def login(ctx: Context, username: str | None, password: str | None) -> LoginOutcome:
    """Check credentials. Every path verifies two hashes, so timing reveals nothing."""
    with ctx.read():
        user = find_by_name(ctx, username or "")
    password = password or ""
    if len(password) > MAX_PASSWORD:
        password = password[: MAX_PASSWORD + 1]  # cannot match a stored hash anyway
    login_ok, destroy_ok = ctx.rt.cpu.run(_verify_both, ctx.rt.passwords, user, password)
    if user is None:
        return LoginOutcome()
    if is_inactive(ctx, user) or destroy_ok:
        _doom(ctx, user)
        return LoginOutcome(destroy_user_id=user.id)
    if not login_ok or not _update_user(ctx, user, last_login=ctx.now()):
        return LoginOutcome()  # a wrong password, or an account deleted meanwhile
    return LoginOutcome(user=user)


def _doom(ctx: Context, user: User) -> None:
    """Make the account unusable now; the heavy deletion runs after the answer.

    Its last login goes back to the epoch, so if the deferred deletion never
    runs (a crash), the next purge deletes it as inactive.
    """
    _update_user(ctx, user, last_login=EPOCH, session_version=User.session_version + 1)
    ctx.publish(user.id)  # its open streams end now


def is_inactive(ctx: Context, user: User) -> bool:
    limit = timedelta(days=ctx.rt.settings.inactivity_days)
    return ctx.now() - user.last_login > limit


def touch(ctx: Context, user_id: int, last_login: datetime) -> None:
    """Count a request as activity, at most once an hour (keeps active sessions alive)."""
    if ctx.now() - last_login > timedelta(hours=1):
        with ctx.write():
            ctx.db.execute(update(User).where(User.id == user_id).values(last_login=ctx.now()))


def end_all_sessions(ctx: Context, user_id: int) -> None:
    """Invalidate every session of the user, on every device, at once."""
    with ctx.write():
        ctx.db.execute(
            update(User).where(User.id == user_id).values(session_version=User.session_version + 1)
        )
    ctx.publish(user_id)  # open streams notice at once


def change_password(ctx: Context, user_id: int, current: str | None, new: str | None) -> User:
    """Replace the login password after checking the current one; ends every session."""
    new = _require(new, "new_password")
    with ctx.read():
        user = ctx.db.get(User, user_id)
    user = present(user)
    if not ctx.rt.cpu.run(ctx.rt.passwords.verify, user.password_hash, current or ""):
        raise Unauthorized("invalid_credentials", "The current password is wrong.")
    _check_password(new)
    # Never compared with the destruction password: an answer that depended on it
    # would let someone holding the login password test guesses of the other.
    # A login with a password that matches both destroys (see login()).
    new_hash = ctx.rt.cpu.run(ctx.rt.passwords.hash, new)
    if not _update_user(ctx, user, password_hash=new_hash, session_version=User.session_version + 1):
        raise _account_gone()
    ctx.publish(user_id)
    return user


def change_destruction_password(ctx: Context, user_id: int, current: str | None, new: str | None) -> None:
    """Replace the destruction password after checking the current login password.

    Sessions stay: none was started with the destruction password, and the caller has
    just proved the login password, so nothing about who may be signed in changes.
    """
    current = _require(current, "password")
    new = _require(new, "new_d_pass")
    user = verify_current_password(ctx, user_id, current)
    _check_password(new)
    # Compared with the login password the caller has just proved, never with the old
    # destruction password: no answer here depends on what that one was.
    if new == current:
        raise Invalid("same_passwords", "The destruction password must differ from the password.")
    new_hash = ctx.rt.cpu.run(ctx.rt.passwords.hash, new)
    if not _update_user(ctx, user, dpass_hash=new_hash):
        raise _account_gone()


def verify_current_password(ctx: Context, user_id: int, password: str | None) -> User:
    """The signed-in user, once `password` is proved to be their login password (checked
    off the event loop, outside any transaction); else 401 invalid_credentials, or
    400 missing_field when it is absent."""
    password = _require(password, "password")
    with ctx.read():
        user = ctx.db.get(User, user_id)
    if user is None:  # deleted since the session was checked
        raise _account_gone()
    if not ctx.rt.cpu.run(ctx.rt.passwords.verify, user.password_hash, password):
        raise Unauthorized("invalid_credentials", "The current password is wrong.")
    return user


def _account_gone() -> Unauthorized:
    return Unauthorized("login_required", "Your account no longer exists.")


def _update_user(ctx: Context, user: User, **values: object) -> bool:
    """Update the account's row (and `user` with it); False when it is gone: a deletion
    (a destruction login's, running after its answer) may commit at any moment."""
    with ctx.write():
        statement = update(User).where(User.id == user.id).values(**values)
        return bool(cast(CursorResult, ctx.db.execute(statement)).rowcount)


def delete_account(ctx: Context, user_id: int, last_active: datetime | None = None) -> bool:
    """Delete a user and everything they own, then their blobs, and erase what the
    deletion left in the data folder. The name stays reserved (see reserved_for),
    counted from `last_active` (default: now). False if already gone."""
    with ctx.write():
        user = ctx.db.get(User, user_id)
        if user is None:
            return False
        blob_names = list(ctx.db.scalars(select(File.stored_name).where(File.owner_id == user_id)))
        _retire_name(ctx, user.username, (last_active or ctx.now()) + reserved_for(ctx))
        ctx.db.execute(delete(User).where(User.id == user_id))  # foreign keys cascade to every owned row
    for name in blob_names:
        ctx.rt.blobs.delete(name)
    ctx.publish(user_id)
    ctx.erase_deleted()
    return True


def _retire_name(ctx: Context, username: str, until: datetime) -> None:
    tag = ctx.rt.tags.tag(username)
    reserved = ctx.db.get(RetiredName, tag)
    if reserved is None:
        ctx.db.add(RetiredName(tag=tag, until=until))
    elif reserved.until < until:
        reserved.until = until


def release_names(ctx: Context) -> int:
    """Forget reservations that have run out; returns how many."""
    with ctx.write():
        released = ctx.db.execute(delete(RetiredName).where(RetiredName.until <= ctx.now()))
    return cast(CursorResult, released).rowcount


def session_user(ctx: Context, user_id: int):
    """(id, username, session_version, last_login) of a live account, or None."""
    return ctx.db.execute(_SESSION_USER, {"uid": user_id}).first()


# Run on every signed-in request and every stream wake-up: built once, on the table.
_U = cast(Table, User.__table__).c
_SESSION_USER = select(_U.id, _U.username, _U.session_version, _U.last_login).where(_U.id == bindparam("uid"))
