/* GhostCache: decrypt a file in the browser, on the file's page (templates/file.html).
 *
 * The encrypted blob is fetched from the file's download URL (same origin, with the
 * session cookie); the key the person types is used only here, by the age library in
 * age.bundle.js (window.GhostcacheAge), and is never sent anywhere. The plaintext is
 * offered as a Blob object URL, revoked when no longer needed.
 */
(function () {
  'use strict';

  var WRONG_KEY = 'That key does not open this file.';
  var KEEP_MS = 10 * 60 * 1000; // how long the decrypted copy stays available in the page

  function init() {
    var form = document.getElementById('decrypt-form');
    if (!form) return;
    var age = window.GhostcacheAge;
    if (!age || typeof age.decrypt !== 'function' || !window.fetch || !window.Blob || !window.URL) return;

    var keyInput = document.getElementById('file-key');
    var button = form.querySelector('button[type="submit"]');
    var statusLine = document.getElementById('decrypt-status');
    var errorLine = document.getElementById('decrypt-error');
    var link = document.getElementById('decrypted-link');
    var unavailable = document.getElementById('decrypt-unavailable');
    var url = form.getAttribute('data-download-url');
    var filename = form.getAttribute('data-filename') || 'file';
    var objectUrl = null;
    var expiryTimer = null;
    var busy = false;

    function say(text) {
      statusLine.textContent = text;
    }

    function fail(text) {
      errorLine.textContent = text;
      errorLine.hidden = !text;
    }

    function forget() {
      clearTimeout(expiryTimer);
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = null;
      link.hidden = true;
      link.removeAttribute('href');
      link.removeAttribute('download');
    }

    function offer(plaintext) {
      forget();
      objectUrl = URL.createObjectURL(new Blob([plaintext], { type: 'application/octet-stream' }));
      link.href = objectUrl;
      link.download = filename;
      link.textContent = 'Save ' + filename;
      link.hidden = false;
      expiryTimer = setTimeout(function () {
        forget();
        say('The decrypted copy was cleared from this page. Decrypt again to save it.');
      }, KEEP_MS);
    }

    function downloadError(response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (response.status === 401) return 'Your session has ended. Reload the page and log in again.';
        if (data && typeof data.message === 'string') return data.message;
        return 'The encrypted file could not be downloaded (error ' + response.status + ').';
      });
    }

    async function run() {
      var key = keyInput.value;
      fail('');
      if (!key.trim()) {
        fail('Type or paste the file key first.');
        keyInput.focus();
        return;
      }
      if (!/^AGE-SECRET-KEY-1/i.test(key.trim())) { // not worth downloading the file for
        fail(WRONG_KEY + ' A file key starts with AGE-SECRET-KEY-1.');
        keyInput.focus();
        return;
      }
      busy = true;
      button.disabled = true;
      forget();
      try {
        say('Downloading the encrypted file…');
        var response;
        try {
          // Same origin only: the session cookie goes along, the key does not.
          response = await fetch(url, {
            credentials: 'same-origin',
            cache: 'no-store',
            headers: { 'Accept': 'application/octet-stream, application/json;q=0.9' }
          });
        } catch (err) {
          say('');
          fail('The encrypted file could not be downloaded. Check your connection and try again.');
          return;
        }
        if (!response.ok) {
          say('');
          fail(await downloadError(response));
          return;
        }
        var blob = new Uint8Array(await response.arrayBuffer());
        say('Decrypting…');
        var plaintext;
        try {
          plaintext = await age.decrypt(key, blob);
        } catch (err) {
          say('');
          if (err && err.reason === 'damaged') {
            fail('The file could not be decrypted: it seems to be damaged.');
          } else if (err && err.reason === 'bad_key') {
            fail(WRONG_KEY + ' It is not a complete file key: check that you copied all of it.');
            keyInput.focus();
          } else {
            fail(WRONG_KEY);
            keyInput.focus();
            keyInput.select();
          }
          return;
        }
        keyInput.value = '';
        offer(plaintext);
        say('Decrypted ' + filename + '. Save it with the button below.');
        link.focus();
      } finally {
        key = null;
        busy = false;
        button.disabled = false;
      }
    }

    form.addEventListener('submit', function (event) {
      event.preventDefault(); // never submitted: the key stays in this page
      if (busy) return;
      run().catch(function () {
        say('');
        fail('Something went wrong while decrypting. Please try again.');
      });
    });
    keyInput.addEventListener('input', function () { fail(''); });
    window.addEventListener('pagehide', forget);

    if (unavailable) unavailable.hidden = true;
    form.hidden = false;
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
