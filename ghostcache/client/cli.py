"""`ghostcache-client`: argparse subcommands and main(). Global options may come before
or after the subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .commands import account, chat, contacts, e2ee, files
from .context import Context
from .errors import EXIT_ERROR, ClientError
from .profile import default_home

DEFAULT_SERVER = "http://127.0.0.1:5000"
Runner = Callable[[Context], int]


def _globals(suppress: bool) -> argparse.ArgumentParser:
    """The global options; on subcommands their defaults are suppressed, so that a value
    given before the subcommand is not overwritten by the subcommand's default."""
    parser = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--server",
        default=default if suppress else os.environ.get("GHOSTCACHE_SERVER", DEFAULT_SERVER),
        help="server URL (default: $GHOSTCACHE_SERVER or %(default)s)" if not suppress else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=default if suppress else default_home(),
        help="state folder (default: $GHOSTCACHE_CLIENT_HOME or ~/.config/ghostcache-client)"
        if not suppress
        else argparse.SUPPRESS,
    )
    parser.add_argument(
        "--user",
        default=default,
        help="act as this signed-in account (default: the last `login`)"
        if not suppress
        else argparse.SUPPRESS,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ghostcache-client",
        description="GhostCache command-line client, with end-to-end encrypted chats (docs/CLIENT.md).",
        parents=[_globals(False)],
    )
    command = _adder(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))

    def password_stdin(p: argparse.ArgumentParser) -> None:
        p.add_argument("--password-stdin", action="store_true", help="read the password as one line of stdin")

    p = command("register", account.run_register, "create an account (password, then destruction password)")
    p.add_argument("username")
    password_stdin(p)
    p = command("login", account.run_login, "sign in; the session is kept in the profile")
    p.add_argument("username")
    password_stdin(p)
    command("logout", account.run_logout, "sign out (ends every session of the account)")
    command("whoami", account.run_whoami, "show the signed-in account")

    command("contacts", contacts.run_contacts, "accepted contacts and pending requests")
    command("connect", contacts.run_connect, "ask someone to connect").add_argument("username")
    command("accept", contacts.run_accept, "accept a request (by username or request id)").add_argument("who")
    command("deny", contacts.run_deny, "deny a request (and block its sender)").add_argument("who")

    p = command("send", chat.run_send, "send a message (encrypted when the conversation is e2ee)")
    p.add_argument("username")
    p.add_argument("text")
    p = command("history", chat.run_history, "show a conversation, decrypting e2ee messages")
    p.add_argument("username")
    p.add_argument("--limit", type=int, default=50, help="how many messages (default 50, at most 200)")
    p.add_argument("--before", type=int, help="only messages older than this message id")
    p = command("stream", chat.run_stream, "follow new messages and events as they arrive")
    p.add_argument("--count", type=int, help="stop after this many messages")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    p.add_argument("--since", type=int, help="also show messages after this message id (0: all)")

    p = command("upload", files.run_upload, "upload a file; prints its key once")
    p.add_argument("file")
    p.add_argument("--share", action="append", metavar="USER", help="share with this contact (repeatable)")
    p.add_argument("--expiry-days", help="days until it expires (default 365, the most)")
    p = command("download", files.run_download, "download a file and decrypt it")
    p.add_argument("file_id", type=int)
    p.add_argument("--key", help="the file key, or - to read it from stdin (default: prompt)")
    p.add_argument("-o", "--output", required=True, help="where to write the decrypted file")
    p.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    command("files", files.run_files, "list your files and files shared with you")
    command("check-js", files.run_check_js, "check the server's JavaScript against this release")

    _e2ee_commands(command, password_stdin)
    return parser


def _adder(sub: Any) -> Callable[[str, Runner, str], argparse.ArgumentParser]:
    """A function adding one subcommand that runs `run` and takes the global options too."""
    common = [_globals(True)]

    def add(name: str, run: Runner, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=common)
        p.set_defaults(run=run)
        return p

    return add


def _e2ee_commands(command: Callable[..., argparse.ArgumentParser], password_stdin: Callable) -> None:
    group = command(
        "e2ee", _usage_of("e2ee"), "end-to-end encryption: setup, restore, backup, enable, status"
    )
    action = _adder(group.add_subparsers(dest="e2ee_command", required=True, metavar="ACTION"))

    p = action("setup", e2ee.run_setup, "create and publish your identity key; prints the recovery key once")
    p.add_argument("--yes", action="store_true", help="do not ask to confirm that the recovery key is saved")
    password_stdin(p)
    p = action("restore", e2ee.run_restore, "restore your identity key on this device with the recovery key")
    p.add_argument("--recovery-stdin", action="store_true", help="read the recovery key as one line of stdin")
    p = action("backup", e2ee.run_backup, "store a new sealed backup with the current pins")
    p.add_argument("--recovery-stdin", action="store_true", help="read the recovery key as one line of stdin")
    password_stdin(p)
    action("status", e2ee.run_status, "this device's key, the published one, and the pins")
    action("enable", e2ee.run_enable, "turn a conversation end-to-end encrypted (no way back)").add_argument(
        "username"
    )
    p = command("safety", e2ee.run_safety, "show the safety number with a contact")
    p.add_argument("username")
    p.add_argument("--verify", action="store_true", help="record that you compared it and it matched")
    command("trust", e2ee.run_trust, "accept a contact's changed key (re-pin; clears verified)").add_argument(
        "username"
    )


def _usage_of(name: str) -> Runner:
    def run(ctx: Context) -> int:
        raise ClientError(f"Usage: ghostcache-client {name} ACTION (see --help).")

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors are printed as one line (never a traceback) with a
    nonzero exit code."""
    args = build_parser().parse_args(argv)
    ctx: Context | None = None
    try:
        ctx = Context(args)
        return int(args.run(ctx))
    except ClientError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # the profile folder, a file to upload or write
        print(f"error: {exc.strerror or type(exc).__name__}: {exc.filename or ''}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if ctx is not None:
            try:
                ctx.save_cookies()
            except (ClientError, OSError):
                pass
