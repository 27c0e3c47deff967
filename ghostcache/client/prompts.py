"""Secrets typed by the user: from the terminal without echo (getpass), or one line from
standard input for scripts. Never from argv, never printed."""

from __future__ import annotations

import getpass
import sys

from .errors import ClientError


def secret(prompt: str, from_stdin: bool) -> str:
    """One secret line, without its line ending; ClientError if empty."""
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        try:
            value = getpass.getpass(prompt)
        except (EOFError, KeyboardInterrupt):
            raise ClientError("Cancelled.") from None
    if not value:
        raise ClientError(f"Nothing was entered for: {prompt.strip().rstrip(':')}.")
    return value


def confirm(prompt: str, expected: str = "yes") -> bool:
    """True if the user types `expected` at the prompt (terminal or stdin)."""
    print(prompt, end="", flush=True)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        return False
    return answer.strip().lower() == expected
