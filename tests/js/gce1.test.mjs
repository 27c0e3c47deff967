// GCE1 in JavaScript (ghostcache/static/e2ee.js) against the known answers that the Python
// implementation wrote (tests/vectors/gce1.json), plus tampering and round trips.
// Run: node --test tests/js/   (pytest runs it too). Reads files, writes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { webcrypto } from 'node:crypto';

// Node 18 (Debian 12's) has WebCrypto, but not yet as a global as browsers do.
if (!globalThis.crypto) globalThis.crypto = webcrypto;
const require = createRequire(import.meta.url);
const GCE1 = require('../../ghostcache/static/e2ee.js');
const VECTORS = JSON.parse(readFileSync(new URL('../vectors/gce1.json', import.meta.url), 'utf8'));
const { hex, fromHex, b64u, b64uDecode } = GCE1.bytes;
const { E2EEError } = GCE1;

async function parties(vector) {
  const sender = await GCE1.importPrivateRaw(fromHex(vector.sender_priv_hex));
  const receiver = await GCE1.importPrivateRaw(fromHex(vector.receiver_priv_hex));
  return { sender, receiver };
}

function expectations(vector, overrides = {}) {
  return {
    expectedSenderId: vector.sender_id,
    expectedReceiverId: vector.receiver_id,
    expectedConv: vector.connection_id,
    senderPub: fromHex(vector.sender_pub_hex),
    ...overrides,
  };
}

async function decryptVector(vector, envelope, overrides) {
  const receiver = await GCE1.importPrivateRaw(fromHex(vector.receiver_priv_hex));
  return GCE1.decryptMessage(receiver, envelope, expectations(vector, overrides));
}

/** One bit flipped: in the decoded bytes of a base64url field, in the last character otherwise. */
function flipped(envelope, field) {
  const value = envelope[field];
  if (['ct', 'iv', 'mid', 'skid', 'rkid'].includes(field)) {
    const bytes = b64uDecode(value);
    bytes[0] ^= 1;
    return { ...envelope, [field]: b64u(bytes) };
  }
  const last = String.fromCharCode(value.charCodeAt(value.length - 1) ^ 1);
  return { ...envelope, [field]: value.slice(0, -1) + last };
}

const first = VECTORS.messages[0];

for (const vector of VECTORS.messages) {
  test(`vector "${vector.name}": decrypts to its plaintext`, async () => {
    const { sender, receiver } = await parties(vector);
    assert.equal(hex(sender.pub), vector.sender_pub_hex);
    assert.equal(hex(receiver.pub), vector.receiver_pub_hex);
    assert.equal(await decryptVector(vector, vector.envelope), vector.plaintext);
  });

  test(`vector "${vector.name}": the same inputs give the same envelope`, async () => {
    const { sender } = await parties(vector);
    const envelope = await GCE1.encryptMessage(
      sender, vector.sender_id, fromHex(vector.receiver_pub_hex), vector.receiver_id,
      vector.connection_id, vector.plaintext,
      { tsMs: vector.ts_ms, mid: fromHex(vector.mid_hex), iv: fromHex(vector.iv_hex) },
    );
    assert.deepEqual(envelope, vector.envelope);
    assert.equal(b64uDecode(envelope.ct).length - 16, vector.padded_len);
  });
}

for (const vector of VECTORS.safety_numbers) {
  test(`safety number of ${vector.username_a} and ${vector.username_b}, both orders`, async () => {
    const a = [vector.username_a, fromHex(vector.pub_a_hex)];
    const b = [vector.username_b, fromHex(vector.pub_b_hex)];
    assert.equal(await GCE1.safetyNumber(...a, ...b), vector.safety_number);
    assert.equal(await GCE1.safetyNumber(...b, ...a), vector.safety_number);
  });
}

test('safety numbers differ when the server substitutes a key', async () => {
  const vector = VECTORS.safety_numbers[0];
  const other = VECTORS.safety_numbers[1];
  const substituted = await GCE1.safetyNumber(
    vector.username_a, fromHex(vector.pub_a_hex), vector.username_b, fromHex(other.pub_b_hex));
  assert.notEqual(substituted, vector.safety_number);
  assert.match(substituted, /^\d{5}( \d{5}){11}$/);
});

for (const vector of VECTORS.backups) {
  const recovery = () => GCE1.parseRecovery(vector.recovery_key);

  test('backup vector: the recovery key parses and the backup opens', async () => {
    assert.equal(hex(recovery()), vector.recovery_hex);
    assert.equal(GCE1.formatRecovery(recovery()), vector.recovery_key);
    const restored = await GCE1.openBackup(recovery(), vector.user_id, vector.ctr, vector);
    assert.equal(hex(restored.ikPkcs8), vector.ik_pkcs8_hex);
    assert.deepEqual({ ...restored.pins }, vector.pins);
    const identity = await GCE1.importPrivatePkcs8(restored.ikPkcs8);
    assert.equal(hex(identity.pub), vector.ik_pub_hex);
    assert.equal(await GCE1.kid(identity.pub), vector.kid);
  });

  test('backup vector: the same inputs seal to the same blob', async () => {
    const sealed = await GCE1.sealBackup(recovery(), vector.user_id, vector.ctr,
      fromHex(vector.ik_pkcs8_hex), vector.pins,
      { salt: b64uDecode(vector.salt), iv: b64uDecode(vector.iv) });
    assert.deepEqual(sealed, { salt: vector.salt, iv: vector.iv, blob: vector.blob });
  });

  test('backup vector: a wrong recovery key, user, counter or blob is refused', async () => {
    const wrongKey = recovery();
    wrongKey[0] ^= 1;
    const blob = b64uDecode(vector.blob);
    blob[5] ^= 1;
    const attempts = [
      [wrongKey, vector.user_id, vector.ctr, vector],
      [recovery(), vector.user_id + 1, vector.ctr, vector],
      [recovery(), vector.user_id, vector.ctr + 1, vector],
      [recovery(), vector.user_id, vector.ctr, { ...vector, blob: b64u(blob) }],
      [recovery(), vector.user_id, vector.ctr, { ...vector, iv: 'short' }],
    ];
    for (const args of attempts) await assert.rejects(GCE1.openBackup(...args), E2EEError);
  });
}

for (const vector of VECTORS.refusals) {
  test(`refusal vector "${vector.name}": refused after authentication`, async () => {
    await assert.rejects(decryptVector(vector, vector.envelope), (error) =>
      error instanceof E2EEError && error.message.includes(vector.reason));
  });
}

for (const field of ['ct', 'iv', 'mid', 'sid', 'rid', 'ts', 'conv', 'skid', 'rkid', 'v', 'alg']) {
  test(`a flipped bit in '${field}' is refused`, async () => {
    await assert.rejects(decryptVector(first, flipped(first.envelope, field)), E2EEError);
  });
}

for (const [field, key] of [['sid', 'expectedSenderId'], ['rid', 'expectedReceiverId'], ['conv', 'expectedConv']]) {
  test(`a flipped bit in '${field}' fails authentication even when the reader expects the new value`, async () => {
    const envelope = flipped(first.envelope, field);
    const value = field === 'conv' ? envelope.conv.slice(1) : envelope[field];
    await assert.rejects(decryptVector(first, envelope, { [key]: value }), /decryption failed/);
  });
}

test('a flipped bit in the time fails authentication (nothing else checks it)', async () => {
  await assert.rejects(decryptVector(first, flipped(first.envelope, 'ts')), /decryption failed/);
});

test('a malformed envelope is refused before decryption', async () => {
  const { ct, ...missing } = first.envelope;
  const bad = [
    missing,
    { ...first.envelope, extra: 'x' },
    { ...first.envelope, sid: 7 },
    { ...first.envelope, sid: '07' },
    { ...first.envelope, mid: first.envelope.mid + 'A' },
    { ...first.envelope, iv: first.envelope.iv + '==' },
    { ...first.envelope, ct: ct.slice(0, -4) },
    { ...first.envelope, skid: first.envelope.skid.slice(0, -1) + 'x' },
    null,
    [],
  ];
  for (const envelope of bad) await assert.rejects(decryptVector(first, envelope), E2EEError);
});

test('a substituted sender key or a stranger cannot decrypt', async () => {
  const stranger = await GCE1.generateIdentity();
  await assert.rejects(decryptVector(first, first.envelope, { senderPub: stranger.pub }), /pinned key/);
  await assert.rejects(
    GCE1.decryptMessage(stranger, first.envelope, expectations(first)), /this identity's key/);
});

test('an all-zero shared secret is refused', async () => {
  const { sender } = await parties(first);
  await assert.rejects(GCE1.encryptMessage(sender, 1, new Uint8Array(32), 2, 3, 'hi'), /all-zero/);
});

test('fresh identities: round trips both ways, non-extractable keys', async () => {
  assert.equal(await GCE1.supported(), true);
  const alice = await GCE1.generateIdentity();
  const bob = await GCE1.generateIdentity();
  assert.equal(alice.privateKey.extractable, false);
  assert.equal(alice.pkcs8.length, 48);
  for (const body of ['', 'hi', 'ü👻'.repeat(300), 'x'.repeat(1000)]) {
    const there = await GCE1.encryptMessage(alice, 1, bob.pub, 2, 5, body);
    assert.equal(await GCE1.decryptMessage(bob, there,
      { expectedSenderId: 1, expectedReceiverId: 2, expectedConv: 5, senderPub: alice.pub }), body);
    const back = await GCE1.encryptMessage(bob, '2', alice.pub, '1', '5', body);
    assert.equal(await GCE1.decryptMessage(alice, back,
      { expectedSenderId: '2', expectedReceiverId: '1', expectedConv: '5', senderPub: bob.pub }), body);
  }
});

test('a sender reads its own envelopes again; a flipped bit or another receiver key fails', async () => {
  const alice = await GCE1.generateIdentity();
  const bob = await GCE1.generateIdentity();
  const envelope = await GCE1.encryptMessage(alice, 7, bob.pub, 9, 42, 'mine, later');
  const expected = { expectedSenderId: 7, expectedReceiverId: 9, expectedConv: 42, receiverPub: bob.pub };
  assert.equal(await GCE1.decryptOwnMessage(alice, envelope, expected), 'mine, later');
  await assert.rejects(GCE1.decryptOwnMessage(alice, flipped(envelope, 'ct'), expected), E2EEError);
  await assert.rejects(GCE1.decryptOwnMessage(bob, envelope, { ...expected, receiverPub: alice.pub }), E2EEError);
  const carol = await GCE1.generateIdentity();
  await assert.rejects(GCE1.decryptOwnMessage(alice, envelope, { ...expected, receiverPub: carol.pub }), E2EEError);
});

test('a body that is not valid Unicode is refused', async () => {
  const { sender } = await parties(first);
  await assert.rejects(GCE1.encryptMessage(sender, 1, fromHex(first.receiver_pub_hex), 2, 3, 'a\uD800'), RangeError);
});

test('recovery keys: format, and parsing that forgives case, spaces and dashes only', () => {
  const raw = GCE1.newRecoveryKey();
  const text = GCE1.formatRecovery(raw);
  assert.match(text, /^[A-Z2-7]{4}(-[A-Z2-7]{4}){12}$/);
  assert.deepEqual(GCE1.parseRecovery(text), raw);
  assert.deepEqual(GCE1.parseRecovery(` ${text.toLowerCase().replaceAll('-', ' ')}\n`), raw);
  assert.deepEqual(GCE1.parseRecovery(text.replaceAll('-', '')), raw);
  assert.throws(() => GCE1.parseRecovery(text.slice(0, -1)), /52 letters and digits; this one has 51/);
  assert.throws(() => GCE1.parseRecovery(text + 'A'), /this one has 53/);
  assert.throws(() => GCE1.parseRecovery(text.replace(/[A-Z2-7]$/, '0')), /not '0'/);
  assert.throws(() => GCE1.parseRecovery('0'.repeat(52)), /not '0'/);
  // 52 characters carry 260 bits: the last character's 4 low bits must be zero.
  assert.throws(() => GCE1.parseRecovery('A'.repeat(51) + 'B'), /last character/);
  assert.throws(() => GCE1.formatRecovery(new Uint8Array(31)), RangeError);
});

test('base64url is strict', () => {
  assert.equal(b64u(fromHex('fbff')), '-_8');
  assert.throws(() => b64uDecode('-_9'), E2EEError); // unused bits set
  assert.throws(() => b64uDecode('ab=='), E2EEError);
  assert.throws(() => b64uDecode('a'), E2EEError);
  assert.throws(() => b64uDecode('a+b/'), E2EEError);
});
