// Helper for tests/test_e2ee_protocol.py: runs one GCE1 job in JavaScript (e2ee.js) so
// that Python can open what JavaScript sealed. Reads a JSON job on stdin, prints JSON.
// Not a test file itself (node --test does not pick up this name). Writes no files.
//   {"op": "encrypt", "sender_priv_hex", "receiver_pub_hex", "sender_id", "receiver_id",
//    "connection_id", "bodies": [...]}                -> {"sender_pub_hex", "envelopes": [...]}
//   {"op": "identity"}                                 -> {"pkcs8_hex", "pub_hex", "kid"}
//   {"op": "seal_backup", "recovery_key", "user_id", "ctr", "ik_pkcs8_hex", "pins"}
//                                                      -> {"salt", "iv", "blob"}
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { webcrypto } from 'node:crypto';

// Node 18 (Debian 12's) has WebCrypto, but not yet as a global as browsers do.
if (!globalThis.crypto) globalThis.crypto = webcrypto;
const require = createRequire(import.meta.url);
const GCE1 = require('../../ghostcache/static/e2ee.js');
const { hex, fromHex } = GCE1.bytes;

const jobs = {
  async encrypt(job) {
    const sender = await GCE1.importPrivateRaw(fromHex(job.sender_priv_hex));
    const envelopes = [];
    for (const body of job.bodies) {
      envelopes.push(await GCE1.encryptMessage(sender, job.sender_id, fromHex(job.receiver_pub_hex),
        job.receiver_id, job.connection_id, body));
    }
    return { sender_pub_hex: hex(sender.pub), envelopes };
  },
  async identity() {
    const identity = await GCE1.generateIdentity();
    return { pkcs8_hex: hex(identity.pkcs8), pub_hex: hex(identity.pub), kid: await GCE1.kid(identity.pub) };
  },
  async seal_backup(job) {
    return GCE1.sealBackup(GCE1.parseRecovery(job.recovery_key), job.user_id, job.ctr,
      fromHex(job.ik_pkcs8_hex), job.pins);
  },
};

const job = JSON.parse(readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(await jobs[job.op](job)) + '\n');
