/* GhostCache: the upload page (templates/upload.html), with drag and drop, a progress bar,
 * speed, time left and Cancel. Without this file the form posts as it is and
 * upload_done.html shows the key.
 *
 * The same form is sent with XMLHttpRequest (fetch reports no upload progress) as
 * multipart FormData in the form's order, the CSRF token first, and the token also as the
 * X-CSRFToken header, which the server checks before it reads the body. The answer is
 * JSON; the key and the link that carries it are shown once, as text (textContent and
 * textarea values only).
 */
(function () {
  'use strict';

  var MB = 1000 * 1000; // decimal units, as the file list shows sizes
  var SPEED_WINDOW_MS = 3000; // the speed shown is that of the last few seconds

  function byId(id) {
    return document.getElementById(id);
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute('content') : '';
  }

  /** Like Jinja's filesizeformat: "812 Bytes", "4.2 kB", "8.4 MB". */
  function formatSize(bytes) {
    if (bytes < 1000) return bytes + (bytes === 1 ? ' Byte' : ' Bytes');
    var units = ['kB', 'MB', 'GB', 'TB'];
    var value = bytes / 1000;
    var i = 0;
    while (value >= 1000 && i < units.length - 1) {
      value /= 1000;
      i += 1;
    }
    return value.toFixed(1) + ' ' + units[i];
  }

  function formatSpeed(bytesPerSecond) {
    if (bytesPerSecond < 0.1 * MB) return (bytesPerSecond / 1000).toFixed(0) + ' kB/s';
    return (bytesPerSecond / MB).toFixed(1) + ' MB/s';
  }

  function formatDuration(seconds) {
    var s = Math.max(1, Math.round(seconds));
    if (s < 60) return s + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + (s % 60) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  /** "in 7 days", as the server's pages say it (web/files.py time_left). */
  function timeLeft(iso) {
    var seconds = (Date.parse(iso) - Date.now()) / 1000;
    function count(n, unit) { return 'in ' + n + ' ' + unit + (n === 1 ? '' : 's'); }
    if (!(seconds > 0)) return 'now';
    if (seconds >= 2 * 86400) return count(Math.round(seconds / 86400), 'day');
    if (seconds >= 2 * 3600) return count(Math.round(seconds / 3600), 'hour');
    if (seconds >= 60) return count(Math.floor(seconds / 60), 'minute');
    return 'in less than a minute';
  }

  function parseJson(text) {
    try {
      return JSON.parse(text);
    } catch (err) {
      return null;
    }
  }

  function hasFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, 'Files') !== -1;
  }

  /** Bytes per second over the last SPEED_WINDOW_MS, from (time, bytes sent) samples. */
  function SpeedMeter() {
    this.samples = [];
  }
  SpeedMeter.prototype.add = function (now, loaded) {
    this.samples.push([now, loaded]);
    while (this.samples.length > 2 && now - this.samples[1][0] >= SPEED_WINDOW_MS) this.samples.shift();
  };
  SpeedMeter.prototype.speed = function () {
    var first = this.samples[0];
    var last = this.samples[this.samples.length - 1];
    var seconds = first && last ? (last[0] - first[0]) / 1000 : 0;
    return seconds >= 0.25 ? (last[1] - first[1]) / seconds : null;
  };

  function init() {
    var form = byId('upload-form');
    if (!form || !window.XMLHttpRequest || !window.FormData) return;
    if (!('upload' in new XMLHttpRequest())) return;

    var fileInput = byId('file');
    var expiryInput = byId('expiry_days');
    var zone = byId('drop-zone');
    var chosen = byId('file-chosen');
    var submit = byId('upload-submit');
    var errorLine = byId('upload-error');
    var statusLine = byId('upload-status');
    var progressBox = byId('upload-progress');
    var bar = byId('upload-bar');
    var stats = byId('upload-stats');
    var cancel = byId('upload-cancel');
    var heading = byId('upload-heading');
    var viewUrl = form.getAttribute('data-view-url');
    var xhr = null;
    var meter = null;
    var startedAt = 0;
    var dragDepth = 0;

    function say(text) {
      statusLine.textContent = text;
    }

    function fail(text) {
      errorLine.textContent = text;
      errorLine.hidden = !text;
    }

    function setBusy(busy) {
      submit.disabled = busy;
      fileInput.disabled = busy;
      expiryInput.disabled = busy;
      cancel.hidden = !busy;
      cancel.disabled = false;
    }

    /** Says so at once when the file is over the site's limit (the server would refuse it). */
    function checkSize(file) {
      var maxBytes = Number(form.getAttribute('data-max-bytes')) || 0;
      if (maxBytes && file.size > maxBytes) {
        fail('Files can be at most ' + form.getAttribute('data-max-mb') + ' MB. This one is ' +
          formatSize(file.size) + '.');
        return false;
      }
      return true;
    }

    function showChosen() {
      var file = fileInput.files && fileInput.files[0];
      fail('');
      chosen.hidden = !file;
      chosen.textContent = file ? 'Chosen: ' + file.name + ' (' + formatSize(file.size) + ')' : '';
      if (file) checkSize(file);
    }

    function take(files) {
      if (xhr || form.hidden) return; // busy, or done: the result is on screen
      if (files.length !== 1) {
        fail('Drop one file at a time.');
        return;
      }
      fileInput.files = files;
      showChosen();
      submit.focus();
    }

    /* ---- sending ---- */

    function showProgress(loaded, total) {
      var now = performance.now();
      meter.add(now, loaded);
      var percent = total ? Math.floor((loaded / total) * 100) : 0;
      bar.value = percent;
      bar.textContent = percent + '%';
      var parts = [percent + '%', formatSize(loaded) + ' of ' + formatSize(total)];
      var speed = meter.speed();
      if (speed) {
        parts.push(formatSpeed(speed));
        if (loaded < total) parts.push('about ' + formatDuration((total - loaded) / speed) + ' left');
      } else {
        parts.push('measuring speed…');
      }
      stats.textContent = parts.join(' · ');
    }

    function allSent(total) {
      var seconds = (performance.now() - startedAt) / 1000;
      bar.value = 100;
      bar.textContent = '100%';
      stats.textContent = '100% · ' + formatSize(total) + ' sent in ' + formatDuration(seconds) +
        (seconds > 0 ? ' · ' + formatSpeed(total / seconds) + ' on average' : '');
      // Every byte is on its way: the server finishes and stores the file whatever we do.
      cancel.hidden = true;
      say('Encrypting the last part and storing the file…');
    }

    function start(file) {
      var data = new FormData(form); // the form's order: csrf_token, expiry_days, file
      xhr = new XMLHttpRequest();
      xhr.open('POST', form.getAttribute('action'));
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.setRequestHeader('X-CSRFToken', csrfToken());
      xhr.upload.onprogress = function (event) {
        if (event.lengthComputable) showProgress(event.loaded, event.total);
      };
      xhr.upload.onload = function (event) { allSent(event.total || file.size); };
      xhr.onload = answered;
      xhr.onerror = function () { finish('The upload stopped: the connection to the server was lost. Try again.'); };
      xhr.ontimeout = xhr.onerror;
      xhr.onabort = function () {
        finish('');
        say('Upload cancelled: nothing was stored.');
        fileInput.focus();
      };
      meter = new SpeedMeter();
      startedAt = performance.now();
      meter.add(startedAt, 0);
      fail('');
      bar.value = 0;
      bar.textContent = '0%';
      stats.textContent = '0% · ' + formatSize(0) + ' of ' + formatSize(file.size);
      progressBox.hidden = false;
      setBusy(true);
      say('Uploading ' + file.name + '…');
      xhr.send(data);
    }

    /** Back to the form after a failure or a cancel; `error` (if any) goes to the alert. */
    function finish(error) {
      xhr = null;
      setBusy(false);
      progressBox.hidden = true;
      say('');
      fail(error);
    }

    function errorText(status, body) {
      if (status === 401) return 'Your session has ended. Log in again, then upload the file again.';
      if (body && typeof body.message === 'string') return body.message;
      return 'The upload failed (error ' + status + '). Please try again.';
    }

    function answered() {
      var status = xhr.status;
      var body = parseJson(xhr.responseText);
      if (status === 201 && body && typeof body.key === 'string') {
        xhr = null;
        if (bar.value < 100) allSent(body.size);
        cancel.hidden = true;
        showResult(body);
        return;
      }
      finish(errorText(status, body));
      submit.focus();
    }

    /* ---- the result: the key, once ---- */

    function showResult(file) {
      var path = viewUrl.replace('{id}', encodeURIComponent(String(file.id)));
      byId('result-key-label').textContent = 'Key for ' + file.filename;
      byId('result-key').value = file.key;
      byId('result-link').value = new URL(path, window.location.href).href + '#key=' + encodeURIComponent(file.key);
      byId('result-name').textContent = file.filename;
      byId('result-size').textContent = formatSize(file.size);
      var expiry = byId('result-expiry');
      expiry.setAttribute('datetime', file.expiry);
      expiry.textContent = String(file.expiry).slice(0, 16).replace('T', ' ') + ' UTC';
      byId('result-left').textContent = timeLeft(file.expiry);
      byId('result-page').setAttribute('href', path);
      heading.textContent = 'File uploaded';
      document.title = 'Your file key — GhostCache';
      form.hidden = true;
      byId('upload-result').hidden = false;
      say('');
      heading.focus();
    }

    /* ---- wiring ---- */

    form.addEventListener('submit', function (event) {
      event.preventDefault();
      if (xhr) return;
      var file = fileInput.files && fileInput.files[0];
      if (!file) {
        fail('Choose a file to upload.');
        fileInput.focus();
        return;
      }
      if (checkSize(file)) start(file);
    });
    cancel.addEventListener('click', function () {
      if (xhr) xhr.abort();
    });
    fileInput.addEventListener('change', showChosen);

    // A file dropped anywhere on the page is taken (rather than opened by the browser).
    document.addEventListener('dragenter', function (event) {
      if (!hasFiles(event)) return;
      event.preventDefault();
      dragDepth += 1;
      zone.classList.add('dragging');
    });
    document.addEventListener('dragover', function (event) {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = xhr ? 'none' : 'copy';
    });
    document.addEventListener('dragleave', function (event) {
      if (!hasFiles(event)) return;
      dragDepth = Math.max(0, dragDepth - 1);
      if (!dragDepth) zone.classList.remove('dragging');
    });
    document.addEventListener('drop', function (event) {
      if (!hasFiles(event)) return;
      event.preventDefault();
      dragDepth = 0;
      zone.classList.remove('dragging');
      take(event.dataTransfer.files);
    });

    zone.classList.add('droppable');
    byId('drop-hint').hidden = false;
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
