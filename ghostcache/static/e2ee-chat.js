/* GhostCache: end-to-end encryption on the chat page (docs/E2EE.md, "Browser UI").
 *
 * Turns a conversation end-to-end encrypted, decrypts envelopes (history, older pages,
 * live), encrypts what is sent, and holds the composer while a contact's key is not
 * trusted: a new key (a reset, or a server handing out another key) must be accepted
 * first. app.js calls in through window.GhostCacheHooks; this never sends plain text to
 * an end-to-end encrypted conversation. Nothing here logs a key or a message. */
(function () {
  'use strict';

  var list = document.querySelector('#messages[data-other-id]');
  var hooks = window.GhostCacheHooks;
  if (!list || !hooks || !window.GCEKeys) return;

  var me = { id: list.getAttribute('data-me-id'), name: list.getAttribute('data-me') || '' };
  var other = { id: list.getAttribute('data-other-id'), name: list.getAttribute('data-other') || '' };
  var conv = list.getAttribute('data-conv');
  var form = document.getElementById('chat-form');
  var FAILED = 'Could not decrypt this message';

  var state = {
    on: list.hasAttribute('data-e2ee-since'),
    keyChanged: list.hasAttribute('data-key-changed-at'),
    mode: 'loading', /* loading, unsupported, nokey, nopeer, changed, ready, error */
    detail: '',
    record: null, /* this browser's IndexedDB record (its identity, pins, verified) */
    peer: null, /* the contact's published identity {kid, pub} */
    mids: new Set() /* envelopes shown: a replayed one is dropped */
  };

  function $(id) {
    return document.getElementById(id);
  }

  function say(text) {
    $('e2ee-status').textContent = text;
  }

  function lockElement() {
    var lock = document.createElement('span');
    lock.className = 'lock';
    lock.title = 'End-to-end encrypted';
    var words = document.createElement('span');
    words.className = 'visually-hidden';
    words.textContent = ' (end-to-end encrypted)';
    lock.appendChild(words); /* the padlock itself is drawn by app.css (no image) */
    return lock;
  }

  // ---- what the page shows ----------------------------------------------------------

  function setupLink(text) {
    var link = document.createElement('a');
    link.href = '/e2ee';
    link.textContent = text;
    return link;
  }

  /** The line under the heading: why encryption is not available, or nothing. */
  function note() {
    var box = $('e2ee-note');
    box.textContent = '';
    if (state.mode === 'unsupported') {
      box.textContent = GCEKeys.TOO_OLD + (state.on ? ' Messages in this conversation cannot be read or sent in this browser.' : '');
    } else if (state.mode === 'nokey') {
      box.textContent = state.on
        ? 'This conversation is end-to-end encrypted, and this browser has no key yet. '
        : 'To turn on end-to-end encryption, first ';
      box.appendChild(setupLink(state.on ? 'Set up or restore encryption to read and send here.' : 'set up encryption in this browser.'));
    } else if (state.mode === 'nopeer') {
      box.textContent = other.name + ' has no encryption key on the server now, so nothing can be sent.';
    } else if (state.mode === 'error') {
      box.textContent = 'The encryption keys could not be checked: ' + state.detail + ' Reload the page to try again.';
    }
    box.hidden = !box.textContent;
  }

  function verified() {
    return Boolean(state.record && state.peer && state.record.verified.get(other.name) === state.peer.kid);
  }

  function render() {
    var blocked = state.on && state.mode !== 'ready';
    $('e2ee-nojs').hidden = true;
    $('e2ee-badge').hidden = !state.on;
    $('e2ee-verified').hidden = !(state.on && state.mode === 'ready' && verified());
    $('e2ee-enable').hidden = state.on || state.mode !== 'ready';
    $('e2ee-keywarn').hidden = state.mode !== 'changed';
    note();
    if (!form) return;
    form.hidden = false; /* the page hides it in an E2EE conversation, for browsers without scripts */
    if (blocked) form.setAttribute('data-blocked', '');
    else form.removeAttribute('data-blocked');
    var textarea = form.querySelector('textarea');
    var button = form.querySelector('button[type="submit"]');
    if (textarea) textarea.disabled = blocked;
    if (button) button.disabled = blocked;
  }

  function markRow(userId) {
    var name = document.querySelector('#conversations li[data-user-id="' + Number(userId) + '"] .conversation-name');
    if (!name || name.querySelector('.lock')) return;
    name.insertBefore(lockElement(), name.querySelector('.unread-count'));
  }

  // ---- keys -------------------------------------------------------------------------

  /** While the keys are (re)checked, an E2EE conversation's composer is held. */
  function checking() {
    state.mode = 'loading';
    render();
  }

  /** This browser's identity, then (in an E2EE conversation) the contact's key. */
  function refresh() {
    checking();
    return GCEKeys.status(me.id, true).then(function (found) {
      state.record = found.state === 'ready' ? found.record : null;
      if (found.state === 'unsupported') state.mode = 'unsupported';
      else if (!state.record) state.mode = 'nokey';
      else if (!state.on) state.mode = 'ready';
      else return checkPeer();
    }).catch(failed).then(settle);
  }

  /** The contact's published key against the pinned one: the first seen is pinned (unless
   * the server says it changed: then nobody can tell which one this browser trusted). */
  function checkPeer() {
    return GCEKeys.identityOf(other.id).then(function (peer) {
      state.peer = peer;
      if (!peer) {
        state.mode = 'nopeer';
        return null;
      }
      var pin = GCEKeys.pinState(state.record, other.name, peer.kid);
      if (pin === 'same') state.mode = 'ready';
      else if (pin === 'new' && !state.keyChanged) return trust(peer);
      else state.mode = 'changed';
      return null;
    });
  }

  function trust(peer) {
    return GCEKeys.pin(me.id, other.name, peer.kid, peer.pub).then(function (record) {
      state.record = record;
      state.mode = 'ready';
    });
  }

  function failed(error) {
    state.mode = 'error';
    state.detail = (error && error.message) || 'unknown error.';
  }

  function settle() {
    render();
    decryptAll();
  }

  function acceptNewKey() {
    if (!state.peer) return;
    trust(state.peer).then(function () {
      say('You accepted ' + other.name + '\u2019s new key. Sending is on again.');
      settle();
      var textarea = form && form.querySelector('textarea');
      if (textarea) textarea.focus();
    }).catch(function (error) {
      failed(error);
      settle();
    });
  }

  // ---- turning it on ----------------------------------------------------------------

  function enable() {
    var button = $('e2ee-enable');
    button.disabled = true;
    GCEKeys.call('POST', list.getAttribute('data-e2ee-url')).then(function (answer) {
      if (answer.status === 200 && answer.data) {
        switchedOn(answer.data.e2ee_since);
      } else {
        $('e2ee-note').textContent = (answer.data && answer.data.message) || 'The server answered ' + answer.status + '.';
        $('e2ee-note').hidden = false;
      }
    }).catch(function () {
      $('e2ee-note').textContent = 'End-to-end encryption could not be turned on. Check your connection and try again.';
      $('e2ee-note').hidden = false;
    }).then(function () {
      button.disabled = false;
    });
  }

  function switchedOn(since) {
    markRow(other.id);
    if (state.on) return;
    state.on = true;
    list.setAttribute('data-e2ee-since', since || new Date().toISOString());
    say('This conversation is now end-to-end encrypted.');
    refresh();
  }

  // ---- messages ---------------------------------------------------------------------

  function decryptAll() {
    if (state.mode !== 'ready' && state.mode !== 'changed') return;
    Array.prototype.forEach.call(list.querySelectorAll('li[data-envelope]'), function (li) {
      var done = li.getAttribute('data-state');
      if (done !== 'ok' && done !== 'failed' && done !== 'busy') decryptOne(li);
    });
  }

  /** The public key this browser trusted under `kid`, or null. */
  function trustedPub(kid) {
    return state.record.pubs.get(kid) || null;
  }

  function openEnvelope(li, envelope) {
    var identity = { privateKey: state.record.privateKey, pub: state.record.pub };
    var mine = li.classList.contains('mine');
    var pub = trustedPub(mine ? envelope.rkid : envelope.skid);
    if (!pub) return null;
    var expected = { expectedSenderId: mine ? me.id : other.id, expectedReceiverId: mine ? other.id : me.id, expectedConv: conv };
    if (mine) return GCE1.decryptOwnMessage(identity, envelope, Object.assign(expected, { receiverPub: pub }));
    return GCE1.decryptMessage(identity, envelope, Object.assign(expected, { senderPub: pub }));
  }

  function decryptOne(li) {
    var envelope;
    try {
      envelope = JSON.parse(li.getAttribute('data-envelope'));
    } catch (err) {
      envelope = null;
    }
    var opening = envelope && typeof envelope === 'object' ? openEnvelope(li, envelope) : Promise.reject(new Error('no envelope'));
    if (!opening) {
      /* Sealed with a key not trusted (yet): a new key waits for "I understand". */
      li.setAttribute('data-state', state.mode === 'changed' ? 'waiting' : 'failed');
      if (state.mode !== 'changed') showText(li, FAILED, true);
      return;
    }
    li.setAttribute('data-state', 'busy');
    opening.then(function (body) {
      shown(li, envelope.mid, body);
    }, function () {
      li.setAttribute('data-state', 'failed');
      showText(li, FAILED, true);
    });
  }

  function shown(li, mid, body) {
    if (state.mids.has(mid)) { /* the server replayed an envelope already on the page */
      li.parentNode.removeChild(li);
      return;
    }
    state.mids.add(mid);
    li.setAttribute('data-state', 'ok');
    showText(li, body, false);
    if (li.hasAttribute('data-live') && li.classList.contains('theirs')) {
      var live = document.getElementById('chat-live');
      if (live) live.textContent = other.name + ': ' + body;
    }
  }

  function showText(li, text, failure) {
    var p = li.querySelector('.msg-text');
    if (p) p.textContent = text;
    li.classList.toggle('undecryptable', failure);
  }

  /** app.js: an E2EE message it is about to show (live, sent from here, or older). */
  function decorate(li, msg, how) {
    var sender = li.querySelector('.msg-sender');
    if (sender && !sender.querySelector('.lock')) {
      sender.appendChild(document.createTextNode(' '));
      sender.appendChild(lockElement());
    }
    if (how === 'sent') {
      li.setAttribute('data-state', 'ok');
      if (msg.mid) state.mids.add(msg.mid);
      return;
    }
    if (how === 'live') li.setAttribute('data-live', '');
    setTimeout(decryptAll, 0); /* once app.js has put it in the list */
  }

  // ---- sending ----------------------------------------------------------------------

  function refusal(message) {
    var body = JSON.stringify({ error: 'e2ee_blocked', message: message });
    return new Response(body, { status: 409, headers: { 'Content-Type': 'application/json' } });
  }

  function blockedMessage() {
    if (state.mode === 'changed') return other.name + '\u2019s key changed: read the warning above before sending.';
    if (state.mode === 'nokey') return 'This browser has no encryption key: set up or restore encryption first.';
    if (state.mode === 'unsupported') return GCEKeys.TOO_OLD;
    return 'This message cannot be encrypted now. Reload the page and try again.';
  }

  function postEnvelope(envelope) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return fetch('/chat/' + encodeURIComponent(other.id), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Accept': 'application/json', 'Content-Type': 'application/json', 'X-CSRFToken': meta ? meta.content : '' },
      body: JSON.stringify({ envelope: envelope })
    });
  }

  /** A refusal that says how things stand: a stale key (fetch the keys again and warn),
   * or a conversation turned E2EE before this page heard of it (the text stays, unsent). */
  function afterRefusal(response) {
    if (response.status !== 409) return Promise.resolve(response);
    return response.clone().json().then(function (data) {
      if (data && data.error === 'stale_key') {
        say('The keys changed. Checking them again.');
        refresh();
      } else if (data && data.error === 'e2ee_required') {
        switchedOn(null);
        return refusal('This conversation has just turned end-to-end encrypted. Send again to send it encrypted.');
      }
      return response;
    }).catch(function () { return response; });
  }

  function send(text, plainPost) {
    if (!state.on) {
      return plainPost().then(afterRefusal).then(function (response) {
        return { response: response, sealed: false };
      });
    }
    if (state.mode !== 'ready' || !state.peer) return Promise.resolve({ response: refusal(blockedMessage()), sealed: false });
    var identity = { privateKey: state.record.privateKey, pub: state.record.pub };
    return GCE1.encryptMessage(identity, me.id, state.peer.pub, other.id, conv, text).then(function (envelope) {
      return postEnvelope(envelope).then(afterRefusal).then(function (response) {
        return { response: response, sealed: true, mid: envelope.mid };
      });
    }, function (error) {
      return { response: refusal('This message cannot be encrypted: ' + error.message), sealed: false };
    });
  }

  // ---- the stream -------------------------------------------------------------------

  function onEvent(name, data) {
    if (name === 'e2ee') markRow(data.with.id);
    if (String(data.with.id) !== other.id) return false;
    if (name === 'e2ee') {
      switchedOn(data.e2ee_since);
    } else if (name === 'key') {
      state.keyChanged = true;
      say(other.name + '\u2019s security key changed.');
      if (state.on && state.record) {
        checking();
        checkPeer().catch(failed).then(settle);
      }
    }
    return true;
  }

  function init() {
    hooks.decorate = decorate;
    hooks.send = send;
    hooks.onEvent = onEvent;
    $('e2ee-enable').addEventListener('click', enable);
    $('e2ee-accept-key').addEventListener('click', acceptNewKey);
    refresh(); /* an E2EE conversation's composer is held until the keys are known */
  }

  init();
})();
