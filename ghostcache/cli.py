"""The `ghostcache` command: serve, migrate, purge, invite, decrypt."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .filemodes import PRIVATE_UMASK
from .settings import SettingsError, load_settings


def _settings():
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _app():
    from . import create_app

    try:
        return create_app(_settings())
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """GhostCache: private messenger with expiring encrypted file drops."""
    _use_private_umask()


def _use_private_umask() -> None:
    """Whatever this command creates (and the server it starts: gunicorn's workers
    inherit the umask) is its owner's alone. The old umask returns when the command
    ends, for callers in the same process (tests through CliRunner)."""
    old = os.umask(PRIVATE_UMASK)
    click.get_current_context().call_on_close(lambda: os.umask(old))


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""
    from .database import upgrade

    upgrade(_app())
    click.echo("database is up to date")


@main.command()
def serve() -> None:
    """Apply migrations, then run the production server (gunicorn, gevent workers)."""
    import subprocess

    from .server import run

    settings = _settings()
    # Migrate in a separate interpreter: the server's workers patch the standard
    # library for gevent after they fork, and a master that had imported the app
    # (Flask, SQLAlchemy, their locks) would hand them unpatched copies.
    migrate = [sys.executable, "-c", "from ghostcache.cli import main; main()", "migrate"]
    code = subprocess.run(migrate).returncode
    if code:
        sys.exit(code)  # the migrate command has printed why; no traceback on top of it
    run(settings)


@main.command()
def purge() -> None:
    """Remove expired files, inactive accounts and abandoned blobs now."""
    from .app import service_context
    from .services import maintenance

    with service_context(_app()) as ctx:
        report = maintenance.purge(ctx)
    click.echo(
        f"removed {report.expired_files} expired files, {report.inactive_accounts} inactive "
        f"accounts, {report.orphan_blobs} abandoned blobs"
    )


@main.command()
@click.option(
    "--days",
    type=click.IntRange(1, 30),
    default=7,
    show_default=True,
    help="How long the invite stays valid.",
)
def invite(days: int) -> None:
    """Make a single-use invite (for GHOSTCACHE_INVITE_ONLY) and print its link once."""
    from .app import service_context
    from .services import invites

    with service_context(_app()) as ctx:
        made = invites.create(ctx, None, days)
    click.echo(f"/register?invite={made.token}")
    click.echo(
        f"Put your site's address in front of it and send it to one person: it works once, "
        f"until {made.expires_at:%Y-%m-%d %H:%M} UTC. It is not stored and cannot be shown again.",
        err=True,
    )


@main.command()
@click.option("--key", "key", help="The file's key (AGE-SECRET-KEY-1...), or - to read it from stdin.")
@click.option(
    "--key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding the key (keeps it out of your shell history).",
)
@click.argument("blob", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def decrypt(key: str | None, key_file: Path | None, blob: Path, out: Path) -> None:
    """Decrypt a downloaded BLOB (.age) into OUT with its key; works offline."""
    from .crypto import CryptoError, decrypt_stream
    from .secrets import Secret

    secret = _read_key(key, key_file)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with open(blob, "rb") as source, open(partial, "wb") as target:
            decrypt_stream(source, target, Secret(secret))
        partial.replace(out)
    except CryptoError as exc:
        partial.unlink(missing_ok=True)
        raise click.ClickException(str(exc)) from None
    except BaseException:  # never leave half-decrypted plaintext behind
        partial.unlink(missing_ok=True)
        raise
    click.echo(f"decrypted into {out}")


def _read_key(key: str | None, key_file: Path | None) -> str:
    if key_file is not None:
        return key_file.read_text().strip()
    if key == "-":
        return sys.stdin.readline().strip()
    if key:
        return key.strip()
    raise click.UsageError("Give the key with --key KEY, --key -, or --key-file FILE.")


@main.command("rotate-master-key")
@click.option(
    "--retire-old",
    is_flag=True,
    help="After a rotation: check every user key opens with the new key, then remove the old key(s).",
)
def rotate_master_key(retire_old: bool) -> None:
    """Re-wrap every user key under a new master key (resumable if interrupted)."""
    from .app import service_context

    with service_context(_app()) as ctx:
        if retire_old:
            _retire_old_master_keys(ctx)
        else:
            _rotate(ctx)


ROTATION_STEPS = (
    "The master key is given by {where}, which holds one key. With several nodes: make a "
    "key with `ghostcache new-master-key`; on every node put it AFTER the current key (the "
    "first key wraps, every key opens); once every node has it, swap the two so the new "
    "one is first, on every node; then run this again. Key files are re-read within "
    "seconds; GHOSTCACHE_MASTER_KEY needs a restart. See docs/OPERATIONS.md."
)


def _operator_keys(settings) -> str | None:
    """Which setting gives the master key when it is the operator's to change on every
    node (the environment or a named file), else None (the data folder's own file)."""
    if settings.master_key is not None:
        return "GHOSTCACHE_MASTER_KEY"
    if settings.master_key_file is not None:
        return "GHOSTCACHE_MASTER_KEY_FILE"
    return None


def _rotate(ctx) -> None:
    from .crypto import new_fernet_key
    from .keyfiles import master_key_path, read_master_keys, write_master_keys
    from .services.keys import rewrap_user_keys

    settings = ctx.rt.settings
    where = _operator_keys(settings)
    if where is not None and ctx.rt.keyring.size == 1:
        raise click.ClickException(ROTATION_STEPS.format(where=where))
    if where is None:
        path = master_key_path(settings)
        keys = read_master_keys(path)
        if len(keys) == 1:  # a rotation already begun keeps its new key: resume it
            write_master_keys(path, [new_fernet_key(), *keys])
            click.echo("added a new master key in front of the old one")
    count = rewrap_user_keys(ctx, after_batch=lambda n: click.echo(f"re-wrapped {n} user keys"))
    click.echo(
        f"all {count} user keys are wrapped by the new master key; the old one still "
        "opens them until you run `ghostcache rotate-master-key --retire-old`"
    )


def _retire_old_master_keys(ctx) -> None:
    from .keyfiles import master_key_path, read_master_keys, write_master_keys
    from .services.keys import keys_not_under_primary

    behind = keys_not_under_primary(ctx)
    if behind:
        raise click.ClickException(
            f"{behind} user keys still need an old master key. Run "
            "`ghostcache rotate-master-key` again first; nothing was retired."
        )
    settings = ctx.rt.settings
    where = _operator_keys(settings)
    if where is not None:
        click.echo(
            f"every user key opens with the first key of {where}: remove the others from it on every node"
        )
        return
    path = master_key_path(settings)
    keys = read_master_keys(path)
    write_master_keys(path, keys[:1])
    click.echo(f"retired {len(keys) - 1} old master key(s)")


@main.command("new-master-key")
def new_master_key() -> None:
    """Print a fresh master key (for GHOSTCACHE_MASTER_KEY)."""
    from .crypto import new_fernet_key

    click.echo(new_fernet_key().reveal().decode())


@main.command("new-secret-key")
def new_secret_key() -> None:
    """Print a fresh session-signing key (for GHOSTCACHE_SECRET_KEY or its file)."""
    import secrets

    click.echo(secrets.token_hex(32))
