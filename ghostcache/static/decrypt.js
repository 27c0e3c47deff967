/* GhostCache: decrypt a file in the browser, on the file's page (templates/file.html).
 *
 * The encrypted blob is fetched from the file's download URL (same origin, with the
 * session cookie); the key is used only here, by the age library in age.bundle.js
 * (window.GhostcacheAge), and is never sent anywhere. It is typed or pasted, or taken from
 * the link's fragment (/file/<id>/view#key=AGE-SECRET-KEY-1...), which browsers never send
 * to a server; the fragment is then removed from the address bar at once.
 *
 * Given a ReadableStream, the bundled library (typage) decrypts as a stream: it reads and
 * checks the header, then returns the plaintext as a ReadableStream, 64 KiB chunk by chunk,
 * each authenticated before it is released. Two ways out:
 * - "Save to a file…" (where window.showSaveFilePicker exists, Chromium): download →
 *   decryption → the chosen file, never holding the whole file. The browser writes to a
 *   temporary file and replaces the chosen one only on success, so a wrong, damaged or
 *   truncated file leaves nothing decrypted behind.
 * - "Decrypt": the plaintext is gathered into a Blob and offered as an object URL, revoked
 *   when no longer needed. The ciphertext is not held whole, but the plaintext is.
 */
(function () {
  'use strict';

  var WRONG_KEY = 'That key does not open this file.';
  var DAMAGED = 'The file could not be decrypted: it seems to be damaged.';
  var INTERRUPTED = 'The download was interrupted. Check your connection and try again.';
  var KEEP_MS = 10 * 60 * 1000; // how long the decrypted copy stays available in the page

  /** A failure to show the person: `message`, and what to do with the key field. */
  function problem(message, keyField) {
    var error = new Error(message);
    error.userMessage = message;
    error.keyField = keyField || '';
    return error;
  }

  /** The key carried by the link's fragment (#key=AGE-SECRET-KEY-1...), or ''. */
  function keyFromFragment() {
    var hash = window.location.hash;
    if (!hash || hash.indexOf('key=') === -1) return '';
    try {
      return new URLSearchParams(hash.slice(1)).get('key') || '';
    } catch (err) {
      return '';
    }
  }

  /** The ciphertext as it arrives, counted for the progress bar; a failed read is noted as
   * a network failure (so that it is not reported as a damaged file). */
  function watched(body, state, onBytes) {
    var reader = body.getReader();
    state.reader = reader;
    return new ReadableStream({
      pull: function (controller) {
        return reader.read().then(function (chunk) {
          if (chunk.done) {
            controller.close();
            return;
          }
          onBytes(chunk.value.byteLength);
          controller.enqueue(chunk.value);
        }, function (err) {
          state.network = true;
          controller.error(err);
        });
      },
      cancel: function (reason) {
        return reader.cancel(reason);
      }
    });
  }

  function init() {
    var form = document.getElementById('decrypt-form');
    if (!form) return;
    var age = window.GhostcacheAge;
    if (!age || typeof age.decrypt !== 'function' || !window.fetch || !window.Blob || !window.URL) return;
    var streams = typeof window.ReadableStream === 'function' && 'pipeTo' in window.ReadableStream.prototype;
    var canSaveToFile = streams && typeof window.showSaveFilePicker === 'function';

    var keyInput = document.getElementById('file-key');
    var button = form.querySelector('button[type="submit"]');
    var saveButton = document.getElementById('save-to-file');
    var statusLine = document.getElementById('decrypt-status');
    var errorLine = document.getElementById('decrypt-error');
    var link = document.getElementById('decrypted-link');
    var progressBox = document.getElementById('decrypt-progress');
    var bar = document.getElementById('decrypt-bar');
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

    function setBusy(on) {
      busy = on;
      button.disabled = on;
      saveButton.disabled = on;
      progressBox.hidden = !on;
    }

    function forget() {
      clearTimeout(expiryTimer);
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = null;
      link.hidden = true;
      link.removeAttribute('href');
      link.removeAttribute('download');
    }

    function offer(blob) {
      forget();
      objectUrl = URL.createObjectURL(blob);
      link.href = objectUrl;
      link.download = filename;
      link.textContent = 'Save ' + filename;
      link.hidden = false;
      expiryTimer = setTimeout(function () {
        forget();
        say('The decrypted copy was cleared from this page. Decrypt again to save it.');
      }, KEEP_MS);
    }

    /** The key from the field, or null after saying what is wrong with it. */
    function checkedKey() {
      var key = keyInput.value;
      fail('');
      if (!key.trim()) {
        fail('Type or paste the file key first.');
        keyInput.focus();
        return null;
      }
      if (!/^AGE-SECRET-KEY-1/i.test(key.trim())) { // not worth downloading the file for
        fail(WRONG_KEY + ' A file key starts with AGE-SECRET-KEY-1.');
        keyInput.focus();
        return null;
      }
      return key;
    }

    function downloadError(response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (response.status === 401) return 'Your session has ended. Reload the page and log in again.';
        if (data && typeof data.message === 'string') return data.message;
        return 'The encrypted file could not be downloaded (error ' + response.status + ').';
      });
    }

    async function download() {
      var response;
      try {
        // Same origin only: the session cookie goes along, the key does not.
        response = await fetch(url, {
          credentials: 'same-origin',
          cache: 'no-store',
          headers: { 'Accept': 'application/octet-stream, application/json;q=0.9' }
        });
      } catch (err) {
        throw problem('The encrypted file could not be downloaded. Check your connection and try again.');
      }
      if (!response.ok) throw problem(await downloadError(response));
      return response;
    }

    function keyProblem(err, state) {
      if (state.network) return problem(INTERRUPTED);
      if (err && err.reason === 'damaged') return problem(DAMAGED);
      if (err && err.reason === 'bad_key') {
        return problem(WRONG_KEY + ' It is not a complete file key: check that you copied all of it.', 'focus');
      }
      return problem(WRONG_KEY, 'select');
    }

    /** Whatever failed after the header was accepted: the download, the file's own
     * chunks, or (saving to a file) the disk. */
    function streamProblem(err, state) {
      if (err && err.userMessage) return err;
      if (state.network) return problem(INTERRUPTED);
      if (typeof DOMException === 'function' && err instanceof DOMException && err.name !== 'AbortError') {
        return problem('The decrypted file could not be written (' + err.name + '). Nothing was saved.');
      }
      return problem(DAMAGED);
    }

    /** Starts decrypting the download: the plaintext as a ReadableStream (or, without
     * streams, a Uint8Array) once the header has been read and the key accepted. */
    async function decrypting(key, response, state) {
      var total = Number(response.headers.get('Content-Length')) || 0;
      var done = 0;
      if (total) {
        bar.max = total;
        bar.value = 0;
      } else {
        bar.removeAttribute('value'); // no length given: an indeterminate bar
      }
      var source = streams && response.body
        ? watched(response.body, state, function (n) { done += n; if (total) bar.value = Math.min(done, total); })
        : new Uint8Array(await response.arrayBuffer());
      try {
        return await age.decrypt(key, source);
      } catch (err) {
        if (state.reader) state.reader.cancel().catch(function () {});
        throw keyProblem(err, state);
      }
    }

    function show(err) {
      say('');
      fail(err.userMessage || 'Something went wrong while decrypting. Please try again.');
      if (err.keyField) keyInput.focus();
      if (err.keyField === 'select') keyInput.select();
    }

    async function decryptInPage() {
      var key = checkedKey();
      if (!key) return;
      var state = {};
      setBusy(true);
      forget();
      try {
        say('Downloading and decrypting…');
        var plaintext = await decrypting(key, await download(), state);
        key = null;
        var blob;
        try {
          blob = plaintext instanceof Uint8Array
            ? new Blob([plaintext], { type: 'application/octet-stream' })
            : await new Response(plaintext, { headers: { 'Content-Type': 'application/octet-stream' } }).blob();
        } catch (err) {
          throw streamProblem(err, state);
        }
        keyInput.value = '';
        offer(blob);
        say('Decrypted ' + filename + '. Save it with the button below.');
        link.focus();
      } catch (err) {
        show(err);
      } finally {
        key = null;
        setBusy(false);
      }
    }

    async function pickFile() {
      try {
        return await window.showSaveFilePicker({ suggestedName: filename });
      } catch (err) {
        if (err && err.name === 'TypeError') return window.showSaveFilePicker(); // a name it refuses
        throw err;
      }
    }

    async function decryptToFile() {
      var key = checkedKey();
      if (!key) return;
      var handle;
      try {
        handle = await pickFile(); // first, while the click still counts as the person's
      } catch (err) {
        if (err && err.name === 'AbortError') say('Nothing was saved: no file was chosen.');
        else fail('This browser would not open its save dialog. Use Decrypt instead.');
        return;
      }
      var state = {};
      var writable = null;
      setBusy(true);
      forget();
      try {
        writable = await handle.createWritable();
        say('Downloading and decrypting into ' + handle.name + '…');
        var plaintext = await decrypting(key, await download(), state);
        key = null;
        try {
          if (plaintext instanceof Uint8Array) {
            await writable.write(plaintext);
            await writable.close();
          } else {
            await plaintext.pipeTo(writable); // closes it at the end; aborts it on any error
          }
        } catch (err) {
          throw streamProblem(err, state);
        }
        writable = null;
        keyInput.value = '';
        say('Decrypted ' + filename + ' and saved it as ' + handle.name + '.');
      } catch (err) {
        if (writable) writable.abort().catch(function () {}); // the chosen file stays as it was
        show(err);
      } finally {
        key = null;
        setBusy(false);
      }
    }

    function guarded(task) {
      return function (event) {
        if (event) event.preventDefault(); // never submitted: the key stays in this page
        if (busy) return;
        task().catch(show);
      };
    }

    /** A key in the link's fragment goes into the field, and out of the address bar (and
     * this history entry) at once. Decrypting waits for a click: saving to a file needs
     * one, and a large download should start only when asked for. */
    function takeKeyFromLink() {
      var key = keyFromFragment();
      if (!key) return;
      window.history.replaceState(window.history.state, '', window.location.pathname + window.location.search);
      keyInput.value = key;
      fail('');
      say('The key from your link is in the key field, and no longer in the address bar. Choose ' +
        (canSaveToFile ? 'Decrypt or Save to a file…' : 'Decrypt') + ' to open the file.');
      button.focus();
    }

    form.addEventListener('submit', guarded(decryptInPage));
    saveButton.addEventListener('click', guarded(decryptToFile));
    keyInput.addEventListener('input', function () { fail(''); });
    window.addEventListener('pagehide', forget);
    window.addEventListener('hashchange', takeKeyFromLink);

    saveButton.hidden = !canSaveToFile;
    document.getElementById('save-to-file-hint').hidden = !canSaveToFile;
    document.getElementById('in-memory-note').hidden = canSaveToFile;
    var unavailable = document.getElementById('decrypt-unavailable');
    if (unavailable) unavailable.hidden = true;
    form.hidden = false;
    takeKeyFromLink();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
