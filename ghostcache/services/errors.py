"""Domain errors: a machine code, one human sentence, and the HTTP status they map to."""

from __future__ import annotations


class DomainError(Exception):
    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Invalid(DomainError):
    status = 400


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Gone(DomainError):
    status = 410


class TooLarge(DomainError):
    status = 413


def not_found(what: str = "That") -> NotFound:
    return NotFound("not_found", f"{what} does not exist or is not yours to see.")


def not_connected() -> Forbidden:
    """403 not_connected: no accepted connection with that user (or no such user)."""
    return Forbidden("not_connected", "You can only chat with accepted contacts.")
