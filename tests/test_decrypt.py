"""A downloaded blob opens offline with its key: pyrage, `ghostcache decrypt`, and `age`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pyrage
import pytest
from click.testing import CliRunner
from pyrage import x25519

from ghostcache.cli import main

MB = 1024 * 1024


@pytest.fixture
def drop(make_user, tmp_path):
    """Upload `content`, download it as the owner; returns (blob path, key)."""

    def make(content: bytes, filename: str = "plans.txt") -> tuple[Path, str]:
        alice = make_user()
        body = alice.upload(content, filename).get_json()
        response = alice.get(f"/file/{body['id']}")
        assert response.status_code == 200
        folder = tmp_path / "downloads"
        folder.mkdir(exist_ok=True)
        blob = folder / f"{filename}.age"
        blob.write_bytes(response.data)
        return blob, body["key"]

    return make


@pytest.fixture
def outdir(tmp_path) -> Path:
    """Where decrypted copies (and any partial file) would land."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, ["decrypt", *args], input=stdin)


def leftovers(folder: Path) -> list[str]:
    """Every file in folder, hidden partial files included."""
    return sorted(p.name for p in folder.iterdir())


def test_blob_is_an_age_v1_file_that_pyrage_decrypts_with_the_key(drop):
    content = b"the original bytes \x00\xff\r\n" * 100
    blob, key = drop(content)
    data = blob.read_bytes()
    assert data.startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert content not in data
    assert pyrage.decrypt(data, [x25519.Identity.from_str(key)]) == content


def test_cli_decrypts_with_key_option(drop, outdir):
    content = os.urandom(10_000)
    blob, key = drop(content)
    result = run("--key", key, str(blob), str(outdir / "out.bin"))
    assert result.exit_code == 0, result.output
    assert (outdir / "out.bin").read_bytes() == content
    assert "decrypted into" in result.output
    assert leftovers(outdir) == ["out.bin"]


def test_cli_decrypts_with_key_file(drop, tmp_path, outdir):
    content = os.urandom(10_000)
    blob, key = drop(content)
    key_file = tmp_path / "key.txt"
    key_file.write_text(key + "\n")
    result = run("--key-file", str(key_file), str(blob), str(outdir / "out.bin"))
    assert result.exit_code == 0, result.output
    assert (outdir / "out.bin").read_bytes() == content


def test_cli_decrypts_with_key_from_stdin(drop, outdir):
    content = os.urandom(10_000)
    blob, key = drop(content)
    result = run("--key", "-", str(blob), str(outdir / "out.bin"), stdin=key + "\n")
    assert result.exit_code == 0, result.output
    assert (outdir / "out.bin").read_bytes() == content
    assert key not in result.output


@pytest.mark.parametrize(
    "key, message",
    [
        (str(x25519.Identity.generate()), "could not be decrypted with that key"),
        ("AGE-SECRET-KEY-1NOTAREALKEY", "not an age secret key"),
        ("hunter2", "not an age secret key"),
    ],
)
def test_cli_wrong_key_fails_clearly_and_writes_nothing(drop, outdir, key, message):
    blob, _ = drop(b"secret content")
    out = outdir / "out.txt"
    result = run("--key", key, str(blob), str(out))
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert leftovers(outdir) == []


def test_cli_wrong_key_keeps_an_existing_output_file_untouched(drop, outdir):
    blob, _ = drop(b"secret content")
    out = outdir / "out.txt"
    out.write_bytes(b"precious")
    result = run("--key", str(x25519.Identity.generate()), str(blob), str(out))
    assert result.exit_code != 0
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "not age at all"])
def test_cli_damaged_blob_fails_clearly_and_writes_nothing(drop, outdir, damage):
    blob, key = drop(os.urandom(200_000))
    data = bytearray(blob.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped byte":
        data[len(data) // 2] ^= 0x01
    else:
        data = bytearray(b"just some text, not an age file\n")
    blob.write_bytes(bytes(data))
    result = run("--key", key, str(blob), str(outdir / "out.bin"))
    assert result.exit_code != 0
    assert result.output.startswith("Error:"), result.output
    assert "Traceback" not in result.output
    assert leftovers(outdir) == []


def test_cli_without_a_key_is_a_usage_error(drop, outdir):
    blob, _ = drop(b"x")
    result = run(str(blob), str(outdir / "out"))
    assert result.exit_code == 2
    assert "--key" in result.output


def test_a_5_mb_random_file_round_trips_through_pyrage_and_the_cli(drop, outdir):
    content = os.urandom(5 * MB)
    blob, key = drop(content, "big.bin")
    assert blob.stat().st_size > len(content)  # age adds a header and per-chunk tags
    assert pyrage.decrypt(blob.read_bytes(), [x25519.Identity.from_str(key)]) == content
    result = run("--key", key, str(blob), str(outdir / "big.bin"))
    assert result.exit_code == 0, result.output
    assert (outdir / "big.bin").read_bytes() == content


AGE = shutil.which("age")


@pytest.mark.skipif(AGE is None, reason="the standard `age` binary is not installed (PATH has no `age`)")
@pytest.mark.parametrize("size", [0, 1, 64 * 1024, 5 * MB + 3])
def test_the_standard_age_binary_decrypts_the_blob(drop, tmp_path, outdir, size):
    content = os.urandom(size)
    blob, key = drop(content, "any.bin")
    key_file = tmp_path / "key.txt"
    key_file.write_text(key + "\n")
    out = outdir / "any.bin"
    done = subprocess.run(
        [AGE, "-d", "-i", str(key_file), "-o", str(out), str(blob)], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    # age opens -o lazily: an empty plaintext creates no file at all.
    assert (out.read_bytes() if out.exists() else b"") == content
