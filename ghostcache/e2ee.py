"""GCE1: end-to-end encryption of one-to-one chats, as docs/E2EE.md specifies it.

This is the client side of the protocol (the Python client, and the reference for
static/e2ee.js, which implements the same steps with WebCrypto); the server never
holds a key that opens anything here. tests/vectors/gce1.json holds known answers
that both implementations reproduce.

Public keys are raw 32-byte X25519 keys (`bytes`); private keys are
`X25519PrivateKey` objects, whose repr shows no key material.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "1"
ALG = "GCE1-X25519-HKDF-SHA256-A256GCM"
ENVELOPE_FIELDS = ("v", "alg", "conv", "sid", "rid", "skid", "rkid", "mid", "ts", "iv", "ct")
AAD_FIELDS = ENVELOPE_FIELDS[:9]  # v, alg, conv, sid, rid, skid, rkid, mid, ts
PAD_BLOCK = 256
TAG_BYTES = 16
RECOVERY_BYTES = 32
SAFETY_ITERATIONS = 5200

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")  # canonical: no sign, no leading zeros, <= 19 digits
_B64U = re.compile(r"[A-Za-z0-9_-]*")
_B64U_LENGTHS = {"skid": 16, "rkid": 16, "mid": 16, "iv": 12}
_RECOVERY_SEPARATORS = re.compile(r"[ \t\n\r\f\v-]")
_BASE32 = re.compile(r"[A-Za-z2-7]*")


class E2EEError(Exception):
    """A GCE1 envelope or backup was refused: malformed, mismatched, tampered or wrong key."""


class Restored(NamedTuple):
    """What a backup holds: the identity key (PKCS#8 DER) and the pinned key ids."""

    ik_pkcs8: bytes
    pins: dict[str, str]


# ---- encodings ---------------------------------------------------------------


def b64u(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Strict base64url: URL-safe alphabet, no padding, unused bits zero; else ValueError."""
    if not _B64U.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64u(data) != text:
        raise ValueError("not canonical base64url")
    return data


def _decimal(value: int, what: str) -> str:
    """An id, counter or time as canonical decimal text."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**19:
        raise ValueError(f"{what} must be an integer from 0 to 10**19 - 1, not {value!r}")
    return str(value)


def _json_bytes(value: Any) -> bytes:
    """Compact JSON as UTF-8, non-ASCII kept as is (what JSON.stringify writes)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None


# ---- keys --------------------------------------------------------------------


def generate_identity() -> X25519PrivateKey:
    """A new identity key IK."""
    return X25519PrivateKey.generate()


def public_raw(private: X25519PrivateKey) -> bytes:
    """The raw 32-byte public key of an identity."""
    return private.public_key().public_bytes_raw()


def private_pkcs8(private: X25519PrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 DER, as WebCrypto exports it."""
    return private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_pkcs8(data: bytes) -> X25519PrivateKey:
    """An identity from PKCS#8 DER; E2EEError unless it is an X25519 private key."""
    try:
        key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError):
        raise E2EEError("the identity key is not valid PKCS#8") from None
    if not isinstance(key, X25519PrivateKey):
        raise E2EEError("the identity key is not an X25519 key")
    return key


def kid(pub: bytes) -> str:
    """Key id: b64u(SHA-256("GCE1 kid" || pub)[:16]), 22 characters."""
    if len(pub) != 32:
        raise ValueError(f"an X25519 public key has 32 bytes, not {len(pub)}")
    return b64u(hashlib.sha256(b"GCE1 kid" + pub).digest()[:16])


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


# ---- recovery key and backup -------------------------------------------------


def new_recovery_key() -> bytes:
    """32 random bytes, shown once to the user with format_recovery."""
    return os.urandom(RECOVERY_BYTES)


def format_recovery(raw: bytes) -> str:
    """Base32 (RFC 4648, upper case, no padding) in groups of 4 joined by '-'."""
    if len(raw) != RECOVERY_BYTES:
        raise ValueError(f"a recovery key has {RECOVERY_BYTES} bytes, not {len(raw)}")
    text = base64.b32encode(raw).decode("ascii").rstrip("=")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_recovery(text: str) -> bytes:
    """The 32 bytes of a typed recovery key; case, whitespace and '-' do not matter."""
    compact = _RECOVERY_SEPARATORS.sub("", text)
    bad = next((c for c in compact if not _BASE32.fullmatch(c)), None)
    if bad is not None:
        raise ValueError(f"Recovery keys use only the letters A-Z and digits 2-7, not {bad!r}.")
    expected = len(format_recovery(bytes(RECOVERY_BYTES)).replace("-", ""))
    if len(compact) != expected:
        raise ValueError(f"A recovery key has {expected} letters and digits; this one has {len(compact)}.")
    compact = compact.upper()
    raw = base64.b32decode(compact + "=" * (-len(compact) % 8))
    if format_recovery(raw).replace("-", "") != compact:
        raise ValueError("The last character of this recovery key is wrong.")
    return raw


def _backup_cipher(recovery: bytes, salt: bytes) -> AESGCM:
    if len(recovery) != RECOVERY_BYTES:
        raise ValueError(f"a recovery key has {RECOVERY_BYTES} bytes, not {len(recovery)}")
    return AESGCM(_hkdf(recovery, salt, b"GCE1 backup"))


def _backup_aad(user_id: int, ctr: int) -> bytes:
    return f"GCE1 backup\n{_decimal(user_id, 'user_id')}\n{_decimal(ctr, 'ctr')}".encode()


def seal_backup(
    recovery: bytes,
    user_id: int,
    ctr: int,
    ik_pkcs8: bytes,
    pins: dict[str, str],
    *,
    salt: bytes | None = None,
    iv: bytes | None = None,
) -> dict[str, str]:
    """The backup record {salt, iv, blob} (b64u) for the server; salt and iv are random
    unless given (for known-answer vectors)."""
    salt = os.urandom(16) if salt is None else salt
    iv = os.urandom(12) if iv is None else iv
    if len(salt) != 16 or len(iv) != 12:
        raise ValueError("a backup salt has 16 bytes and an iv 12")
    payload = {"ik": b64u(ik_pkcs8), "pins": dict(sorted(pins.items())), "ctr": ctr}
    aad = _backup_aad(user_id, ctr)
    blob = _backup_cipher(recovery, salt).encrypt(iv, _json_bytes(payload), aad)
    return {"salt": b64u(salt), "iv": b64u(iv), "blob": b64u(blob)}


def _backup_field(backup: object, name: str, size: int | None = None) -> bytes:
    value = backup.get(name) if isinstance(backup, dict) else None
    try:
        data = b64u_decode(value) if isinstance(value, str) else None
    except ValueError:
        data = None
    if data is None or (len(data) != size if size else len(data) <= TAG_BYTES):
        raise E2EEError(f"backup field {name!r} is missing or malformed")
    return data


def open_backup(recovery: bytes, user_id: int, ctr: int, backup: object) -> Restored:
    """The identity key and pins inside a backup record; E2EEError for a wrong recovery
    key, another user's or counter's backup, or a damaged record."""
    salt, iv = _backup_field(backup, "salt", 16), _backup_field(backup, "iv", 12)
    blob = _backup_field(backup, "blob")
    try:
        plain = _backup_cipher(recovery, salt).decrypt(iv, blob, _backup_aad(user_id, ctr))
    except InvalidTag:
        raise E2EEError("wrong recovery key, or the backup is damaged") from None
    return _parse_backup(plain, ctr)


def _parse_backup(plain: bytes, ctr: int) -> Restored:
    try:
        payload = json.loads(plain.decode("utf-8"))
        ik, pins, inner_ctr = b64u_decode(payload["ik"]), payload["pins"], payload["ctr"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise E2EEError("the backup's contents are malformed") from None
    if type(inner_ctr) is not int or inner_ctr != ctr or not isinstance(pins, dict):
        raise E2EEError("the backup's contents are malformed")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in pins.items()):
        raise E2EEError("the backup's pins are malformed")
    load_private_pkcs8(ik)
    return Restored(ik, pins)


# ---- messages ----------------------------------------------------------------


def conv_id(connection_id: int) -> str:
    """The conversation name in envelopes: "c" + connection id."""
    return "c" + _decimal(connection_id, "connection_id")


def _shared_secret(private: X25519PrivateKey, peer_pub: bytes) -> bytes:
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(peer_pub))
    except ValueError:  # OpenSSL refuses low-order points itself
        shared = bytes(32)
    if hmac.compare_digest(shared, bytes(32)):
        raise E2EEError("the peer's key gives an all-zero shared secret")
    return shared


def usable_public_key(pub: bytes) -> bool:
    """True when `pub` is a 32-byte X25519 key that can agree a secret: a low-order point
    (which makes every shared secret zero, whatever the other side's key) is not."""
    if len(pub) != 32:
        return False
    try:
        _shared_secret(generate_identity(), pub)
    except E2EEError:
        return False
    return True


def _pair_salt(pub_a: bytes, pub_b: bytes) -> bytes:
    low, high = sorted((pub_a, pub_b))
    return hashlib.sha256(b"GCE1 pair salt" + low + high).digest()


def _message_key(private: X25519PrivateKey, peer_pub: bytes, conv: str, mid: bytes) -> bytes:
    """K = HKDF(S, pair salt, "GCE1 msg key" 0x00 conv 0x00 mid)."""
    shared = _shared_secret(private, peer_pub)
    info = b"GCE1 msg key\x00" + conv.encode("ascii") + b"\x00" + mid
    return _hkdf(shared, _pair_salt(public_raw(private), peer_pub), info)


def _aad(envelope: dict[str, str]) -> bytes:
    return "\n".join(["GCE1", *(envelope[name] for name in AAD_FIELDS)]).encode("ascii")


def _pad(data: bytes) -> bytes:
    return data + b"\x80" + bytes(-(len(data) + 1) % PAD_BLOCK)


def _unpad(padded: bytes) -> bytes:
    """Strict: 0x80, then fewer than PAD_BLOCK zero bytes, to a multiple of PAD_BLOCK."""
    stripped = padded.rstrip(b"\x00")
    if len(padded) % PAD_BLOCK or not stripped.endswith(b"\x80") or len(padded) - len(stripped) >= PAD_BLOCK:
        raise E2EEError("the plaintext's padding is wrong")
    return stripped[:-1]


def encrypt_message(
    sender_priv: X25519PrivateKey,
    sender_id: int,
    receiver_pub: bytes,
    receiver_id: int,
    connection_id: int,
    body: str,
    *,
    ts_ms: int | None = None,
    mid: bytes | None = None,
    iv: bytes | None = None,
) -> dict[str, str]:
    """The envelope of one text message; ts, mid and iv are now/random unless given."""
    mid = os.urandom(16) if mid is None else mid
    iv = os.urandom(12) if iv is None else iv
    if len(mid) != 16 or len(iv) != 12:
        raise ValueError("a message id has 16 bytes and an iv 12")
    ts = time.time_ns() // 1_000_000 if ts_ms is None else ts_ms
    if not isinstance(body, str):
        raise TypeError("a message body is a string")
    envelope = {
        "v": VERSION,
        "alg": ALG,
        "conv": conv_id(connection_id),
        "sid": _decimal(sender_id, "sender_id"),
        "rid": _decimal(receiver_id, "receiver_id"),
        "skid": kid(public_raw(sender_priv)),
        "rkid": kid(receiver_pub),
        "mid": b64u(mid),
        "ts": _decimal(ts, "ts_ms"),
    }
    padded = _pad(_json_bytes({"t": "text", "body": body}))
    key = _message_key(sender_priv, receiver_pub, envelope["conv"], mid)
    ct = AESGCM(key).encrypt(iv, padded, _aad(envelope))
    return {**envelope, "iv": b64u(iv), "ct": b64u(ct)}


def _check_shape(envelope: object) -> dict[str, str]:
    """The envelope, if it has exactly the GCE1 fields with well-formed values."""
    if not isinstance(envelope, dict) or set(envelope) != set(ENVELOPE_FIELDS):
        raise E2EEError("the envelope does not have exactly the GCE1 fields")
    if not all(isinstance(envelope[name], str) for name in ENVELOPE_FIELDS):
        raise E2EEError("envelope fields must be strings")
    if envelope["v"] != VERSION or envelope["alg"] != ALG:
        raise E2EEError("unsupported envelope version or algorithm")
    if not envelope["conv"].startswith("c") or not _DECIMAL.fullmatch(envelope["conv"][1:]):
        raise E2EEError("malformed field 'conv'")
    for name in ("sid", "rid", "ts"):
        if not _DECIMAL.fullmatch(envelope[name]):
            raise E2EEError(f"malformed field {name!r}")
    for name, size in _B64U_LENGTHS.items():
        if len(_b64u_field(envelope, name)) != size:
            raise E2EEError(f"field {name!r} has the wrong length")
    ct_len = len(_b64u_field(envelope, "ct"))
    if ct_len <= TAG_BYTES or (ct_len - TAG_BYTES) % PAD_BLOCK:
        raise E2EEError("field 'ct' is not a padded plaintext's length")
    return dict(envelope)


def envelope_shape(envelope: object, max_ciphertext: int) -> dict[str, str]:
    """The envelope, if it has exactly the GCE1 fields with well-formed values and a `ct`
    of at most `max_ciphertext` bytes; else E2EEError. The server's check: it decrypts
    nothing, and a client still checks ids and keys itself (decrypt_message)."""
    if isinstance(envelope, dict) and isinstance(envelope.get("ct"), str):
        if len(envelope["ct"]) > (max_ciphertext * 4 + 2) // 3:  # the b64u length of that many bytes
            raise E2EEError("field 'ct' is too long")
    return _check_shape(envelope)


def _b64u_field(envelope: dict[str, str], name: str) -> bytes:
    try:
        return b64u_decode(envelope[name])
    except ValueError:
        raise E2EEError(f"malformed field {name!r}") from None


def _expect(envelope: dict[str, str], name: str, expected: str, what: str) -> None:
    if not hmac.compare_digest(envelope[name].encode(), expected.encode()):
        raise E2EEError(f"{name!r} is not {what}")


def _parse_plaintext(data: bytes) -> str:
    """The body of {"t": "text", "body": str}, the only GCE1 message type."""
    try:
        message = json.loads(data.decode("utf-8"))
        if isinstance(message, dict) and set(message) == {"t", "body"} and message["t"] == "text":
            body = message["body"]
            if isinstance(body, str):
                body.encode("utf-8")  # refuses lone surrogates, as JavaScript's check does
                return body
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        pass
    raise E2EEError('the plaintext is not {"t": "text", "body": <string>}')


def decrypt_message(
    receiver_priv: X25519PrivateKey,
    envelope: object,
    *,
    expected_sender_id: int,
    expected_receiver_id: int,
    expected_conv: int,
    sender_pub: bytes,
) -> str:
    """The body of an envelope shown in conversation `expected_conv` (a connection id),
    from `expected_sender_id` whose pinned key is `sender_pub`. Every header check comes
    before decryption; any failure raises E2EEError."""
    env = _check_shape(envelope)
    if len(sender_pub) != 32:
        raise E2EEError("the sender's public key does not have 32 bytes")
    _expect_route(env, expected_sender_id, expected_receiver_id, expected_conv)
    _expect(env, "skid", kid(sender_pub), "the sender's pinned key")
    _expect(env, "rkid", kid(public_raw(receiver_priv)), "this identity's key")
    return _open(env, receiver_priv, sender_pub)


def decrypt_own_message(
    sender_priv: X25519PrivateKey,
    envelope: object,
    *,
    expected_sender_id: int,
    expected_receiver_id: int,
    expected_conv: int,
    receiver_pub: bytes,
) -> str:
    """The body of an envelope this identity sealed for `receiver_pub` (a sender re-reading
    its history): the message key comes from the pair's shared secret, which either side
    derives. The same checks in the same order, with the roles swapped."""
    env = _check_shape(envelope)
    if len(receiver_pub) != 32:
        raise E2EEError("the receiver's public key does not have 32 bytes")
    _expect_route(env, expected_sender_id, expected_receiver_id, expected_conv)
    _expect(env, "skid", kid(public_raw(sender_priv)), "this identity's key")
    _expect(env, "rkid", kid(receiver_pub), "the receiver's pinned key")
    return _open(env, sender_priv, receiver_pub)


def _expect_route(env: dict[str, str], sender_id: int, receiver_id: int, conv: int) -> None:
    """Both readers' first checks: sender, receiver and conversation are the expected ones."""
    _expect(env, "sid", str(sender_id), "the expected sender")
    _expect(env, "rid", str(receiver_id), "the expected receiver")
    _expect(env, "conv", f"c{conv}", "this conversation")


def _open(env: dict[str, str], own_priv: X25519PrivateKey, peer_pub: bytes) -> str:
    """Decrypts a checked envelope with the pair's message key."""
    key = _message_key(own_priv, peer_pub, env["conv"], b64u_decode(env["mid"]))
    try:
        padded = AESGCM(key).decrypt(b64u_decode(env["iv"]), b64u_decode(env["ct"]), _aad(env))
    except InvalidTag:
        raise E2EEError("decryption failed: the envelope was altered or not sealed for this key") from None
    return _parse_plaintext(_unpad(padded))


# ---- safety numbers ----------------------------------------------------------


def _fingerprint(username: str, pub: bytes) -> str:
    """30 digits for one side: SHA-512 iterated over the public key and the username."""
    if not username.isascii() or len(pub) != 32:
        raise ValueError("safety numbers need an ASCII username and a 32-byte public key")
    digest = hashlib.sha512(b"\x00\x00" + pub + username.lower().encode("ascii")).digest()
    for _ in range(SAFETY_ITERATIONS):
        digest = hashlib.sha512(digest + pub).digest()
    chunks = (int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return "".join(f"{chunk:05d}" for chunk in chunks)


def safety_number(user_a: str, pub_a: bytes, user_b: str, pub_b: bytes) -> str:
    """60 digits in 12 groups of 5; the same whichever side computes it."""
    digits = "".join(sorted((_fingerprint(user_a, pub_a), _fingerprint(user_b, pub_b))))
    return " ".join(digits[i : i + 5] for i in range(0, len(digits), 5))
