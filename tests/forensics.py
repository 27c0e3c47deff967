"""The thief of the data folder, as a test helper: what can be read back from a copy.

Plays the attacker of docs/SECURITY.md ("a thief of the data folder"): it reads the raw
bytes of every file (database, its WAL, key files, blobs, logs), finds every candidate
Fernet token, opens what the master keys open, and keeps going with every key that
falls out (user keys, then chat keys) until nothing new opens. Tests then ask where a
needle (a message, a username, a hash, a filename) can still be read.

It knows nothing of GhostCache's schema: only the key hierarchy's shape (Fernet keys
inside Fernet tokens), the files' bytes and SQLite's page format (to join rows that spill
onto overflow pages), so a deleted row lingering in a WAL frame, a free page or a log
line is found as readily as a live one. Fast: well under a second for a few MB.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pyrage
from cryptography.fernet import Fernet, InvalidToken
from pyrage import x25519

from tests.sqlite_pages import spilled_records

MASTER_KEY_FILE = "master.key"
AGE_MAGIC = b"age-encryption.org/v1"
# A Fernet token: version byte 0x80 and a timestamp whose high bytes are zero, urlsafe
# base64. Rows sit side by side in a database page with no separator, so a match may run
# into the next column; token_candidates cuts it back to the lengths a token can have.
TOKEN_RUN = re.compile(rb"gAAAAA[A-Za-z0-9_\-]{20,}={0,2}")
TOKEN_START = b"gAAAAA"
# version (1) + timestamp (8) + IV (16) + HMAC (32); the ciphertext is 16k bytes, k >= 1.
TOKEN_OVERHEAD, BLOCK = 57, 16
MAX_LOCATIONS = 8  # per needle in a report: enough to act on, short enough to read


@dataclass(frozen=True)
class Key:
    """A Fernet key the attacker holds, and how it was obtained (for reports)."""

    value: bytes
    origin: str


@dataclass
class Opened:
    """A token the attacker opened: where it was first seen, with which key, what it held."""

    where: str
    key: Key
    plaintext: bytes
    token: bytes


@dataclass
class Attack:
    """The result of attacking one set of files: every key and plaintext recovered."""

    files: dict[str, bytes]
    records: dict[str, bytes] = field(default_factory=dict)  # spilled rows, joined (see below)
    keys: list[Key] = field(default_factory=list)
    opened: list[Opened] = field(default_factory=list)
    unopened: int = 0  # places where a token may start that no key opened

    def recoverable(self, needle: bytes, any_case: bool = False) -> list[str]:
        """Where needle can be read: raw in a file or a joined row, or in a decrypted token
        (at the first place seen, with how many copies the files hold). One readable line
        per place: file and offset, never the content."""
        pattern = re.compile(re.escape(needle), re.IGNORECASE if any_case else 0)
        found = []
        for name, data in self.files.items():
            offsets = [m.start() for m in pattern.finditer(data)]
            if offsets:
                found.append(f"raw in {name} at {_offsets(offsets)}")
        found += [f"raw in the {name}" for name, data in self.records.items() if pattern.search(data)]
        for item in self.opened:
            if pattern.search(item.plaintext):
                seen = sum(data.count(item.token) for data in self.files.values())
                found.append(
                    f"decrypted: token at {item.where} (seen {seen}x), opened with {item.key.origin}"
                )
        return found

    def summary(self) -> str:
        """One line: how much the attack read and opened (for failure messages)."""
        size = sum(len(data) for data in self.files.values())
        return (
            f"{len(self.files)} files, {size} bytes; {len(self.keys)} keys held, "
            f"{len(self.opened)} tokens opened, {self.unopened} candidates left closed"
        )


def snapshot(folder: Path, dest: Path, extra: Iterable[Path] = ()) -> Path:
    """Copy every regular file under folder to dest (as `cp -r` by a thief would, while the
    server runs: sockets are skipped, files vanishing meanwhile are ignored), plus the extra
    files (a server log) into dest/_extra. Returns dest."""
    for path in _regular_files(folder):
        _copy_if_present(path, dest / path.relative_to(folder))
    for path in extra:
        _copy_if_present(path, dest / "_extra" / path.name)
    return dest


def collect(folder: Path, extra: Iterable[Path] = ()) -> dict[str, bytes]:
    """Every regular file under folder (recursively) and the extra files, as bytes, by a
    name relative to folder (extra files by their own path)."""
    files = {str(p.relative_to(folder)): _read(p) for p in _regular_files(folder)}
    files.update({str(p): _read(p) for p in extra})
    return {name: data for name, data in files.items() if data is not None}


def attack(files: Mapping[str, bytes], master_key_file: str = MASTER_KEY_FILE) -> Attack:
    """Open every token that any key held or recovered opens: start with the master keys
    (one a line in master_key_file, if present); every plaintext that is a Fernet key
    joins the keys and is tried on every token still closed, until nothing new opens.
    Tokens are looked for in the files and in the database rows that spill onto
    overflow pages, joined whole again (a long row's token may straddle pages)."""
    result = Attack(files=dict(files), records=spilled_records(files))
    closed = _candidates({**result.files, **result.records})
    queue = _master_keys(result.files.get(master_key_file, b""), master_key_file)
    known = {key.value for key in queue}
    while queue:
        key = queue.pop(0)
        result.keys.append(key)
        for item in _open_all(key, closed):
            result.opened.append(item)
            if (new := _as_fernet_key(item.plaintext)) and new not in known:
                known.add(new)
                queue.append(Key(new, f"key from {item.where} <- {item.key.origin}"))
    result.unopened = len(closed)
    return result


def attack_folder(folder: Path, extra: Iterable[Path] = ()) -> Attack:
    """collect() then attack(): the whole attack on one folder (a copy, preferably)."""
    return attack(collect(folder, extra))


def blob_opens(folder: Path, age_secret: str) -> list[str]:
    """The files under folder that are age v1 blobs and decrypt with the age identity
    age_secret (AGE-SECRET-KEY-1...), by path relative to folder."""
    identity = x25519.Identity.from_str(age_secret.strip())
    opened = []
    for path in _regular_files(folder):
        data = _read(path)
        if data is None or not data.startswith(AGE_MAGIC):
            continue
        try:
            pyrage.decrypt(data, [identity])
        except (pyrage.DecryptError, OSError, ValueError):
            continue  # another file's key, or a damaged blob
        opened.append(str(path.relative_to(folder)))
    return opened


def leftovers(result: Attack, needles: Mapping[str, tuple[bytes, bool]]) -> dict[str, list[str]]:
    """For each named needle (bytes, any_case) still recoverable: where. Empty if none is."""
    found = {}
    for name, (needle, any_case) in needles.items():
        if where := result.recoverable(needle, any_case):
            found[name] = where
    return found


def report(found: Mapping[str, list[str]]) -> str:
    """Findings as lines `needle: place; place; ...` (a few places each, then a count)."""
    lines = []
    for name, places in found.items():
        shown = "; ".join(places[:MAX_LOCATIONS])
        more = f"; and {len(places) - MAX_LOCATIONS} more" if len(places) > MAX_LOCATIONS else ""
        lines.append(f"  {name}: {shown}{more}")
    return "\n".join(lines)


def poll(check: Callable[[], dict[str, list[str]]], timeout: float, interval: float) -> dict[str, list[str]]:
    """Run check (which returns findings) every interval seconds until it finds nothing or
    timeout passes; returns the last findings (empty: success). Always runs at least once."""
    deadline = time.monotonic() + timeout
    while True:
        started = time.monotonic()
        found = check()
        if not found or started >= deadline:
            return found
        time.sleep(max(0.0, min(interval - (time.monotonic() - started), deadline - time.monotonic())))


# ---- the story the tests tell: a victim, a thief, a copy ---------------------------


def canary(label: str) -> str:
    """A unique string that can only come from this test."""
    return f"canary-{label}-{secrets.token_hex(8)}"


@dataclass
class Victim:
    """What of one account must be unreadable once it is deleted."""

    username: str
    messages: list[str]  # of the victim's conversations, both directions
    filename: str
    hashes: tuple[str, str] = ("", "")  # password_hash, dpass_hash, read from a copy
    # name -> text stored as it came (E2EE identity keys, sealed backups, envelopes): no
    # secret to anyone, but it must go with the account all the same.
    stored: dict[str, str] = field(default_factory=dict)

    def needles(self) -> dict[str, tuple[bytes, bool]]:
        """Name -> (bytes, any_case). The username in any case (it is stored lower-cased
        too); each hash whole and its last `$` part (the digest alone identifies it)."""
        found = {f"message {i}": (text.encode(), False) for i, text in enumerate(self.messages)}
        found["username"] = (self.username.encode(), True)
        found["filename"] = (self.filename.encode(), False)
        found.update({name: (text.encode(), False) for name, text in self.stored.items()})
        for name, value in zip(("password_hash", "dpass_hash"), self.hashes, strict=True):
            if value:
                found[name] = (value.encode(), False)
                found[f"{name} digest"] = (value.rsplit("$", 1)[-1].encode(), False)
        return found


def read_hashes(copy: Path, username: str, database: str = "ghostcache.db") -> tuple[str, str]:
    """(password_hash, dpass_hash) of username, from the database copy (with its -wal)."""
    with closing(sqlite3.connect(f"{(copy / database).resolve().as_uri()}?mode=ro", uri=True)) as conn:
        row = conn.execute(
            'SELECT password_hash, dpass_hash FROM "user" WHERE username_key = ?', (username.lower(),)
        ).fetchone()
    if row is None:
        raise LookupError(f"no user {username!r} in the copy {copy}")
    return row[0], row[1]


class Thief:
    """Copies a data folder (and extra files: logs) whenever asked and attacks the copy.
    Keeps only the latest copy on disk."""

    def __init__(self, data_dir: Path, workdir: Path, extra: Iterable[Path] = ()) -> None:
        self.data_dir, self.workdir, self.extra = data_dir, workdir, list(extra)
        self.copies = 0
        self.last: Path | None = None

    def copy(self) -> Path:
        if self.last is not None:
            shutil.rmtree(self.last, ignore_errors=True)
        self.copies += 1
        self.last = snapshot(self.data_dir, self.workdir / f"copy-{self.copies}", self.extra)
        return self.last

    def control(self, victim: Victim, file_key: str) -> list[str]:
        """The positive control, before the deletion: copy, read the victim's hashes from
        the copy's database into victim, attack. Returns what the attack could not read,
        which must be nothing: else it is broken, and finding nothing later proves nothing."""
        copy = self.copy()
        victim.hashes = read_hashes(copy, victim.username)
        result = attack_folder(copy)
        needles = victim.needles()
        missed = sorted(needles.keys() - leftovers(result, needles).keys())
        missed += [h for h in victim.hashes if not h.startswith("$argon2id$")]
        if len(blob_opens(copy, file_key)) != 1:
            missed.append("the one blob the file key opens")
        return [*missed, f"(the attack on that copy: {result.summary()})"] if missed else []

    def look(self, victim: Victim, file_key: str) -> dict[str, list[str]]:
        """Copy, attack; where each of the victim's needles can still be read, and which
        blobs the victim's file key still opens."""
        copy = self.copy()
        result = attack_folder(copy)
        found = leftovers(result, victim.needles())
        if blobs := blob_opens(copy, file_key):
            found["file key opens"] = blobs
        return found

    def wait_until_gone(
        self, victim: Victim, file_key: str, timeout: float = 10.0, interval: float = 0.5
    ) -> dict[str, list[str]]:
        """look() every interval until nothing is found or timeout; the last findings."""
        return poll(lambda: self.look(victim, file_key), timeout, interval)


# ---- internals ---------------------------------------------------------------------


def _regular_files(folder: Path) -> list[Path]:
    found = []
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return sorted(found)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, PermissionError):
        return None  # removed meanwhile, or not ours to read


def _copy_if_present(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(src, dest)
    except FileNotFoundError:
        pass  # deleted while we copied: nothing to take


def _offsets(offsets: list[int]) -> str:
    shown = ", ".join(f"0x{o:x}" for o in offsets[:4])
    return f"{shown} ({len(offsets)} times)" if len(offsets) > 4 else shown


def _master_keys(raw: bytes, origin: str) -> list[Key]:
    keys = []
    for number, line in enumerate(raw.replace(b",", b"\n").split(), start=1):
        if value := _as_fernet_key(line):
            keys.append(Key(value, f"master key {number} in {origin}"))
    return keys


def _as_fernet_key(data: bytes) -> bytes | None:
    """data (stripped) when it is a Fernet key: urlsafe base64 of 32 bytes."""
    data = data.strip()
    if len(data) != 44:
        return None
    try:
        return data if len(base64.urlsafe_b64decode(data)) == 32 else None
    except (binascii.Error, ValueError):
        return None


def _candidates(files: Mapping[str, bytes]) -> dict[str, list[bytes]]:
    """Where a token may start (file+offset) -> its candidate cuts, longest first. A cut
    seen before, anywhere (the same row in several WAL frames), is listed once only."""
    seen: set[bytes] = set()
    places: dict[str, list[bytes]] = {}
    for name, data in files.items():
        for run in TOKEN_RUN.finditer(data):
            text, start = run.group(), run.start()
            inner = 0
            while inner >= 0:  # a run may hold several tokens (adjacent columns)
                cuts = [t for t in token_candidates(text[inner:]) if t not in seen]
                seen.update(cuts)
                if cuts:
                    places[f"{name}+0x{start + inner:x}"] = cuts
                inner = text.find(TOKEN_START, inner + 1)
    return places


def token_candidates(run: bytes) -> list[bytes]:
    """The prefixes of a base64 run that have a Fernet token's length and padding,
    longest first."""
    found = []
    size = TOKEN_OVERHEAD + BLOCK
    while (chars := 4 * -(-size // 3)) <= len(run):
        pad = -size % 3
        prefix = run[:chars]
        if prefix.count(b"=") == pad and (pad == 0 or prefix.endswith(b"=" * pad)):
            found.append(prefix)
        size += BLOCK
    return found[::-1]


def _open_all(key: Key, closed: dict[str, list[bytes]]) -> Iterator[Opened]:
    """Each token in closed that key opens, with its plaintext; its place leaves closed
    (only one token starts at a place: the other cuts there are not tokens)."""
    fernet = Fernet(key.value)
    for where, cuts in list(closed.items()):
        for token in cuts:
            try:
                plaintext = fernet.decrypt(token)
            except InvalidToken:
                continue
            del closed[where]
            yield Opened(where, key, plaintext, token)
            break
