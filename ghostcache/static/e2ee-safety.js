/* GhostCache: a contact's safety number (/contacts/<id>/safety), computed here from the
 * two published public keys with GCE1.safetyNumber (about 0.3 s), and "Mark as verified",
 * kept in this browser (IndexedDB, GCEKeys.markVerified). */
(function () {
  'use strict';

  var box = document.getElementById('safety');
  if (!box || !window.GCEKeys) return;
  var me = { id: box.getAttribute('data-me-id'), name: box.getAttribute('data-me') || '' };
  var other = { id: box.getAttribute('data-other-id'), name: box.getAttribute('data-other') || '' };
  var peer = null; /* the contact's published identity, once fetched */

  function $(id) {
    return document.getElementById(id);
  }

  function say(text) {
    $('safety-status').textContent = text;
  }

  function showNote(text) {
    $('safety-note').textContent = text;
    $('safety-note').hidden = !text;
  }

  /** 12 groups of 5 digits, four to a line, still read (and copied) as plain digits. */
  function showNumber(number) {
    var target = $('safety-number');
    target.textContent = '';
    number.split(' ').forEach(function (group, i) {
      if (i) target.appendChild(document.createTextNode(' '));
      var span = document.createElement('span');
      span.className = 'group';
      span.textContent = group;
      target.appendChild(span);
    });
    target.hidden = false;
    target.removeAttribute('aria-busy');
  }

  function showVerification(record) {
    var isVerified = Boolean(record && record.verified.get(other.name) === peer.kid);
    $('safety-verified').hidden = !isVerified;
    $('safety-verify').hidden = isVerified || !record;
    if (!record) {
      showNote('Set up or restore end-to-end encryption in this browser to keep your verifications.');
    } else if (!isVerified && record.pins.get(other.name) && record.pins.get(other.name) !== peer.kid) {
      showNote('This is a new key for ' + other.name + '. Marking it as verified also accepts it in your chat.');
    } else {
      showNote('');
    }
  }

  function compute(mine, theirs, record) {
    if (!mine || !theirs) {
      say('');
      showNote(!mine ? 'You have not set up end-to-end encryption yet, so there is no safety number.'
        : other.name + ' has not set up end-to-end encryption yet, so there is no safety number.');
      return null;
    }
    peer = theirs;
    say('Computing the safety number\u2026');
    $('safety-number').setAttribute('aria-busy', 'true');
    return GCE1.safetyNumber(mine.username, mine.pub, theirs.username, theirs.pub).then(function (number) {
      showNumber(number);
      say('Safety number ready.');
      showVerification(record);
    });
  }

  function markVerified() {
    if (!peer) return;
    GCEKeys.markVerified(me.id, other.name, peer.kid, peer.pub).then(function (record) {
      showVerification(record);
      say('Marked as verified.');
      $('safety-verified').focus();
    }).catch(function (error) {
      say('This could not be saved in this browser: ' + error.message);
    });
  }

  function init() {
    $('safety-nojs').hidden = true;
    $('safety-verify').addEventListener('click', markVerified);
    if (!window.GCE1) return;
    say('Fetching the keys\u2026');
    GCEKeys.status(me.id).then(function (found) {
      if (found.state === 'unsupported') {
        say('');
        showNote(GCEKeys.TOO_OLD);
        return null;
      }
      return GCEKeys.identityOf(other.id).then(function (theirs) {
        return compute(found.published, theirs, found.state === 'ready' ? found.record : null);
      });
    }).catch(function (error) {
      say('The safety number could not be computed: ' + error.message);
    });
  }

  init();
})();
