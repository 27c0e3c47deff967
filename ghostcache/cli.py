"""The `ghostcache` command: serve, migrate, purge, decrypt."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .settings import SettingsError, load_settings


def _app():
    from . import create_app

    try:
        return create_app(load_settings())
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """GhostCache: private messenger with expiring encrypted file drops."""


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""
    from .database import upgrade

    upgrade(_app())
    click.echo("database is up to date")


@main.command()
def serve() -> None:
    """Apply migrations, then run the production server (gunicorn)."""
    from .database import upgrade
    from .server import run

    settings = load_settings()
    upgrade(_app())
    run(settings)


@main.command()
def purge() -> None:
    """Remove expired files, inactive accounts and abandoned blobs now."""
    from .extensions import db
    from .services import maintenance
    from .services.context import Context

    app = _app()
    with app.app_context():
        report = maintenance.purge(Context(db=db.session, rt=app.extensions["ghostcache"]))
    click.echo(
        f"removed {report.expired_files} expired files, {report.inactive_accounts} inactive "
        f"accounts, {report.orphan_blobs} abandoned blobs"
    )


@main.command()
@click.option("--key", "key", help="The file's key (AGE-SECRET-KEY-1...), or - to read it from stdin.")
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file holding the key (keeps it out of your shell history).")
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
