"""File drops: upload as a streamed multipart body (never the whole file in memory) and
download with the age decryption done as the blob arrives, into a temporary file that
becomes the output only once the whole file has decrypted and authenticated."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyrage
from pyrage import x25519

from .errors import ClientError
from .http import Api
from .profile import FILE_MODE

CHUNK = 64 * 1024


class MultipartStream:
    """A multipart/form-data body read in chunks: the fields, then the file part. It has
    a length, so requests sends Content-Length and the server can refuse it early."""

    def __init__(self, fields: dict[str, str], name: str, source: BinaryIO, size: int) -> None:
        self.boundary = f"ghostcache-{uuid.uuid4().hex}"
        head = b"".join(self._field(k, v) for k, v in fields.items())
        quoted = name.replace("\\", "_").replace('"', "_").replace("\r", "_").replace("\n", "_")
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{quoted}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        self._parts: list[bytes | BinaryIO] = [head, source, f"\r\n--{self.boundary}--\r\n".encode()]
        self._length = len(head) + size + len(self._parts[2])  # type: ignore[arg-type]
        self._pending = b""

    def _field(self, name: str, value: str) -> bytes:
        return (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def read(self, size: int = -1) -> bytes:
        size = CHUNK if size is None or size < 0 else size
        while len(self._pending) < size and self._parts:
            part = self._parts[0]
            if isinstance(part, bytes):
                self._pending += part
                self._parts.pop(0)
            else:
                data = part.read(size)
                if data:
                    self._pending += data
                else:
                    self._parts.pop(0)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


def upload(api: Api, path: Path, expiry_days: str | None) -> dict[str, Any]:
    """POST /file/upload; the answer holds the file and its key (the only copy)."""
    try:
        source = open(path, "rb")
    except OSError as exc:
        raise ClientError(f"Cannot read {path}: {exc.strerror}.") from None
    with source:
        fields = {} if expiry_days is None else {"expiry_days": expiry_days}
        body = MultipartStream(fields, path.name, source, os.fstat(source.fileno()).st_size)
        response = api.request(
            "POST", "/file/upload", data=body, headers={"Content-Type": body.content_type}, timeout=(10, 600)
        )
    return dict(response.json())


class _BodyReader:
    """The HTTP body as pyrage reads it: `read(n)` always with a positive n, so a huge
    blob is never asked for at once."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def read(self, size: int = -1) -> bytes:
        return bytes(self.raw.read(size if size and size > 0 else CHUNK))


def download(api: Api, file_id: int, key: str, out: Path) -> int:
    """GET /file/<id> and decrypt it into out as it arrives; returns the plaintext size.
    On any failure out is left untouched and no partial file remains."""
    try:
        identity = x25519.Identity.from_str(key.strip())
    except Exception:  # pyrage raises its own types; the key itself is never shown
        raise ClientError("That is not an age secret key (AGE-SECRET-KEY-1...).") from None
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    response = api.request("GET", f"/file/{file_id}", stream=True)
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as target:
            response.raw.decode_content = True
            pyrage.decrypt_io(_BodyReader(response.raw), target, [identity])
            target.flush()
            os.fsync(target.fileno())
        size = partial.stat().st_size
        os.replace(partial, out)
        return size
    except pyrage.DecryptError:
        raise ClientError("The file could not be decrypted with that key.") from None
    except OSError as exc:
        # pyrage reports a payload that fails authentication as a bare OSError("decryption
        # error"); a real I/O error carries an errno.
        if exc.errno is None and "decrypt" in str(exc):
            raise ClientError(
                "The download is damaged or incomplete: it failed its integrity check."
            ) from None
        raise ClientError(f"Cannot write {out}: {exc.strerror or exc}.") from None
    except Exception as exc:  # a connection cut mid-body (urllib3 errors), and the like
        raise ClientError(f"The download failed ({type(exc).__name__}); nothing was written.") from None
    finally:
        response.close()
        partial.unlink(missing_ok=True)
