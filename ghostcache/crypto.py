"""Every cipher GhostCache uses, behind a small named vocabulary.

Nothing else on the server calls a cipher directly (e2ee.py is the client side of
end-to-end encryption: the Python client's and the tests'). Key hierarchy:
master keyring (outside the database) wraps each user's Fernet key; a user key
encrypts that user's copies of connection secrets; a connection's chat key
encrypts its messages; each uploaded file has its own age X25519 identity,
which only the uploader receives.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import BinaryIO, Protocol

import pyrage
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pyrage import x25519

from .secrets import Secret


class CryptoError(Exception):
    """A ciphertext or key could not be used (tampered, wrong key, malformed)."""


# ---- passwords -------------------------------------------------------------

_HASHERS = {
    "default": PasswordHasher(),  # argon2id, RFC 9106 low-memory profile
    "fast": PasswordHasher.from_parameters(profiles.CHEAPEST),  # tests only
}


class PasswordHashing:
    """Argon2id hashing with a fixed-cost dummy for unknown usernames."""

    def __init__(self, profile: str = "default") -> None:
        self._hasher = _HASHERS[profile]
        self._dummy = self._hasher.hash("ghostcache-dummy-password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when password matches; a None hash costs the same and is False."""
        try:
            return self._hasher.verify(stored_hash or self._dummy, password) and bool(stored_hash)
        except (VerificationError, InvalidHashError):
            return False


class KeyedTags:
    """Keyed hashes (HMAC-SHA256) of names and addresses, case-insensitive: a value can
    be recognised when it comes again, but stored tags cannot be read back or listed."""

    def __init__(self, key: Secret) -> None:
        self._key = hashlib.sha256(b"ghostcache keyed tags\0" + _as_bytes(key.reveal())).digest()

    def tag(self, value: str) -> str:
        return hmac.new(self._key, value.strip().lower().encode(), hashlib.sha256).hexdigest()


# ---- master keyring and user keys -----------------------------------------


def new_fernet_key() -> Secret[bytes]:
    """A fresh Fernet key (used for master keys, user keys and chat keys)."""
    return Secret(Fernet.generate_key())


class MasterKeyring:
    """The master keys; the first wraps, all of them unwrap (rotation-safe)."""

    def __init__(self, keys: list[Secret[bytes]]) -> None:
        if not keys:
            raise ValueError("a master keyring needs at least one key")
        try:
            self._fernet = MultiFernet([Fernet(k.reveal()) for k in keys])
            self._primary = Fernet(keys[0].reveal())
        except (ValueError, TypeError):
            raise CryptoError("A master key is not a valid Fernet key.") from None
        self.size = len(keys)

    def opens_with_primary(self, wrapped: str) -> bool:
        """True when the primary key alone opens it (safe to retire the others)."""
        try:
            self._primary.decrypt(wrapped.encode())
            return True
        except InvalidToken:
            return False

    def wrap(self, key: Secret) -> str:
        return self._fernet.encrypt(_as_bytes(key.reveal())).decode()

    def unwrap(self, wrapped: str) -> Secret[bytes]:
        return Secret(_fernet_decrypt(self._fernet, wrapped))

    def rewrap(self, wrapped: str) -> str:
        """Re-encrypt under the primary key (for master-key rotation)."""
        try:
            return self._fernet.rotate(wrapped.encode()).decode()
        except InvalidToken:
            raise CryptoError("A wrapped key could not be opened with any master key.") from None


class Keyring(Protocol):
    """What the services need of a master keyring: a MasterKeyring, or a
    keyfiles.KeyFileRing that follows its key file."""

    @property
    def size(self) -> int: ...

    def wrap(self, key: Secret) -> str: ...

    def unwrap(self, wrapped: str) -> Secret[bytes]: ...

    def rewrap(self, wrapped: str) -> str: ...

    def opens_with_primary(self, wrapped: str) -> bool: ...


def wrap_user_key(keyring: Keyring, user_key: Secret) -> str:
    return keyring.wrap(user_key)


def unwrap_user_key(keyring: Keyring, wrapped: str) -> Secret[bytes]:
    return keyring.unwrap(wrapped)


def encrypt_for_user(user_key: Secret, value: bytes) -> str:
    """Encrypt a secret the server keeps on a user's behalf."""
    return Fernet(user_key.reveal()).encrypt(value).decode()


def decrypt_for_user(user_key: Secret, token: str) -> Secret[bytes]:
    return Secret(_fernet_decrypt(Fernet(user_key.reveal()), token))


# ---- connections and chat --------------------------------------------------


def new_chat_key() -> Secret[bytes]:
    return new_fernet_key()


def generate_rsa_keypair() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a fresh 2048-bit RSA key pair."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def encrypt_message(chat_key: Secret, text: str) -> str:
    return Fernet(chat_key.reveal()).encrypt(text.encode("utf-8")).decode()


def decrypt_message(chat_key: Secret, token: str) -> str:
    return _fernet_decrypt(Fernet(chat_key.reveal()), token).decode("utf-8")


# ---- files (age v1) --------------------------------------------------------


def new_file_identity() -> tuple[Secret[str], x25519.Recipient]:
    """A fresh age X25519 identity for one file: (secret key string, recipient)."""
    identity = x25519.Identity.generate()
    return Secret(str(identity)), identity.to_public()


class Reader(Protocol):
    """Anything with a binary `read`: an open file, a request body, a wrapper around one."""

    def read(self, size: int = -1, /) -> bytes: ...


def encrypt_stream(reader: Reader, writer: BinaryIO, recipient: x25519.Recipient) -> None:
    """Stream reader's bytes into writer as an age v1 file, in constant memory."""
    pyrage.encrypt_io(reader, writer, [recipient])


def decrypt_stream(reader: BinaryIO, writer: BinaryIO, key: Secret) -> None:
    """Decrypt an age v1 stream with an AGE-SECRET-KEY-1... identity."""
    try:
        identity = x25519.Identity.from_str(str(key.reveal()).strip())
    except Exception:
        raise CryptoError("That is not an age secret key (AGE-SECRET-KEY-1...).") from None
    try:
        pyrage.decrypt_io(reader, writer, [identity])
    except pyrage.DecryptError:
        raise CryptoError("The file could not be decrypted with that key.") from None
    except OSError as exc:
        # pyrage reports a payload that fails authentication (truncated or altered
        # blob) as a bare OSError("decryption error"); real I/O errors carry an errno.
        if exc.errno is not None or "decrypt" not in str(exc):
            raise
        raise CryptoError("The file is damaged or incomplete: it failed its integrity check.") from None


# ---- helpers ---------------------------------------------------------------


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _fernet_decrypt(fernet: Fernet | MultiFernet, token: str) -> bytes:
    try:
        return fernet.decrypt(token.encode())
    except InvalidToken:
        raise CryptoError("A stored secret could not be decrypted.") from None
