// Entry of ghostcache/static/age.bundle.js: the age-encryption library ("typage")
// behind one small global, for static/decrypt.js on a file's page.
// Rebuild with `make assets` (npm ci, then esbuild: IIFE, minified, es2020).
import { Decrypter } from "age-encryption";

/** An Error whose `reason` says what went wrong: "bad_key", "wrong_key" or "damaged". */
function failure(reason, cause) {
  const error = new Error(reason === "damaged" ? "the file could not be decrypted" : "the key does not open this file");
  error.reason = reason;
  error.cause = cause;
  return error;
}

/**
 * Decrypt an age v1 file with an X25519 identity (AGE-SECRET-KEY-1...).
 * @param {string} keyString - the file's key as typed or pasted; spaces are ignored.
 * @param {Uint8Array} bytes - the whole encrypted file.
 * @returns {Promise<Uint8Array>} the plaintext; rejects with an Error carrying `reason`.
 */
async function decrypt(keyString, bytes) {
  const key = String(keyString).replace(/\s+/g, "").toUpperCase();  // bech32 ignores case
  const decrypter = new Decrypter();
  if (!key.startsWith("AGE-SECRET-KEY-1")) throw failure("bad_key");
  try {
    decrypter.addIdentity(key);
  } catch (cause) {
    throw failure("bad_key", cause);
  }
  try {
    return await decrypter.decrypt(bytes, "uint8array");
  } catch (cause) {
    const wrong = /no identity matched/.test(String(cause && cause.message));
    throw failure(wrong ? "wrong_key" : "damaged", cause);
  }
}

window.GhostcacheAge = Object.freeze({ decrypt });
