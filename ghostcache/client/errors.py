"""The client's errors: each carries a message fit to show the user and an exit code.

Messages never hold a password, recovery key, private key, file key or cookie: they
come from the server's `message` field or from fixed text here."""

from __future__ import annotations

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_KEY_CHANGED = 3


class ClientError(Exception):
    """Something the user must hear about; `main` prints the message, not a traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ClientError):
    """The server answered with an error (docs/API.md: {"error", "message"})."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class KeyChangedError(ClientError):
    """A contact's identity key is not the pinned one: nothing is sent until `trust`."""

    exit_code = EXIT_KEY_CHANGED

    def __init__(self, username: str, pinned: str, current: str) -> None:
        super().__init__(
            f"{username}'s identity key changed (pinned {pinned}, the server now gives {current}). "
            f"Nothing was sent. Compare safety numbers with {username} in person "
            f"(ghostcache-client safety {username}), then run: ghostcache-client trust {username}"
        )
        self.username = username
