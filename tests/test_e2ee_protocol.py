"""GCE1 (docs/E2EE.md) in Python, against the known-answer vectors, and across languages:
Python opens what static/e2ee.js sealed (through node), node checks the vectors."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ghostcache import e2ee
from ghostcache.e2ee import E2EEError

ROOT = Path(__file__).resolve().parent.parent
VECTORS_FILE = ROOT / "tests" / "vectors" / "gce1.json"
VECTORS = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
MESSAGES = VECTORS["messages"]
FIRST = MESSAGES[0]
NODE = shutil.which("node")
# What e2ee.js needs of a Node: WebCrypto with X25519 (Node 18.4 and later).
_PROBE = (
    "const c = globalThis.crypto || require('node:crypto').webcrypto;"
    "c.subtle.generateKey({name: 'X25519'}, false, ['deriveBits'])"
    ".then(() => process.exit(0), () => process.exit(1));"
)


def _node_has_x25519() -> bool:
    if NODE is None:
        return False
    return subprocess.run([NODE, "-e", _PROBE], capture_output=True, timeout=60).returncode == 0


needs_node = pytest.mark.skipif(
    not _node_has_x25519(), reason="no node with WebCrypto X25519: the JavaScript side of GCE1 is not checked"
)


def load_generator():
    spec = importlib.util.spec_from_file_location("make_gce1", ROOT / "tests" / "vectors" / "make_gce1.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()


def names(vectors: list[dict]) -> list[str]:
    return [v.get("name") or f"{v['username_a']}+{v['username_b']}" for v in vectors]


def raw_private(hex_key: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes.fromhex(hex_key))


def open_vector(vector: dict, envelope: object, **overrides) -> str:
    expected = {
        "expected_sender_id": vector["sender_id"],
        "expected_receiver_id": vector["receiver_id"],
        "expected_conv": vector["connection_id"],
        "sender_pub": bytes.fromhex(vector["sender_pub_hex"]),
        **overrides,
    }
    return e2ee.decrypt_message(raw_private(vector["receiver_priv_hex"]), envelope, **expected)


def flipped(envelope: dict, field: str) -> dict:
    """One bit flipped: in the decoded bytes of a base64url field, in the last character otherwise."""
    value = envelope[field]
    if field in ("ct", "iv", "mid", "skid", "rkid"):
        data = bytearray(e2ee.b64u_decode(value))
        data[0] ^= 1
        return {**envelope, field: e2ee.b64u(bytes(data))}
    return {**envelope, field: value[:-1] + chr(ord(value[-1]) ^ 1)}


# ---- known answers -------------------------------------------------------------


def test_vectors_file_is_what_the_generator_writes():
    assert GENERATOR.render() == VECTORS_FILE.read_text(encoding="utf-8")


def test_vectors_cover_the_required_cases():
    assert len(MESSAGES) >= 3 and len(VECTORS["safety_numbers"]) >= 2 and VECTORS["backups"]
    assert {v["reason"] for v in VECTORS["refusals"]} == {"padding is wrong", "plaintext is not"}
    assert {v["padded_len"] for v in MESSAGES} == {256, 512}
    assert any(not v["plaintext"].isascii() for v in MESSAGES)


@pytest.mark.parametrize("vector", MESSAGES, ids=names(MESSAGES))
def test_vector_decrypts_to_its_plaintext(vector):
    assert open_vector(vector, vector["envelope"]) == vector["plaintext"]


def open_own(vector: dict, envelope: object, sender_hex: str | None = None) -> str:
    """What the vector's sender reads back from its own history."""
    return e2ee.decrypt_own_message(
        raw_private(sender_hex or vector["sender_priv_hex"]),
        envelope,
        expected_sender_id=vector["sender_id"],
        expected_receiver_id=vector["receiver_id"],
        expected_conv=vector["connection_id"],
        receiver_pub=bytes.fromhex(vector["receiver_pub_hex"]),
    )


@pytest.mark.parametrize("vector", MESSAGES, ids=names(MESSAGES))
def test_the_sender_reads_its_own_envelope_back(vector):
    assert open_own(vector, vector["envelope"]) == vector["plaintext"]


def test_reading_back_refuses_another_sender_key_and_a_flipped_bit():
    vector = MESSAGES[0]
    with pytest.raises(e2ee.E2EEError, match="skid"):  # the receiver's key in the sender's seat
        open_own(vector, vector["envelope"], sender_hex=vector["receiver_priv_hex"])
    ct = bytearray(e2ee.b64u_decode(vector["envelope"]["ct"]))
    ct[0] ^= 1
    with pytest.raises(e2ee.E2EEError, match="decryption failed"):
        open_own(vector, vector["envelope"] | {"ct": e2ee.b64u(bytes(ct))})


@pytest.mark.parametrize("vector", MESSAGES, ids=names(MESSAGES))
def test_vector_envelope_is_reproduced_from_its_fixed_inputs(vector):
    sender = raw_private(vector["sender_priv_hex"])
    assert e2ee.public_raw(sender).hex() == vector["sender_pub_hex"]
    envelope = e2ee.encrypt_message(
        sender,
        vector["sender_id"],
        bytes.fromhex(vector["receiver_pub_hex"]),
        vector["receiver_id"],
        vector["connection_id"],
        vector["plaintext"],
        ts_ms=vector["ts_ms"],
        mid=bytes.fromhex(vector["mid_hex"]),
        iv=bytes.fromhex(vector["iv_hex"]),
    )
    assert envelope == vector["envelope"]


@pytest.mark.parametrize("vector", MESSAGES, ids=names(MESSAGES))
def test_vector_follows_the_design_text_step_by_step(vector):
    """Recomputed from primitives as E2EE.md words each step, not through e2ee's helpers."""
    env, receiver = vector["envelope"], raw_private(vector["receiver_priv_hex"])
    sender_pub = bytes.fromhex(vector["sender_pub_hex"])
    receiver_pub = bytes.fromhex(vector["receiver_pub_hex"])
    shared = receiver.exchange(e2ee.X25519PublicKey.from_public_bytes(sender_pub))
    salt = hashlib.sha256(b"GCE1 pair salt" + min(sender_pub, receiver_pub) + max(sender_pub, receiver_pub))
    mid = bytes.fromhex(vector["mid_hex"])
    info = b"GCE1 msg key" + b"\x00" + f"c{vector['connection_id']}".encode() + b"\x00" + mid
    key = HKDF(hashes.SHA256(), 32, salt.digest(), info).derive(shared)
    aad = "GCE1\n" + "\n".join(env[name] for name in "v alg conv sid rid skid rkid mid ts".split())
    assert (key.hex(), aad) == (vector["key_hex"], vector["aad"])
    assert env["skid"] == e2ee.b64u(hashlib.sha256(b"GCE1 kid" + sender_pub).digest()[:16])
    padded = AESGCM(key).decrypt(e2ee.b64u_decode(env["iv"]), e2ee.b64u_decode(env["ct"]), aad.encode())
    text = json.dumps({"t": "text", "body": vector["plaintext"]}, ensure_ascii=False, separators=(",", ":"))
    assert padded.rstrip(b"\x00") == text.encode() + b"\x80" and len(padded) == vector["padded_len"]


@pytest.mark.parametrize("vector", VECTORS["safety_numbers"], ids=names(VECTORS["safety_numbers"]))
def test_vector_safety_number_in_both_orders(vector):
    a = (vector["username_a"], bytes.fromhex(vector["pub_a_hex"]))
    b = (vector["username_b"], bytes.fromhex(vector["pub_b_hex"]))
    assert e2ee.safety_number(*a, *b) == vector["safety_number"]
    assert e2ee.safety_number(*b, *a) == vector["safety_number"]


@pytest.mark.parametrize("vector", VECTORS["backups"])
def test_vector_backup_opens_with_its_recovery_key(vector):
    recovery = e2ee.parse_recovery(vector["recovery_key"])
    assert recovery.hex() == vector["recovery_hex"]
    restored = e2ee.open_backup(recovery, vector["user_id"], vector["ctr"], vector)
    assert restored == (bytes.fromhex(vector["ik_pkcs8_hex"]), vector["pins"])
    identity = e2ee.load_private_pkcs8(restored.ik_pkcs8)
    assert identity.private_bytes_raw().hex() == vector["ik_priv_hex"]
    assert e2ee.kid(e2ee.public_raw(identity)) == vector["kid"]


# ---- refusals ------------------------------------------------------------------

TAMPERED_FIELDS = ["ct", "iv", "mid", "sid", "rid", "ts", "conv", "skid", "rkid", "v", "alg"]


@pytest.mark.parametrize("field", TAMPERED_FIELDS)
def test_flipped_bit_is_refused(field):
    with pytest.raises(E2EEError):
        open_vector(FIRST, flipped(FIRST["envelope"], field))


@pytest.mark.parametrize(
    ("field", "argument"),
    [("sid", "expected_sender_id"), ("rid", "expected_receiver_id"), ("conv", "expected_conv")],
)
def test_flipped_header_fails_authentication_even_when_the_reader_expects_it(field, argument):
    envelope = flipped(FIRST["envelope"], field)
    value = int(envelope[field].removeprefix("c"))
    with pytest.raises(E2EEError, match="decryption failed"):
        open_vector(FIRST, envelope, **{argument: value})


def test_header_checks_name_what_did_not_match():
    stranger = X25519PrivateKey.generate()
    cases = [
        ({"expected_sender_id": 8}, "'sid' is not the expected sender"),
        ({"expected_receiver_id": 8}, "'rid' is not the expected receiver"),
        ({"expected_conv": 43}, "'conv' is not this conversation"),
        ({"sender_pub": e2ee.public_raw(stranger)}, "'skid' is not the sender's pinned key"),
    ]
    for overrides, reason in cases:
        with pytest.raises(E2EEError, match=reason):
            open_vector(FIRST, FIRST["envelope"], **overrides)


def test_stranger_cannot_decrypt():
    with pytest.raises(E2EEError, match="'rkid' is not this identity's key"):
        e2ee.decrypt_message(
            X25519PrivateKey.generate(),
            FIRST["envelope"],
            expected_sender_id=FIRST["sender_id"],
            expected_receiver_id=FIRST["receiver_id"],
            expected_conv=FIRST["connection_id"],
            sender_pub=bytes.fromhex(FIRST["sender_pub_hex"]),
        )


def _without(envelope: dict, field: str) -> dict:
    return {k: v for k, v in envelope.items() if k != field}


MALFORMED = {
    "missing ct": _without(FIRST["envelope"], "ct"),
    "extra field": {**FIRST["envelope"], "extra": "x"},
    "number": {**FIRST["envelope"], "sid": 7},
    "leading zero": {**FIRST["envelope"], "sid": "07"},
    "signed": {**FIRST["envelope"], "ts": "+1767225600001"},
    "conv without c": {**FIRST["envelope"], "conv": "42"},
    "long mid": {**FIRST["envelope"], "mid": FIRST["envelope"]["mid"] + "AA"},
    "short iv": {**FIRST["envelope"], "iv": FIRST["envelope"]["iv"][:-4]},
    "padded base64": {**FIRST["envelope"], "mid": FIRST["envelope"]["mid"] + "=="},
    "standard base64": {**FIRST["envelope"], "mid": "+" + FIRST["envelope"]["mid"][1:]},
    "non-canonical base64": {**FIRST["envelope"], "mid": FIRST["envelope"]["mid"][:-1] + "x"},
    "ct not a padded length": {**FIRST["envelope"], "ct": FIRST["envelope"]["ct"][:-4]},
    "version 2": {**FIRST["envelope"], "v": "2"},
    "not a dict": [FIRST["envelope"]],
}


@pytest.mark.parametrize("envelope", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_envelope_is_refused_before_decryption(envelope):
    with pytest.raises(E2EEError) as caught:
        open_vector(FIRST, envelope)
    assert "decryption failed" not in str(caught.value)


def test_all_zero_shared_secret_is_refused_both_ways():
    zero = bytes(32)
    with pytest.raises(E2EEError, match="all-zero"):
        e2ee.encrypt_message(X25519PrivateKey.generate(), 1, zero, 2, 3, "hi")
    envelope = {**FIRST["envelope"], "skid": e2ee.kid(zero)}
    with pytest.raises(E2EEError, match="all-zero"):
        open_vector(FIRST, envelope, sender_pub=zero)


@pytest.mark.parametrize("vector", VECTORS["refusals"], ids=names(VECTORS["refusals"]))
def test_refusal_vector_is_refused_after_authentication(vector):
    """Authentic envelopes around a wrong plaintext: bad padding, not UTF-8, not a text message."""
    with pytest.raises(E2EEError, match=vector["reason"]):
        open_vector(vector, vector["envelope"])


def test_refusal_vectors_are_sealed_soundly():
    """The generator's hand sealing, given a well-padded text message, gives one that opens."""
    envelope = GENERATOR.seal_raw(0, GENERATOR.padded(GENERATOR.GOOD))
    assert open_vector(VECTORS["refusals"][0], envelope) == "hi"


# ---- round trips, recovery keys, backups, safety numbers ------------------------


@pytest.mark.parametrize("body", ["", "hi", "ü👻" * 300, "x" * 1000, '\u2028\x00"\\'])
def test_round_trip_both_directions(body):
    alice, bob = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    pub_a, pub_b = e2ee.public_raw(alice), e2ee.public_raw(bob)
    there = e2ee.encrypt_message(alice, 1, pub_b, 2, 5, body)
    back = e2ee.encrypt_message(bob, 2, pub_a, 1, 5, body)

    def opened(receiver: X25519PrivateKey, envelope: dict, sid: int, rid: int, sender_pub: bytes) -> str:
        return e2ee.decrypt_message(
            receiver,
            envelope,
            expected_sender_id=sid,
            expected_receiver_id=rid,
            expected_conv=5,
            sender_pub=sender_pub,
        )

    assert opened(bob, there, 1, 2, pub_a) == body and opened(alice, back, 2, 1, pub_b) == body
    assert len(e2ee.b64u_decode(there["ct"])) % 256 == 16


def test_lone_surrogate_body_cannot_be_sent():
    with pytest.raises(ValueError, match="valid Unicode"):
        e2ee.encrypt_message(
            X25519PrivateKey.generate(), 1, e2ee.public_raw(X25519PrivateKey.generate()), 2, 3, "\ud800"
        )


def test_recovery_key_format():
    raw = e2ee.new_recovery_key()
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){12}", e2ee.format_recovery(raw))
    assert e2ee.parse_recovery(e2ee.format_recovery(raw)) == raw


@pytest.mark.parametrize(
    "typed",
    [
        lambda t: t.lower(),
        lambda t: t.replace("-", ""),
        lambda t: t.replace("-", " "),
        lambda t: f"  {t.replace('-', ' - ')}\n",
        lambda t: t.replace("-", "\t").swapcase(),
    ],
    ids=["lower case", "no dashes", "spaces", "padded with spaces", "tabs and mixed case"],
)
def test_recovery_key_parsing_forgives_case_spaces_and_dashes(typed):
    raw = bytes(range(32))
    assert e2ee.parse_recovery(typed(e2ee.format_recovery(raw))) == raw


KEY = e2ee.format_recovery(bytes(range(32)))


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (KEY[:-1], "has 52 letters and digits; this one has 51"),
        (KEY + "A", "this one has 53"),
        ("", "this one has 0"),
        (KEY[:-1] + "0", "not '0'"),
        (KEY.replace("A", "1", 1), "not '1'"),
        (KEY + ".", "not '.'"),
        (KEY[:-1] + "é", "not 'é'"),
        ("A" * 51 + "B", "last character"),
    ],
    ids=["short", "long", "empty", "zero", "one", "punctuation", "non-ASCII", "unused bits set"],
)
def test_recovery_key_parsing_refuses_bad_input(typed, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        e2ee.parse_recovery(typed)


def test_backup_round_trip_and_every_wrong_input_fails():
    identity, recovery = X25519PrivateKey.generate(), e2ee.new_recovery_key()
    ik, pins = e2ee.private_pkcs8(identity), {"bob": "x" * 22, "__proto__": "y" * 22}
    sealed = e2ee.seal_backup(recovery, 7, 4, ik, pins)
    assert e2ee.open_backup(recovery, 7, 4, sealed) == (ik, pins)
    wrong_key = bytes([recovery[0] ^ 1]) + recovery[1:]
    blob = bytearray(e2ee.b64u_decode(sealed["blob"]))
    blob[3] ^= 1
    for args in [
        (wrong_key, 7, 4, sealed),
        (recovery, 8, 4, sealed),
        (recovery, 7, 5, sealed),
        (recovery, 7, 4, {**sealed, "blob": e2ee.b64u(bytes(blob))}),
        (recovery, 7, 4, {**sealed, "salt": sealed["salt"][:-2]}),
        (recovery, 7, 4, {"iv": sealed["iv"]}),
        (recovery, 7, 4, "not a record"),
    ]:
        with pytest.raises(E2EEError):
            e2ee.open_backup(*args)


def test_safety_number_shape_symmetry_and_key_substitution():
    a, b, mallory = (e2ee.public_raw(X25519PrivateKey.generate()) for _ in range(3))
    number = e2ee.safety_number("alice", a, "Bob", b)
    assert re.fullmatch(r"\d{5}( \d{5}){11}", number)
    assert number == e2ee.safety_number("bob", b, "ALICE", a)
    assert number != e2ee.safety_number("alice", a, "bob", mallory)
    with pytest.raises(ValueError):
        e2ee.safety_number("ålice", a, "bob", b)


def test_kid_is_22_characters_of_a_hash():
    pub = bytes.fromhex(FIRST["sender_pub_hex"])
    assert e2ee.kid(pub) == FIRST["envelope"]["skid"] and len(e2ee.kid(pub)) == 22
    with pytest.raises(ValueError):
        e2ee.kid(pub[:31])


# ---- across languages ----------------------------------------------------------


def run_js(job: dict) -> dict:
    """One job for static/e2ee.js through tests/js/encrypt_for_python.mjs."""
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(ROOT / "tests" / "js" / "encrypt_for_python.mjs")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


@needs_node
def test_python_decrypts_what_javascript_encrypted():
    bodies = ["hi", "", "Grüße 👻 你好", "x" * 1000, 'q"\\\n\t\x01\u2028']
    job = {"op": "encrypt", "sender_id": 9, "receiver_id": 7, "connection_id": 42, "bodies": bodies}
    job |= {key: MESSAGES[1][key] for key in ("sender_priv_hex", "receiver_pub_hex")}
    made = run_js(job)
    assert made["sender_pub_hex"] == MESSAGES[1]["sender_pub_hex"]
    opened = [open_vector(MESSAGES[1], envelope) for envelope in made["envelopes"]]
    assert opened == bodies
    assert len({envelope["mid"] for envelope in made["envelopes"]}) == len(bodies)


@needs_node
def test_python_opens_a_javascript_identity_and_backup():
    made = run_js({"op": "identity"})
    identity = e2ee.load_private_pkcs8(bytes.fromhex(made["pkcs8_hex"]))
    assert e2ee.public_raw(identity).hex() == made["pub_hex"]
    assert e2ee.kid(bytes.fromhex(made["pub_hex"])) == made["kid"]
    recovery, pins = e2ee.new_recovery_key(), {"bob": "b" * 22, "1000": "c" * 22, "999": "d" * 22}
    job = {"op": "seal_backup", "recovery_key": e2ee.format_recovery(recovery), "user_id": 7, "ctr": 2}
    sealed = run_js(job | {"ik_pkcs8_hex": made["pkcs8_hex"], "pins": pins})
    restored = e2ee.open_backup(recovery, 7, 2, sealed)
    assert restored == (bytes.fromhex(made["pkcs8_hex"]), pins)


@needs_node
def test_javascript_test_suite_passes():
    """node --test tests/js/: e2ee.js against the vectors, tampering and round trips."""
    done = subprocess.run(
        [NODE or "node", "--test", "tests/js/"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
