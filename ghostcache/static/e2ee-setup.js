/* GhostCache: the end-to-end encryption page (/e2ee). Sets up this browser's identity
 * (key made here, recovery key shown once, backup sealed here and stored with the login
 * password, identity published) or restores it from the backup with the recovery key.
 * The private key and the recovery key never leave this page; nothing is logged. */
(function () {
  'use strict';

  var meId = document.body ? document.body.getAttribute('data-me-id') : null;
  var SECTIONS = ['e2ee-unsupported', 'e2ee-setup', 'e2ee-recovery', 'e2ee-password', 'e2ee-restore', 'e2ee-ready'];
  var pending = null; /* during setup only: {identity, pkcs8, recovery}; dropped when done */

  function $(id) {
    return document.getElementById(id);
  }

  function say(text) {
    $('e2ee-status').textContent = text || '';
  }

  function showError(id, text) {
    $(id).textContent = text || '';
    $(id).hidden = !text;
  }

  /** Show one section (the others hidden) and move the keyboard to its heading. */
  function show(id, focus) {
    SECTIONS.forEach(function (name) { $(name).hidden = name !== id; });
    var heading = $(id).querySelector('h2');
    if (focus && heading) heading.focus();
  }

  function showReady(kid, focus) {
    $('ready-kid').textContent = kid;
    say('');
    show('e2ee-ready', focus);
  }

  function showState(found) {
    if (found.state === 'unsupported') {
      $('unsupported-text').textContent = GCEKeys.TOO_OLD;
      say('');
      show('e2ee-unsupported');
    } else if (found.state === 'ready') {
      showReady(found.record.kid);
    } else if (found.state === 'none') {
      say('');
      show('e2ee-setup');
    } else {
      $('restore-why').textContent = found.state === 'mismatch'
        ? 'This browser holds an older key than the one your account publishes now. Type your current recovery key to bring this browser up to date.'
        : 'You set up end-to-end encryption in another browser. Type the recovery key you saved then, to read and send encrypted messages here too.';
      say('');
      show('e2ee-restore');
    }
  }

  // ---- setting up -------------------------------------------------------------------

  function startSetup() {
    $('setup-start').disabled = true;
    say('Making your keys…');
    GCE1.generateIdentity().then(function (identity) {
      var recovery = GCE1.newRecoveryKey();
      pending = { identity: identity, pkcs8: identity.pkcs8, recovery: recovery };
      $('recovery-key').value = GCE1.formatRecovery(recovery);
      $('recovery-saved').checked = false;
      $('recovery-continue').disabled = true;
      say('');
      show('e2ee-recovery', true);
    }).catch(function () {
      say('Your keys could not be made in this browser. Reload the page and try again.');
      $('setup-start').disabled = false;
    });
  }

  function afterRecoveryShown() {
    $('recovery-key').value = ''; /* shown once: it leaves the page now */
    show('e2ee-password', true);
    $('setup-password').focus();
  }

  /** The backup's counter: 1, or above a backup left by a setup that never finished. */
  function nextCounter() {
    return GCEKeys.call('GET', '/e2ee/backup').then(function (answer) {
      if (answer.status === 404) return 1;
      if (answer.status !== 200 || !answer.data) throw new Error('The server answered ' + answer.status + '.');
      return answer.data.ctr + 1;
    });
  }

  /* The backup goes first: storing it proves the password, so a wrong one publishes
     nothing, and the identity is never published without its backup. */
  function storeBackup(password) {
    return nextCounter().then(function (ctr) {
      return GCE1.sealBackup(pending.recovery, meId, ctr, pending.pkcs8, {}).then(function (sealed) {
        sealed.ctr = ctr;
        sealed.password = password;
        return GCEKeys.call('PUT', '/e2ee/backup', sealed);
      });
    });
  }

  function publish() {
    var pub = GCE1.bytes.b64u(pending.identity.pub);
    return GCEKeys.call('POST', '/e2ee/identity', { pub: pub });
  }

  function finishSetup(event) {
    event.preventDefault();
    if (!pending) return;
    var button = $('password-form').querySelector('button');
    button.disabled = true;
    showError('password-error', '');
    say('Storing your sealed backup…');
    var password = $('setup-password').value;
    storeBackup(password).then(function (answer) {
      if (answer.status !== 200) throw new Error(backupRefusal(answer));
      say('Publishing your public key…');
      return publish();
    }).then(function (answer) {
      if (answer.status === 409) throw new Error('Encryption was set up meanwhile in another tab or browser. Reload this page and restore with the recovery key you saved there.');
      if (answer.status !== 201) throw new Error((answer.data && answer.data.message) || 'The server answered ' + answer.status + '.');
      return GCE1.kid(pending.identity.pub).then(function (kid) {
        return GCEKeys.saveIdentity(meId, pending.identity, kid, {}).then(function () { return kid; });
      });
    }).then(function (kid) {
      pending = null;
      $('setup-password').value = '';
      showReady(kid, true);
    }).catch(function (error) {
      say('');
      showError('password-error', error.message);
    }).then(function () {
      button.disabled = false;
    });
  }

  function backupRefusal(answer) {
    if (answer.status === 401 && answer.data && answer.data.error === 'invalid_credentials') {
      return 'That is not your login password. Try again.';
    }
    return (answer.data && answer.data.message) || 'The backup could not be stored (error ' + answer.status + ').';
  }

  // ---- restoring --------------------------------------------------------------------

  function restore(event) {
    event.preventDefault();
    var button = $('restore-form').querySelector('button');
    var raw;
    showError('restore-error', '');
    try {
      raw = GCE1.parseRecovery($('restore-key').value);
    } catch (error) {
      showError('restore-error', error.message);
      return;
    }
    button.disabled = true;
    say('Opening your backup…');
    restoreWith(raw).then(function (kid) {
      $('restore-key').value = '';
      showReady(kid, true);
    }).catch(function (error) {
      say('');
      showError('restore-error', error.message);
    }).then(function () {
      button.disabled = false;
    });
  }

  function restoreWith(raw) {
    return Promise.all([GCEKeys.call('GET', '/e2ee/backup'), GCEKeys.identityOf(meId)]).then(function (both) {
      var backup = both[0];
      var published = both[1];
      if (backup.status === 404 || !published) throw new Error('The server holds no backup of your key: set up encryption again in the browser where you made it.');
      if (backup.status !== 200) throw new Error('The server answered ' + backup.status + '.');
      return GCE1.openBackup(raw, meId, backup.data.ctr, backup.data).catch(function () {
        throw new Error('This recovery key does not open your backup. Check each group of four and try again.');
      }).then(function (opened) {
        return keep(opened, published);
      });
    });
  }

  function keep(opened, published) {
    return GCE1.importPrivatePkcs8(opened.ikPkcs8, false).then(function (identity) {
      return GCE1.kid(identity.pub).then(function (kid) {
        if (kid !== published.kid) {
          throw new Error('Your backup holds an older key than the one your account publishes now, so it cannot read new messages. Use the recovery key made with the current key.');
        }
        return GCEKeys.saveIdentity(meId, identity, kid, opened.pins).then(function () { return kid; });
      });
    });
  }

  // ---- start ------------------------------------------------------------------------

  function init() {
    if (!$('e2ee-status') || !meId || !window.GCEKeys) return;
    $('e2ee-nojs').hidden = true;
    say('Checking this browser…');
    $('setup-start').addEventListener('click', startSetup);
    $('recovery-saved').addEventListener('change', function () {
      $('recovery-continue').disabled = !$('recovery-saved').checked;
    });
    $('recovery-continue').addEventListener('click', afterRecoveryShown);
    $('password-form').addEventListener('submit', finishSetup);
    $('restore-form').addEventListener('submit', restore);
    GCEKeys.status(meId).then(showState).catch(function (error) {
      say('End-to-end encryption is not available here: ' + error.message);
    });
  }

  init();
})();
