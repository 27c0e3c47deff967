/* The browser half of bench/e2ee.py: times GCE1 (ghostcache/static/e2ee.js) in the page,
 * with performance.now() around each call, so that no Playwright round trip is measured.
 * Defines one global, GCE1Bench; every function takes and returns plain JSON values. */
(function (root) {
  'use strict';

  var G = root.GCE1;
  var SENDER = 1;
  var RECEIVER = 2;
  var CONNECTION = 7;
  var state = {};

  function expected(senderPub) {
    return { expectedSenderId: SENDER, expectedReceiverId: RECEIVER, expectedConv: CONNECTION, senderPub: senderPub };
  }

  /** Two identities made in the page (sender and receiver); their public keys, b64u. */
  async function setup() {
    state.sender = await G.generateIdentity();
    state.receiver = await G.generateIdentity();
    return { sender: G.bytes.b64u(state.sender.pub), receiver: G.bytes.b64u(state.receiver.pub) };
  }

  /** What Python made, opened here: its envelope to our receiver, and our safety number with
   * its key; plus an envelope for Python to open in turn. */
  async function crossCheck(args) {
    var pythonPub = G.bytes.b64uDecode(args.pythonPub);
    var opened = null;
    var error = '';
    try {
      opened = await G.decryptMessage(state.receiver, args.envelope, expected(pythonPub));
    } catch (exc) {
      error = String(exc);
    }
    return {
      opened: opened,
      error: error,
      safety: await G.safetyNumber('browser', state.receiver.pub, 'python', pythonPub),
      envelope: await G.encryptMessage(state.sender, SENDER, pythonPub, RECEIVER, CONNECTION, args.body),
    };
  }

  /** Run `step(i)` up to `count` times or until `capMs` pass; the milliseconds of each run. */
  async function timed(count, capMs, step) {
    var times = [];
    var deadline = performance.now() + capMs;
    for (var i = 0; i < count && performance.now() < deadline; i++) {
      var started = performance.now();
      await step(i);
      times.push(performance.now() - started);
    }
    return times;
  }

  /** Encrypt then decrypt `body` up to `count` times each; times, envelope size, wrong bodies. */
  async function messages(body, count, capMs) {
    var envelopes = [];
    var wrong = 0;
    var encrypt = await timed(count, capMs, async function () {
      envelopes.push(await G.encryptMessage(state.sender, SENDER, state.receiver.pub, RECEIVER, CONNECTION, body));
    });
    var decrypt = await timed(count, capMs, async function (i) {
      var envelope = envelopes[i % envelopes.length];
      if (await G.decryptMessage(state.receiver, envelope, expected(state.sender.pub)) !== body) wrong++;
    });
    var size = new TextEncoder().encode(JSON.stringify(envelopes[0])).length;
    return { encrypt: encrypt, decrypt: decrypt, envelope_bytes: size, wrong: wrong };
  }

  /** Every timing loop; bodies maps a label to a message body. */
  async function measure(args) {
    var out = { isolated: root.crossOriginIsolated, secure: root.isSecureContext, bodies: {} };
    for (var label of Object.keys(args.bodies)) {
      await messages(args.bodies[label], args.warmup, args.capMs); // JIT and caches, not counted
      out.bodies[label] = await messages(args.bodies[label], args.count, args.capMs);
    }
    out.safety = await timed(args.safetyCount, args.capMs, function () {
      return G.safetyNumber('sender', state.sender.pub, 'receiver', state.receiver.pub);
    });
    return out;
  }

  root.GCE1Bench = Object.freeze({ setup: setup, crossCheck: crossCheck, measure: measure });
})(globalThis);
