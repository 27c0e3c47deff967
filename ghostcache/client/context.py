"""What every command needs: the parsed options, the profile, the signed-in account and
an Api carrying its session."""

from __future__ import annotations

import argparse
import sys
from functools import cached_property

from .e2ee_session import E2EESession
from .errors import ClientError
from .http import Api
from .profile import Account, Profile


class Context:
    """One run of the client."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.server: str = args.server.rstrip("/")
        self.profile = Profile(args.profile, self.server)

    def say(self, text: str) -> None:
        print(text, flush=True)

    def note(self, text: str) -> None:
        """Notices and warnings: stderr, so that output stays parseable."""
        print(text, file=sys.stderr, flush=True)

    def username(self) -> str | None:
        return getattr(self.args, "user", None) or self.profile.current()

    @cached_property
    def account(self) -> Account:
        """The signed-in account; ClientError when nobody is."""
        name = self.username()
        if name is None:
            raise ClientError(f"Not signed in to {self.server}: run `ghostcache-client login USER`.")
        account = self.profile.account(name)
        if not account.session():
            raise ClientError(
                f"{name} is not signed in to {self.server}: run `ghostcache-client login {name}`."
            )
        return account

    def require_login(self) -> Account:
        """The signed-in account (a ClientError before any request when nobody is)."""
        return self.account

    @cached_property
    def api(self) -> Api:
        """The server, with the account's session cookies if someone is signed in."""
        name = self.username()
        if name is None:
            return Api(self.server)
        return Api(self.server, self.profile.account(name).session().get("cookies"))

    @property
    def user_id(self) -> int:
        return int(self.account.session()["user_id"])

    @property
    def me(self) -> str:
        return str(self.account.session()["username"])

    @cached_property
    def e2ee(self) -> E2EESession:
        return E2EESession(self.api, self.account, self.user_id, self.note)

    def save_cookies(self) -> None:
        """Keep cookies the server refreshed during this run."""
        name = self.username()
        if name is None:
            return
        account = self.profile.account(name)
        session = account.session()
        cookies = self.api.cookies()
        if session and cookies and cookies != session.get("cookies"):
            account.save_session(cookies, session["user_id"], session["username"])
