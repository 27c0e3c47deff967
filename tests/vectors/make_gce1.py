"""Writes tests/vectors/gce1.json: GCE1 known-answer vectors (docs/E2EE.md).

Every input is fixed (keys, message ids, ivs, times, salts), so running it again gives
the same file; tests/test_e2ee_protocol.py checks that. Run from the repository root:
    .venv/bin/python tests/vectors/make_gce1.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ghostcache import e2ee

OUT = Path(__file__).with_name("gce1.json")
USERS = {"alice": 7, "bob": 9, "Carol.Q": 12, "dave_99": 15}
CONNECTION_ID = 42
TS_MS = 1767225600000  # 2026-01-01T00:00:00Z
# name, sender, receiver, body, padded plaintext length ({"t":"text","body":""} is 22 bytes)
MESSAGES = [
    ("short ASCII", "alice", "bob", "Hello, Bob!", 256),
    ("non-ASCII and emoji", "bob", "alice", "Grüße aus Köln — 你好 👋🏽 Ghosts 👻", 256),
    ("JSON escapes", "alice", "bob", 'quote " back\\slash new\nline tab\t \x01 \x7f \u2028 end', 256),
    ("fills 256 bytes exactly: 0x80 and no zero bytes", "alice", "bob", "a" * 233, 256),
    ("crosses 256 into 512", "bob", "alice", "b" * 234, 512),
]
SAFETY_PAIRS = [("alice", "bob"), ("Carol.Q", "dave_99")]
GOOD = b'{"t":"text","body":"hi"}'


def padded(text: bytes, zeros: int | None = None) -> bytes:
    """text, 0x80, then `zeros` zero bytes (by default: up to a multiple of 256)."""
    return text + b"\x80" + bytes(-(len(text) + 1) % 256 if zeros is None else zeros)


# Authentic envelopes (alice to bob) around plaintexts that both implementations must refuse.
REFUSALS = [
    ("no 0x80 marker", GOOD + bytes(256 - len(GOOD)), "padding is wrong"),
    ("a non-zero byte after the marker", GOOD + b"\x80\x01" + bytes(256 - len(GOOD) - 2), "padding is wrong"),
    ("a whole extra block of zeros", padded(GOOD, 256 - len(GOOD) - 1 + 256), "padding is wrong"),
    ("invalid UTF-8", padded(b'{"t":"text","body":"\xff"}'), "plaintext is not"),
    ("a byte order mark", padded(b"\xef\xbb\xbf" + GOOD), "plaintext is not"),
    ("a lone surrogate", padded(b'{"t":"text","body":"\\ud800"}'), "plaintext is not"),
    ("another message type", padded(b'{"t":"file","body":"hi"}'), "plaintext is not"),
    ("a body that is not a string", padded(b'{"t":"text","body":1}'), "plaintext is not"),
    ("an extra key", padded(b'{"t":"text","body":"hi","x":1}'), "plaintext is not"),
    ("an array", padded(b'["text","hi"]'), "plaintext is not"),
    ("deeply nested arrays", padded(b"[" * 2000 + b"]" * 2000), "plaintext is not"),
    ("not JSON", padded(b"hi"), "plaintext is not"),
]


def fixed(label: str, size: int) -> bytes:
    """Deterministic bytes for one named input."""
    return hashlib.sha256(b"GCE1 test vector: " + label.encode()).digest()[:size]


def private(username: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(fixed("identity " + username, 32))


def pub(username: str) -> bytes:
    return e2ee.public_raw(private(username))


def message_vector(index: int, name: str, sender: str, receiver: str, body: str, padded: int) -> dict:
    mid, iv, ts = fixed(f"mid {index}", 16), fixed(f"iv {index}", 12), TS_MS + index
    sender_priv, ids = private(sender), (USERS[sender], USERS[receiver])
    envelope = e2ee.encrypt_message(
        sender_priv, ids[0], pub(receiver), ids[1], CONNECTION_ID, body, ts_ms=ts, mid=mid, iv=iv
    )
    key = e2ee._message_key(sender_priv, pub(receiver), envelope["conv"], mid)
    assert len(e2ee.b64u_decode(envelope["ct"])) - e2ee.TAG_BYTES == padded, name
    return {
        "name": name,
        "sender_priv_hex": sender_priv.private_bytes_raw().hex(),
        "sender_pub_hex": pub(sender).hex(),
        "receiver_priv_hex": private(receiver).private_bytes_raw().hex(),
        "receiver_pub_hex": pub(receiver).hex(),
        "sender_id": USERS[sender],
        "receiver_id": USERS[receiver],
        "connection_id": CONNECTION_ID,
        "ts_ms": ts,
        "mid_hex": mid.hex(),
        "iv_hex": iv.hex(),
        "key_hex": key.hex(),
        "aad": e2ee._aad(envelope).decode("ascii"),
        "padded_len": padded,
        "envelope": envelope,
        "plaintext": body,
    }


def seal_raw(index: int, plaintext: bytes) -> dict:
    """An authentic alice-to-bob envelope around arbitrary plaintext bytes, padding included."""
    mid, iv = fixed(f"refusal mid {index}", 16), fixed(f"refusal iv {index}", 12)
    header = {
        **{"v": e2ee.VERSION, "alg": e2ee.ALG, "conv": e2ee.conv_id(CONNECTION_ID)},
        **{"sid": str(USERS["alice"]), "rid": str(USERS["bob"])},
        **{"skid": e2ee.kid(pub("alice")), "rkid": e2ee.kid(pub("bob"))},
        **{"mid": e2ee.b64u(mid), "ts": str(TS_MS + 100 + index)},
    }
    key = e2ee._message_key(private("alice"), pub("bob"), header["conv"], mid)
    ct = AESGCM(key).encrypt(iv, plaintext, e2ee._aad(header))
    return {**header, "iv": e2ee.b64u(iv), "ct": e2ee.b64u(ct)}


def refusal_vector(index: int, name: str, plaintext: bytes, reason: str) -> dict:
    return {
        "name": name,
        "sender_pub_hex": pub("alice").hex(),
        "receiver_priv_hex": private("bob").private_bytes_raw().hex(),
        "sender_id": USERS["alice"],
        "receiver_id": USERS["bob"],
        "connection_id": CONNECTION_ID,
        "plaintext_hex": plaintext.hex(),
        "envelope": seal_raw(index, plaintext),
        "reason": reason,
    }


def safety_vector(user_a: str, user_b: str) -> dict:
    return {
        "username_a": user_a,
        "pub_a_hex": pub(user_a).hex(),
        "username_b": user_b,
        "pub_b_hex": pub(user_b).hex(),
        "safety_number": e2ee.safety_number(user_a, pub(user_a), user_b, pub(user_b)),
    }


def backup_vector() -> dict:
    recovery, owner, ctr = fixed("recovery", 32), "alice", 3
    ik = e2ee.private_pkcs8(private(owner))
    pins = {"bob": e2ee.kid(pub("bob")), "carol.q": e2ee.kid(pub("Carol.Q"))}
    salt, iv = fixed("backup salt", 16), fixed("backup iv", 12)
    sealed = e2ee.seal_backup(recovery, USERS[owner], ctr, ik, pins, salt=salt, iv=iv)
    return {
        "recovery_key": e2ee.format_recovery(recovery),
        "recovery_hex": recovery.hex(),
        "user_id": USERS[owner],
        "ctr": ctr,
        **sealed,
        "ik_priv_hex": private(owner).private_bytes_raw().hex(),
        "ik_pkcs8_hex": ik.hex(),
        "ik_pub_hex": pub(owner).hex(),
        "kid": e2ee.kid(pub(owner)),
        "pins": pins,
    }


def build() -> dict:
    """The whole vectors document."""
    return {
        "protocol": "GCE1",
        "spec": "docs/E2EE.md",
        "generator": "tests/vectors/make_gce1.py",
        "messages": [message_vector(i, *m) for i, m in enumerate(MESSAGES, start=1)],
        "safety_numbers": [safety_vector(a, b) for a, b in SAFETY_PAIRS],
        "backups": [backup_vector()],
        "refusals": [refusal_vector(i, *r) for i, r in enumerate(REFUSALS, start=1)],
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
