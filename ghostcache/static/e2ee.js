/* GhostCache GCE1: end-to-end encryption of one-to-one chats (docs/E2EE.md), with
 * WebCrypto only: X25519, HKDF-SHA256, AES-256-GCM, SHA-256 and SHA-512.
 *
 * The same protocol as ghostcache/e2ee.py, step for step; tests/vectors/gce1.json holds
 * known answers both reproduce (checked by tests/js/gce1.test.mjs and pytest).
 *
 * A plain script, not a module: in a browser it defines one global, window.GCE1; under
 * Node (require) it is module.exports. Everything that touches a key is async.
 * An identity is {privateKey: CryptoKey, pub: Uint8Array(32)}: WebCrypto cannot derive
 * the public key from a non-extractable private one, so the two travel together.
 * Ids (user ids, connection ids, counters, times) are non-negative safe integers or
 * their canonical decimal strings. Every refusal while decrypting is a GCE1.E2EEError.
 */
(function (root) {
  'use strict';

  var VERSION = '1';
  var ALG = 'GCE1-X25519-HKDF-SHA256-A256GCM';
  var ENVELOPE_FIELDS = ['v', 'alg', 'conv', 'sid', 'rid', 'skid', 'rkid', 'mid', 'ts', 'iv', 'ct'];
  var AAD_FIELDS = ENVELOPE_FIELDS.slice(0, 9);
  var B64U_LENGTHS = { skid: 16, rkid: 16, mid: 16, iv: 12 };
  var PAD_BLOCK = 256;
  var TAG_BYTES = 16;
  var RECOVERY_BYTES = 32;
  var SAFETY_ITERATIONS = 5200;
  var DECIMAL = /^(0|[1-9][0-9]{0,18})$/;
  // PKCS#8 (RFC 8410) of an X25519 private key, before its 32 raw bytes.
  var PKCS8_PREFIX = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e,
    0x04, 0x22, 0x04, 0x20];
  var X25519 = { name: 'X25519' };

  class E2EEError extends Error {
    /** A refused envelope or backup: malformed, mismatched, tampered or the wrong key. */
    constructor(reason) {
      super(reason);
      this.name = 'E2EEError';
      this.reason = reason;
    }
  }

  function subtle() {
    if (!root.crypto || !root.crypto.subtle) throw new E2EEError('WebCrypto is not available');
    return root.crypto.subtle;
  }

  // ---- bytes ------------------------------------------------------------------

  var B64U_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  var B32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  var utf8Encoder = new TextEncoder();
  var utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  /** Bytes as characters of a 2^bits alphabet, most significant bit first, no padding. */
  function toRadix(bytes, alphabet, bits) {
    var out = '';
    var acc = 0;
    var held = 0;
    for (var i = 0; i < bytes.length; i++) {
      acc = ((acc << 8) | bytes[i]) & 0xffff;
      held += 8;
      while (held >= bits) {
        held -= bits;
        out += alphabet[(acc >> held) & ((1 << bits) - 1)];
      }
    }
    if (held > 0) out += alphabet[(acc << (bits - held)) & ((1 << bits) - 1)];
    return out;
  }

  /** The inverse of toRadix, or null when a character is not in the alphabet or the
   * text is not canonical (a left-over character, or unused bits that are not zero). */
  function fromRadix(text, alphabet, bits) {
    var out = new Uint8Array(Math.floor((text.length * bits) / 8));
    var acc = 0;
    var held = 0;
    var n = 0;
    for (var i = 0; i < text.length; i++) {
      var value = alphabet.indexOf(text[i]);
      if (value < 0) return null;
      acc = ((acc << bits) | value) & 0xffff;
      held += bits;
      if (held >= 8) {
        held -= 8;
        out[n++] = (acc >> held) & 0xff;
      }
    }
    return toRadix(out, alphabet, bits) === text ? out : null;
  }

  /** Base64url without padding. */
  function b64u(bytes) {
    return toRadix(bytes, B64U_ALPHABET, 6);
  }

  /** Strict base64url (no padding, unused bits zero); throws E2EEError otherwise. */
  function b64uDecode(text) {
    var bytes = typeof text === 'string' ? fromRadix(text, B64U_ALPHABET, 6) : null;
    if (bytes === null) throw new E2EEError('not base64url');
    return bytes;
  }

  function hex(bytes) {
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, '0'); }).join('');
  }

  function fromHex(text) {
    if (!/^([0-9a-fA-F]{2})*$/.test(text)) throw new TypeError('not hexadecimal: ' + text);
    return Uint8Array.from(text.match(/../g) || [], function (pair) { return parseInt(pair, 16); });
  }

  function concat() {
    var parts = Array.from(arguments, function (p) {
      return typeof p === 'string' ? utf8Encoder.encode(p) : new Uint8Array(p);
    });
    var out = new Uint8Array(parts.reduce(function (n, p) { return n + p.length; }, 0));
    parts.reduce(function (at, p) { out.set(p, at); return at + p.length; }, 0);
    return out;
  }

  function compareBytes(a, b) {
    for (var i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  }

  function randomBytes(n) {
    return root.crypto.getRandomValues(new Uint8Array(n));
  }

  function decimal(value, what) {
    var text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
    if (typeof text !== 'string' || !DECIMAL.test(text)) {
      throw new RangeError(what + ' must be a non-negative integer, not ' + String(value));
    }
    return text;
  }

  /** The plaintext JSON {"t":"text","body":...} as UTF-8, compact as Python writes it;
   * lone surrogates are refused (UTF-8 and Python cannot carry them). */
  function messageJson(body) {
    if (typeof body !== 'string') throw new TypeError('a message body is a string');
    if (!isWellFormed(body)) throw new RangeError('text must be valid Unicode (no lone surrogates)');
    return utf8Encoder.encode(JSON.stringify({ t: 'text', body: body }));
  }

  function isWellFormed(text) {
    if (typeof text.isWellFormed === 'function') return text.isWellFormed();
    return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
  }

  async function sha(name, bytes) {
    return new Uint8Array(await subtle().digest(name, bytes));
  }

  async function hkdf(ikm, salt, info) {
    var base = await subtle().importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
    var params = { name: 'HKDF', hash: 'SHA-256', salt: salt, info: info };
    var bits = await subtle().deriveBits(params, base, 256);
    return subtle().importKey('raw', bits, 'AES-GCM', false, ['encrypt', 'decrypt']);
  }

  async function aesEncrypt(key, iv, plain, aad) {
    var params = { name: 'AES-GCM', iv: iv, additionalData: aad, tagLength: 128 };
    return new Uint8Array(await subtle().encrypt(params, key, plain));
  }

  async function aesDecrypt(key, iv, sealed, aad, reason) {
    try {
      var params = { name: 'AES-GCM', iv: iv, additionalData: aad, tagLength: 128 };
      return new Uint8Array(await subtle().decrypt(params, key, sealed));
    } catch (error) {
      throw new E2EEError(reason);
    }
  }

  // ---- keys -------------------------------------------------------------------

  /** Feature detection: true when this browser can generate X25519 keys. */
  async function supported() {
    try {
      await subtle().generateKey(X25519, false, ['deriveBits']);
      return true;
    } catch (error) {
      return false;
    }
  }

  /** A new identity {privateKey (non-extractable), pub} and its PKCS#8 export, made once
   * for the backup: seal it with sealBackup, then drop it. */
  async function generateIdentity() {
    var pair = await subtle().generateKey(X25519, true, ['deriveBits']);
    var pkcs8 = new Uint8Array(await subtle().exportKey('pkcs8', pair.privateKey));
    var identity = await importPrivatePkcs8(pkcs8, false);
    return { privateKey: identity.privateKey, pub: identity.pub, pkcs8: pkcs8 };
  }

  /** An identity {privateKey, pub} from PKCS#8 bytes (from a backup). */
  async function importPrivatePkcs8(bytes, extractable) {
    var once;
    try {
      once = await subtle().importKey('pkcs8', bytes, X25519, true, ['deriveBits']);
    } catch (error) {
      throw new E2EEError('the identity key is not an X25519 PKCS#8 key');
    }
    var pub = b64uDecode((await subtle().exportKey('jwk', once)).x);
    var privateKey = await subtle().importKey('pkcs8', bytes, X25519, !!extractable, ['deriveBits']);
    return { privateKey: privateKey, pub: pub };
  }

  /** An identity from the raw 32-byte private scalar (known-answer vectors). */
  function importPrivateRaw(raw, extractable) {
    if (raw.length !== 32) throw new RangeError('an X25519 private key has 32 bytes');
    return importPrivatePkcs8(concat(PKCS8_PREFIX, raw), extractable);
  }

  /** Key id: b64u(SHA-256("GCE1 kid" || pub)[:16]). */
  async function kid(pub) {
    if (!pub || pub.length !== 32) throw new RangeError('an X25519 public key has 32 bytes');
    return b64u((await sha('SHA-256', concat('GCE1 kid', pub))).slice(0, 16));
  }

  // ---- recovery key and backup -----------------------------------------------

  function newRecoveryKey() {
    return randomBytes(RECOVERY_BYTES);
  }

  /** Base32 (RFC 4648, upper case, no padding) in groups of 4 joined by '-'. */
  function formatRecovery(raw) {
    if (!raw || raw.length !== RECOVERY_BYTES) throw new RangeError('a recovery key has 32 bytes');
    return toRadix(raw, B32_ALPHABET, 5).match(/.{1,4}/g).join('-');
  }

  /** The 32 bytes of a typed recovery key; case, whitespace and '-' do not matter.
   * Throws a RangeError whose message can be shown as is. */
  function parseRecovery(text) {
    var compact = String(text).replace(/[ \t\n\r\f\v-]/g, '');
    var bad = compact.match(/[^A-Za-z2-7]/);
    if (bad) {
      throw new RangeError('Recovery keys use only the letters A-Z and digits 2-7, not \'' + bad[0] + '\'.');
    }
    if (compact.length !== 52) {
      throw new RangeError('A recovery key has 52 letters and digits; this one has ' + compact.length + '.');
    }
    var raw = fromRadix(compact.toUpperCase(), B32_ALPHABET, 5);
    if (raw === null) throw new RangeError('The last character of this recovery key is wrong.');
    return raw;
  }

  async function backupKey(recovery, salt) {
    if (!recovery || recovery.length !== RECOVERY_BYTES) throw new RangeError('a recovery key has 32 bytes');
    return hkdf(recovery, salt, utf8Encoder.encode('GCE1 backup'));
  }

  function backupAad(userId, ctr) {
    return utf8Encoder.encode('GCE1 backup\n' + decimal(userId, 'userId') + '\n' + decimal(ctr, 'ctr'));
  }

  /** Pins (an object or a Map) as [username, kid] pairs in code-unit order. */
  function pinEntries(pins) {
    var entries = pins instanceof Map ? Array.from(pins.entries()) : Object.entries(pins || {});
    return entries.sort(function (a, b) { return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0; });
  }

  /** The backup record {salt, iv, blob} (b64u); opts.salt and opts.iv for vectors. */
  async function sealBackup(recovery, userId, ctr, ikPkcs8, pins, opts) {
    opts = opts || {};
    var salt = opts.salt || randomBytes(16);
    var iv = opts.iv || randomBytes(12);
    if (salt.length !== 16 || iv.length !== 12) throw new RangeError('a backup salt has 16 bytes and an iv 12');
    // Written by hand so the key order is fixed (JSON.stringify puts integer-like keys first).
    var pinText = pinEntries(pins).map(function (e) {
      if (typeof e[1] !== 'string') throw new TypeError('pins map usernames to key ids');
      return JSON.stringify(e[0]) + ':' + JSON.stringify(e[1]);
    }).join(',');
    var text = '{"ik":' + JSON.stringify(b64u(ikPkcs8)) + ',"pins":{' + pinText + '},"ctr":' +
      decimal(ctr, 'ctr') + '}';
    var key = await backupKey(recovery, salt);
    var blob = await aesEncrypt(key, iv, utf8Encoder.encode(text), backupAad(userId, ctr));
    return { salt: b64u(salt), iv: b64u(iv), blob: b64u(blob) };
  }

  function backupField(backup, name, size) {
    var data = null;
    try {
      data = b64uDecode(backup[name]);
    } catch (error) {
      data = null;
    }
    if (data === null || (size ? data.length !== size : data.length <= TAG_BYTES)) {
      throw new E2EEError('backup field \'' + name + '\' is missing or malformed');
    }
    return data;
  }

  /** {ikPkcs8, pins} from a backup record; E2EEError for a wrong recovery key, another
   * user's or counter's backup, or a damaged record. */
  async function openBackup(recovery, userId, ctr, backup) {
    if (!backup || typeof backup !== 'object') throw new E2EEError('the backup is missing');
    var salt = backupField(backup, 'salt', 16);
    var iv = backupField(backup, 'iv', 12);
    var blob = backupField(backup, 'blob', 0);
    var key = await backupKey(recovery, salt);
    var plain = await aesDecrypt(key, iv, blob, backupAad(userId, ctr),
      'wrong recovery key, or the backup is damaged');
    var restored = parseBackup(plain, decimal(ctr, 'ctr'));
    await importPrivatePkcs8(restored.ikPkcs8, false);
    return restored;
  }

  function parseBackup(plain, ctrText) {
    var payload;
    try {
      payload = JSON.parse(utf8Decoder.decode(plain));
    } catch (error) {
      throw new E2EEError('the backup\'s contents are malformed');
    }
    var ok = payload && typeof payload === 'object' && !Array.isArray(payload) &&
      typeof payload.ik === 'string' && Number.isSafeInteger(payload.ctr) &&
      String(payload.ctr) === ctrText && payload.pins && typeof payload.pins === 'object' &&
      !Array.isArray(payload.pins);
    if (!ok) throw new E2EEError('the backup\'s contents are malformed');
    var pins = Object.create(null); // so a username like "__proto__" stays a plain key
    Object.keys(payload.pins).forEach(function (name) {
      if (typeof payload.pins[name] !== 'string') throw new E2EEError('the backup\'s pins are malformed');
      pins[name] = payload.pins[name];
    });
    return { ikPkcs8: b64uDecode(payload.ik), pins: pins };
  }

  // ---- messages ---------------------------------------------------------------

  function convId(connectionId) {
    return 'c' + decimal(connectionId, 'connectionId');
  }

  async function sharedSecret(privateKey, peerPub) {
    var bits;
    try {
      var peer = await subtle().importKey('raw', peerPub, X25519, true, []);
      bits = new Uint8Array(await subtle().deriveBits({ name: 'X25519', public: peer }, privateKey, 256));
    } catch (error) {
      bits = new Uint8Array(32); // WebCrypto refuses low-order points itself
    }
    if (bits.every(function (b) { return b === 0; })) {
      throw new E2EEError('the peer\'s key gives an all-zero shared secret');
    }
    return bits;
  }

  async function pairSalt(pubA, pubB) {
    var ordered = compareBytes(pubA, pubB) <= 0 ? [pubA, pubB] : [pubB, pubA];
    return sha('SHA-256', concat('GCE1 pair salt', ordered[0], ordered[1]));
  }

  /** K = HKDF(S, pair salt, "GCE1 msg key" 0x00 conv 0x00 mid), as an AES-GCM key. */
  async function messageKey(identity, peerPub, conv, mid) {
    var shared = await sharedSecret(identity.privateKey, peerPub);
    var info = concat('GCE1 msg key', [0], conv, [0], mid);
    return hkdf(shared, await pairSalt(identity.pub, peerPub), info);
  }

  function aad(envelope) {
    return utf8Encoder.encode(['GCE1'].concat(AAD_FIELDS.map(function (f) { return envelope[f]; })).join('\n'));
  }

  function pad(data) {
    var padded = new Uint8Array(Math.ceil((data.length + 1) / PAD_BLOCK) * PAD_BLOCK);
    padded.set(data);
    padded[data.length] = 0x80;
    return padded;
  }

  /** Strict: 0x80, then fewer than PAD_BLOCK zero bytes, to a multiple of PAD_BLOCK. */
  function unpad(padded) {
    var end = padded.length - 1;
    while (end >= 0 && padded[end] === 0) end--;
    if (padded.length % PAD_BLOCK || end < 0 || padded[end] !== 0x80 || padded.length - end > PAD_BLOCK) {
      throw new E2EEError('the plaintext\'s padding is wrong');
    }
    return padded.subarray(0, end);
  }

  /** The envelope of one text message from `sender` (an identity); opts.tsMs, opts.mid
   * and opts.iv are now/random unless given (for vectors). */
  async function encryptMessage(sender, senderId, receiverPub, receiverId, connectionId, body, opts) {
    opts = opts || {};
    var mid = opts.mid || randomBytes(16);
    var iv = opts.iv || randomBytes(12);
    if (mid.length !== 16 || iv.length !== 12) throw new RangeError('a message id has 16 bytes and an iv 12');
    var envelope = {
      v: VERSION,
      alg: ALG,
      conv: convId(connectionId),
      sid: decimal(senderId, 'senderId'),
      rid: decimal(receiverId, 'receiverId'),
      skid: await kid(sender.pub),
      rkid: await kid(receiverPub),
      mid: b64u(mid),
      ts: decimal(opts.tsMs === undefined ? Date.now() : opts.tsMs, 'tsMs'),
    };
    var padded = pad(messageJson(body));
    var key = await messageKey(sender, receiverPub, envelope.conv, mid);
    envelope.iv = b64u(iv);
    envelope.ct = b64u(await aesEncrypt(key, iv, padded, aad(envelope)));
    return envelope;
  }

  function refuseUnless(ok, reason) {
    if (!ok) throw new E2EEError(reason);
  }

  function isField(name) {
    return ENVELOPE_FIELDS.includes(name);
  }

  /** A copy of the envelope, if it has exactly the GCE1 fields with well-formed values. */
  function checkShape(envelope) {
    refuseUnless(envelope && typeof envelope === 'object' && !Array.isArray(envelope), 'the envelope is not an object');
    var keys = Object.keys(envelope);
    refuseUnless(keys.length === ENVELOPE_FIELDS.length && keys.every(isField),
      'the envelope does not have exactly the GCE1 fields');
    refuseUnless(keys.every(function (f) { return typeof envelope[f] === 'string'; }), 'envelope fields must be strings');
    refuseUnless(envelope.v === VERSION && envelope.alg === ALG, 'unsupported envelope version or algorithm');
    refuseUnless(envelope.conv[0] === 'c' && DECIMAL.test(envelope.conv.slice(1)), 'malformed field \'conv\'');
    ['sid', 'rid', 'ts'].forEach(function (f) {
      refuseUnless(DECIMAL.test(envelope[f]), 'malformed field \'' + f + '\'');
    });
    Object.keys(B64U_LENGTHS).forEach(function (f) {
      refuseUnless(b64uField(envelope, f).length === B64U_LENGTHS[f], 'field \'' + f + '\' has the wrong length');
    });
    var ctLength = b64uField(envelope, 'ct').length;
    refuseUnless(ctLength > TAG_BYTES && (ctLength - TAG_BYTES) % PAD_BLOCK === 0,
      'field \'ct\' is not a padded plaintext\'s length');
    var copy = {};
    ENVELOPE_FIELDS.forEach(function (f) { copy[f] = envelope[f]; });
    return copy;
  }

  function b64uField(envelope, name) {
    try {
      return b64uDecode(envelope[name]);
    } catch (error) {
      throw new E2EEError('malformed field \'' + name + '\'');
    }
  }

  function expect(envelope, name, expected, what) {
    if (envelope[name] !== expected) throw new E2EEError('\'' + name + '\' is not ' + what);
  }

  function expectedDecimal(value, what) {
    try {
      return decimal(value, what);
    } catch (error) {
      throw new E2EEError(error.message);
    }
  }

  /** The body of {"t": "text", "body": string}, the only GCE1 message type. */
  function parsePlaintext(data) {
    var message = null;
    try {
      message = JSON.parse(utf8Decoder.decode(data));
    } catch (error) {
      message = null;
    }
    var ok = message && typeof message === 'object' && !Array.isArray(message) &&
      Object.keys(message).length === 2 && Object.prototype.hasOwnProperty.call(message, 'body') &&
      message.t === 'text' && typeof message.body === 'string' && isWellFormed(message.body);
    if (!ok) throw new E2EEError('the plaintext is not {"t": "text", "body": <string>}');
    return message.body;
  }

  /** The body of an envelope shown in conversation expected.expectedConv (a connection
   * id), from expected.expectedSenderId whose pinned key is expected.senderPub, for
   * `receiver` (an identity). Every header check comes before decryption. */
  async function decryptMessage(receiver, envelope, expected) {
    expected = expected || {};
    var env = checkShape(envelope);
    if (!expected.senderPub || expected.senderPub.length !== 32) {
      throw new E2EEError('the sender\'s public key does not have 32 bytes');
    }
    expectRoute(env, expected);
    expect(env, 'skid', await kid(expected.senderPub), 'the sender\'s pinned key');
    expect(env, 'rkid', await kid(receiver.pub), 'this identity\'s key');
    return openChecked(env, receiver, expected.senderPub,
      'decryption failed: the envelope was altered or not sealed for this key');
  }

  /** The body of an envelope that `sender` (this identity) sealed for expected.receiverPub,
   * from expected.expectedSenderId to expected.expectedReceiverId in conversation
   * expected.expectedConv: a sender reading its own messages again (after a reload, on
   * another device). The message key is symmetric; the checks mirror decryptMessage's. */
  async function decryptOwnMessage(sender, envelope, expected) {
    expected = expected || {};
    var env = checkShape(envelope);
    if (!expected.receiverPub || expected.receiverPub.length !== 32) {
      throw new E2EEError('the receiver\'s public key does not have 32 bytes');
    }
    expectRoute(env, expected);
    expect(env, 'skid', await kid(sender.pub), 'this identity\'s key');
    expect(env, 'rkid', await kid(expected.receiverPub), 'the receiver\'s pinned key');
    return openChecked(env, sender, expected.receiverPub,
      'decryption failed: the envelope was altered or not sealed with this key');
  }

  /** Both readers' first checks: sender, receiver and conversation are the expected ones. */
  function expectRoute(env, expected) {
    expect(env, 'sid', expectedDecimal(expected.expectedSenderId, 'expectedSenderId'), 'the expected sender');
    expect(env, 'rid', expectedDecimal(expected.expectedReceiverId, 'expectedReceiverId'), 'the expected receiver');
    expect(env, 'conv', 'c' + expectedDecimal(expected.expectedConv, 'expectedConv'), 'this conversation');
  }

  /** Decrypts an envelope whose header passed every check, with the pair's message key. */
  async function openChecked(env, own, peerPub, failure) {
    var key = await messageKey(own, peerPub, env.conv, b64uDecode(env.mid));
    var padded = await aesDecrypt(key, b64uDecode(env.iv), b64uDecode(env.ct), aad(env), failure);
    return parsePlaintext(unpad(padded));
  }

  // ---- safety numbers ---------------------------------------------------------

  /** 30 digits for one side: SHA-512 iterated over the public key and the username. */
  async function fingerprint(username, pub) {
    if (!/^[\x00-\x7f]*$/.test(username) || !pub || pub.length !== 32) {
      throw new RangeError('safety numbers need an ASCII username and a 32-byte public key');
    }
    var digest = await sha('SHA-512', concat([0, 0], pub, username.toLowerCase()));
    for (var i = 0; i < SAFETY_ITERATIONS; i++) digest = await sha('SHA-512', concat(digest, pub));
    var digits = '';
    for (var at = 0; at < 30; at += 5) {
      var chunk = 0;
      for (var j = 0; j < 5; j++) chunk = chunk * 256 + digest[at + j]; // 40 bits: exact in a double
      digits += String(chunk % 100000).padStart(5, '0');
    }
    return digits;
  }

  /** 60 digits in 12 groups of 5; the same whichever side computes it. */
  async function safetyNumber(userA, pubA, userB, pubB) {
    var sides = [await fingerprint(userA, pubA), await fingerprint(userB, pubB)].sort();
    return sides.join('').match(/.{5}/g).join(' ');
  }

  var GCE1 = Object.freeze({
    VERSION: VERSION,
    ALG: ALG,
    E2EEError: E2EEError,
    supported: supported,
    generateIdentity: generateIdentity,
    importPrivatePkcs8: importPrivatePkcs8,
    importPrivateRaw: importPrivateRaw,
    kid: kid,
    newRecoveryKey: newRecoveryKey,
    formatRecovery: formatRecovery,
    parseRecovery: parseRecovery,
    sealBackup: sealBackup,
    openBackup: openBackup,
    convId: convId,
    encryptMessage: encryptMessage,
    decryptMessage: decryptMessage,
    decryptOwnMessage: decryptOwnMessage,
    safetyNumber: safetyNumber,
    bytes: Object.freeze({ b64u: b64u, b64uDecode: b64uDecode, hex: hex, fromHex: fromHex }),
  });

  if (typeof module === 'object' && module && module.exports) {
    module.exports = GCE1;
  } else {
    root.GCE1 = GCE1;
  }
})(globalThis);
