"""register, login, logout, whoami."""

from __future__ import annotations

from ..context import Context
from ..errors import ApiError
from ..http import Api
from ..profile import check_username
from ..prompts import secret


def run_register(ctx: Context) -> int:
    """POST /register: the password, then the destruction password (never on argv)."""
    name = check_username(ctx.args.username)
    password = secret("Password: ", ctx.args.password_stdin)
    d_pass = secret(
        "Destruction password (logging in with it deletes the account): ", ctx.args.password_stdin
    )
    user = Api(ctx.server).post("/register", {"username": name, "password": password, "d_pass": d_pass})
    ctx.say(
        f"registered {user['username']} (id {user['id']}); now: ghostcache-client login {user['username']}"
    )
    return 0


def run_login(ctx: Context) -> int:
    """POST /login; the session is kept in the profile and this account becomes current."""
    name = check_username(ctx.args.username)
    password = secret(f"Password for {name}: ", ctx.args.password_stdin)
    api = Api(ctx.server)
    body = api.post("/login", {"username": name, "password": password})
    account = ctx.profile.account(body["username"])
    account.save_session(api.cookies(), int(body["id"]), str(body["username"]))
    ctx.profile.set_current(body["username"])
    ctx.say(f"signed in as {body['username']} (id {body['id']}) on {ctx.server}")
    if account.identity_der() is None:
        ctx.note("This device has no end-to-end encryption key yet: `e2ee setup` or `e2ee restore`.")
    return 0


def run_logout(ctx: Context) -> int:
    """POST /logout (it ends every session of the account, on every device)."""
    account = ctx.account
    try:
        ctx.api.post("/logout")
    except ApiError as exc:
        if exc.code != "login_required":  # already ended on the server: forget it here too
            raise
    account.forget_session()
    ctx.profile.clear_current()
    ctx.say(f"signed out {account.username} (every session of the account has ended)")
    return 0


def run_whoami(ctx: Context) -> int:
    """GET /account: who the saved session belongs to, if it still holds."""
    user = ctx.api.get("/account")["user"]
    ctx.say(f"{user['username']} (id {user['id']}) on {ctx.server}")
    return 0
