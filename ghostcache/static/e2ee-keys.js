/* GhostCache: this browser's end-to-end encryption keys (docs/E2EE.md, "Browser UI").
 *
 * One global, window.GCEKeys, shared by the E2EE pages (e2ee-setup.js, e2ee-chat.js,
 * e2ee-safety.js): the IndexedDB record of the signed-in user, the JSON calls to the
 * server's /e2ee routes, and pinning. Nothing here ever sends or logs a private key or a
 * recovery key.
 *
 * IndexedDB database `ghostcache-e2ee`, store `accounts`, one record per user id:
 *   {userId, kid, pub: Uint8Array, privateKey: CryptoKey (non-extractable),
 *    pins: Map username -> kid, verified: Map username -> kid, pubs: Map kid -> Uint8Array}
 * `pubs` holds the public keys of every key this browser trusted (pinned or its own), so
 * that messages sealed with an earlier key of a contact still open after a change.
 * Maps, not objects: "__proto__" is a valid username. */
(function () {
  'use strict';

  var DB_NAME = 'ghostcache-e2ee';
  var STORE = 'accounts';
  var TOO_OLD = 'This browser cannot do end-to-end encryption: it lacks X25519 in WebCrypto. ' +
    'It needs Chrome or Edge 133, Firefox 130 or Safari 17, or newer. Everything else in GhostCache keeps working.';

  // ---- IndexedDB ------------------------------------------------------------------

  function openDb() {
    return new Promise(function (resolve, reject) {
      if (!window.indexedDB) {
        reject(new Error('This browser has no IndexedDB (a private window may block it).'));
        return;
      }
      var request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = function () {
        request.result.createObjectStore(STORE, { keyPath: 'userId' });
      };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error || new Error('IndexedDB refused to open')); };
    });
  }

  /** fn(store, done) inside one transaction; resolves with what done() was given. */
  function withStore(mode, fn) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(STORE, mode);
        var result;
        tx.oncomplete = function () { db.close(); resolve(result); };
        tx.onerror = tx.onabort = function () { db.close(); reject(tx.error || new Error('IndexedDB failed')); };
        fn(tx.objectStore(STORE), function (value) { result = value; });
      });
    });
  }

  function load(userId) {
    return withStore('readonly', function (store, done) {
      var get = store.get(Number(userId));
      get.onsuccess = function () { done(get.result || null); };
    });
  }

  /** Read, change and write one user's record in one transaction (tabs may race);
   * change(record or null) returns the record to store, or null to leave it. */
  function update(userId, change) {
    return withStore('readwrite', function (store, done) {
      var get = store.get(Number(userId));
      get.onsuccess = function () {
        var next = change(get.result || null);
        if (next) store.put(next);
        done(next || get.result || null);
      };
    });
  }

  function remove(userId) {
    return withStore('readwrite', function (store) { store.delete(Number(userId)); });
  }

  /** A fresh record for an identity {privateKey, pub}; pins from a backup are merged in. */
  function newRecord(userId, identity, kid, pins) {
    var record = { userId: Number(userId), kid: kid, pub: identity.pub, privateKey: identity.privateKey,
      pins: new Map(), verified: new Map(), pubs: new Map([[kid, identity.pub]]) };
    Object.keys(pins || {}).forEach(function (name) { record.pins.set(name, pins[name]); });
    return record;
  }

  /** Keep the identity (and the pins and verifications already here, for this user). */
  function saveIdentity(userId, identity, kid, pins) {
    return update(userId, function (old) {
      var record = newRecord(userId, identity, kid, pins);
      if (old) {
        old.pins.forEach(function (value, name) { if (!record.pins.has(name)) record.pins.set(name, value); });
        record.verified = old.verified;
        old.pubs.forEach(function (pub, k) { record.pubs.set(k, pub); });
      }
      return record;
    }).then(function (record) {
      if (navigator.storage && navigator.storage.persist) navigator.storage.persist().catch(function () {});
      return record;
    });
  }

  /** Trust `kid` (with its public key) as `username`'s key; a new key is no longer verified. */
  function pin(userId, username, kid, pub) {
    return update(userId, function (record) {
      if (!record) return null;
      if (record.verified.get(username) !== kid) record.verified.delete(username);
      record.pins.set(username, kid);
      record.pubs.set(kid, pub);
      return record;
    });
  }

  function markVerified(userId, username, kid, pub) {
    return update(userId, function (record) {
      if (!record) return null;
      record.pins.set(username, kid);
      record.pubs.set(kid, pub);
      record.verified.set(username, kid);
      return record;
    });
  }

  /** 'new' (nothing pinned), 'same' or 'changed' for a contact's current kid. */
  function pinState(record, username, kid) {
    var pinned = record && record.pins.get(username);
    return !pinned ? 'new' : pinned === kid ? 'same' : 'changed';
  }

  // ---- the server -------------------------------------------------------------------

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute('content') : '';
  }

  /** {status, data} of a JSON call; data is null when the body is not JSON. */
  function call(method, url, body) {
    var headers = { 'Accept': 'application/json' };
    if (method !== 'GET') headers['X-CSRFToken'] = csrfToken();
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(url, {
      method: method,
      credentials: 'same-origin',
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        return { status: response.status, data: data, response: response };
      });
    });
  }

  /** A user's published identity {kid, pub: Uint8Array, username}, or null (404). The
   * kid is recomputed here: the server's word for it is not taken. */
  function identityOf(userId) {
    return call('GET', '/e2ee/identity/' + encodeURIComponent(String(userId))).then(function (answer) {
      if (answer.status === 404) return null;
      if (answer.status !== 200 || !answer.data) throw new Error('The server answered ' + answer.status + '.');
      var pub = GCE1.bytes.b64uDecode(answer.data.pub);
      return GCE1.kid(pub).then(function (kid) {
        return { kid: kid, pub: pub, username: answer.data.username, userId: answer.data.user_id };
      });
    });
  }

  /** This browser's standing for the signed-in user:
   * {state: 'unsupported' | 'none' (nothing published) | 'restore' (published, not here)
   *  | 'mismatch' (this browser holds another key) | 'ready', record, published}.
   * With localOnly, a browser without a key asks the server nothing: {state: 'nolocal'}. */
  function status(userId, localOnly) {
    if (!window.GCE1 || !window.crypto || !crypto.subtle || !window.indexedDB) {
      return Promise.resolve({ state: 'unsupported' });
    }
    return GCE1.supported().then(function (ok) {
      return ok ? standing(userId, localOnly) : { state: 'unsupported' };
    });
  }

  function standing(userId, localOnly) {
    return load(userId).then(function (record) {
      if (!record && localOnly) return { state: 'nolocal', record: null };
      return identityOf(userId).then(function (published) {
        var state = !published ? 'none' : !record ? 'restore' : record.kid !== published.kid ? 'mismatch' : 'ready';
        return { state: state, record: record, published: published };
      });
    });
  }

  window.GCEKeys = Object.freeze({
    TOO_OLD: TOO_OLD,
    load: load,
    remove: remove,
    saveIdentity: saveIdentity,
    pin: pin,
    markVerified: markVerified,
    pinState: pinState,
    call: call,
    identityOf: identityOf,
    status: status
  });
})();
