"""A streaming multipart/form-data reader: the file part is handed on as it
arrives, so its plaintext never sits whole in memory or in a temporary file
(Werkzeug's own form parser would spool large files to disk)."""

from __future__ import annotations

import re
from typing import IO

from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)

from ..services.errors import Invalid

CHUNK = 256 * 1024
MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 16


def _malformed() -> Invalid:
    return Invalid("invalid_upload", "The upload was cut off or is not valid multipart form data.")


class _Decoder(MultipartDecoder):
    r"""Werkzeug's decoder, but a closing delimiter that has only partly arrived is
    held back. Werkzeug (3.1.x, pallets/werkzeug#3285) sizes its look-behind window
    with the opening delimiter, two bytes shorter than the closing one: when a read
    ends inside "\r\n--BOUNDARY--" its CR is handed on as data, and the last part
    (the file, or a field such as csrf_token) gains a stray trailing "\r"."""

    def __init__(self, boundary: bytes, *args, **kwargs) -> None:
        super().__init__(boundary, *args, **kwargs)
        self._partial_close = re.compile(
            rb"(?:\r\n|\n|\r)--" + re.escape(boundary) + rb"-{0,2}[^\S\n\r]*\r?\Z"
        )

    def _last_partial_boundary_index(self, data: bytes | bytearray) -> int:
        index = super()._last_partial_boundary_index(data)
        start = max(0, len(data) - len(self.boundary) - 72)  # delimiter + "--" + some blanks
        tail = self._partial_close.search(data, start)
        return min(index, tail.start()) if tail else index


def _decoding(step, *args):
    """One decoder step; its own size limits are a malformed form, not a too-large file."""
    try:
        return step(*args)
    except RequestEntityTooLarge:  # too many parts, or a header block that never ends
        raise Invalid("invalid_upload", "The form has too many fields or an oversized header.") from None


class MultipartStream:
    """Reads small fields into `fields` and exposes one file part as a reader."""

    def __init__(self, stream: IO[bytes], boundary: str) -> None:
        self._stream = stream
        # The decoder's buffer can hold a held-back tail (a possible partial boundary)
        # plus one whole read: sized for that, or a 64 KiB read after a tail is a 413.
        # Fields are capped at MAX_FIELD_BYTES by _read_field.
        self._decoder = _Decoder(boundary.encode("latin-1"), MAX_FIELD_BYTES + CHUNK, max_parts=MAX_PARTS)
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self._buffer = b""
        self._file_done = False

    def _event(self):
        try:
            while True:
                event = _decoding(self._decoder.next_event)
                if not isinstance(event, NeedData):
                    return event
                chunk = self._stream.read(CHUNK)
                _decoding(self._decoder.receive_data, chunk or None)
        except (ValueError, ClientDisconnected):  # malformed, or the body ended early
            raise _malformed() from None

    def _read_field(self, name: str) -> None:
        value = b""
        while True:
            event = self._event()
            value += event.data
            if len(value) > MAX_FIELD_BYTES:
                raise Invalid("invalid_upload", "A form field is too long.")
            if not event.more_data:
                break
        self.fields[name] = value.decode("utf-8", errors="replace")

    def _skip_part(self) -> None:
        while self._event().more_data:
            pass

    def find_file(self, field_name: str = "file") -> bool:
        """Read fields until the named file part starts; False if the form has none."""
        while True:
            event = self._event()
            if isinstance(event, Field):
                self._read_field(event.name)
            elif isinstance(event, File) and event.name == field_name and self.filename is None:
                self.filename = event.filename
                return True
            elif isinstance(event, File):
                self._skip_part()
            elif isinstance(event, Epilogue):
                return False

    def read(self, size: int = -1) -> bytes:
        """The file part's bytes, up to `size` at a time; b'' at its end."""
        size = CHUNK if size is None or size < 0 else size
        while not self._buffer and not self._file_done:
            event = self._event()
            if not isinstance(event, Data):
                raise _malformed()
            self._buffer = event.data
            self._file_done = not event.more_data
        chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return chunk

    def finish(self) -> dict[str, str]:
        """Read the fields after the file part; returns every field seen."""
        while not self._file_done:
            self.read(CHUNK)
        while True:
            event = self._event()
            if isinstance(event, Field):
                self._read_field(event.name)
            elif isinstance(event, File):
                self._skip_part()
            elif isinstance(event, Epilogue):
                return self.fields
