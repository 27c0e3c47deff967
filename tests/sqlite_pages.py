"""SQLite rows that spill onto overflow pages, joined back, for the forensic attack.

A row too large for its page (a connection with its RSA keys) keeps a local part in
the b-tree leaf and continues on a chain of overflow pages: a token may be cut at a
page boundary. These rows are joined whole again, from every image of every page
(the database file and each WAL frame, old versions included).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

SQLITE_MAGIC = b"SQLite format 3\x00"
WAL_MAGICS = (0x377F0682, 0x377F0683)
TABLE_LEAF = 0x0D
MAX_CHAIN = 64  # overflow pages followed for one row
MAX_VARIANTS = 16  # combinations of page versions kept for one row


@dataclass(frozen=True)
class Page:
    """One image of a database page: where it lies (file+offset) and its bytes."""

    where: str
    data: bytes


def spilled_records(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """Every table row, in any image of any leaf page, that spills onto overflow pages,
    joined whole (local part + chain) for each combination of the pages' versions."""
    found = {}
    for pages, usable in _databases(files).values():
        for number, images in pages.items():
            for page in images:
                for cell, local, first, rest in _spilling_cells(page.data, number, usable):
                    for n, tail in enumerate(_chains(first, rest, pages, usable)):
                        found[f"row {page.where}/0x{cell:x} joined with its overflow pages #{n}"] = (
                            local + tail
                        )
    return found


def _databases(files: Mapping[str, bytes]) -> dict[str, tuple[dict[int, list[Page]], int]]:
    """Each SQLite database among files (by its main file's name): page number -> every
    image of that page in the file and in its WAL; and the usable page size."""
    found = {}
    names = {n for n, d in files.items() if _db_page_size(d)}
    names |= {n[:-4] for n, d in files.items() if n.endswith("-wal") and _wal_page_size(d)}
    for name in names:
        main, wal = files.get(name, b""), files.get(name + "-wal", b"")
        size = _db_page_size(main) or _wal_page_size(wal)
        pages: dict[int, list[Page]] = {}
        for number, page in [*_db_pages(name, main), *_wal_pages(name + "-wal", wal, size)]:
            pages.setdefault(number, []).append(page)
        found[name] = (pages, size - (main[20] if _db_page_size(main) else 0))  # minus reserved bytes
    return found


def _db_pages(name: str, data: bytes) -> Iterator[tuple[int, Page]]:
    size = _db_page_size(data)
    for offset in range(0, len(data) - size + 1, size) if size else ():
        yield offset // size + 1, Page(f"{name}+0x{offset:x}", data[offset : offset + size])


def _wal_pages(name: str, data: bytes, size: int) -> Iterator[tuple[int, Page]]:
    """A 32-byte header, then frames: a 24-byte header (the page number first) and the page."""
    if not size or _wal_page_size(data) != size:
        return
    for at in range(32, len(data) - 24 - size + 1, 24 + size):
        yield (
            int.from_bytes(data[at : at + 4], "big"),
            Page(f"{name}+0x{at + 24:x}", data[at + 24 : at + 24 + size]),
        )


def _db_page_size(data: bytes) -> int:
    if not data.startswith(SQLITE_MAGIC) or len(data) < 100:
        return 0
    size = int.from_bytes(data[16:18], "big")
    return 65536 if size == 1 else size


def _wal_page_size(data: bytes) -> int:
    if len(data) < 32 or int.from_bytes(data[:4], "big") not in WAL_MAGICS:
        return 0
    return int.from_bytes(data[8:12], "big")


def _spilling_cells(data: bytes, number: int, usable: int) -> Iterator[tuple[int, bytes, int, int]]:
    """(cell offset, local part, first overflow page, bytes still to come) of each cell of
    a table leaf page whose payload spills (SQLite file format, "Cell Payload Overflow")."""
    head = 100 if number == 1 else 0
    if len(data) < head + 8 or data[head] != TABLE_LEAF:
        return
    most, least = usable - 35, (usable - 12) * 32 // 255 - 23
    for i in range(int.from_bytes(data[head + 3 : head + 5], "big")):
        cell = int.from_bytes(data[head + 8 + 2 * i : head + 10 + 2 * i], "big")
        size, at = _varint(data, cell)
        _rowid, at = _varint(data, at)
        if size <= most:
            continue
        local = least + (size - least) % (usable - 4)
        local = local if local <= most else least
        if at + local + 4 <= len(data):
            yield (
                cell,
                data[at : at + local],
                int.from_bytes(data[at + local : at + local + 4], "big"),
                size - local,
            )


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's big-endian varint at `at`: (value, offset after it)."""
    value = 0
    for i in range(9):
        if at + i >= len(data):
            break
        byte = data[at + i]
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return value, at + 9


def _chains(first: int, rest: int, pages: Mapping[int, list[Page]], usable: int) -> list[bytes]:
    """The `rest` bytes of a row on its overflow chain from page `first`, once per
    combination of the pages' versions (bounded)."""
    partial, done = [(b"", first)], []
    for _ in range(MAX_CHAIN):
        step = []
        for got, number in partial:
            for image in {page.data: None for page in pages.get(number, [])}:
                whole = got + image[4:usable][: rest - len(got)]
                if len(whole) >= rest:
                    done.append(whole)
                else:
                    step.append((whole, int.from_bytes(image[:4], "big")))
        partial = step[:MAX_VARIANTS]
        if not partial:
            break
    return done[:MAX_VARIANTS]
