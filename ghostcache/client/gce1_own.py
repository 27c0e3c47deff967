"""Opening an envelope this account sent: GCE1 (ghostcache/e2ee.py) offers decryption to
the receiver only, but the message key is derived from the pair's shared secret, so the
sender can derive it too. The same checks, in the same order, with the roles swapped."""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .. import e2ee as gce1


def open_sent(
    sender_priv: X25519PrivateKey,
    envelope: object,
    *,
    sender_id: int,
    receiver_id: int,
    conv: int,
    receiver_pub: bytes,
) -> str:
    """The body of an envelope that sender_priv sealed for receiver_pub; E2EEError otherwise."""
    # ghostcache.e2ee keeps these steps private; they are reused rather than copied so
    # that one implementation of GCE1 stays the reference.
    env = gce1._check_shape(envelope)
    expected = {
        "sid": str(sender_id),
        "rid": str(receiver_id),
        "conv": f"c{conv}",
        "skid": gce1.kid(gce1.public_raw(sender_priv)),
        "rkid": gce1.kid(receiver_pub),
    }
    for name, value in expected.items():
        if not hmac.compare_digest(env[name].encode(), value.encode()):
            raise gce1.E2EEError(f"{name!r} does not match this conversation or key")
    key = gce1._message_key(sender_priv, receiver_pub, env["conv"], gce1.b64u_decode(env["mid"]))
    try:
        padded = AESGCM(key).decrypt(gce1.b64u_decode(env["iv"]), gce1.b64u_decode(env["ct"]), gce1._aad(env))
    except InvalidTag:
        raise gce1.E2EEError("decryption failed: the envelope was altered") from None
    return gce1._parse_plaintext(gce1._unpad(padded))
