/* GhostCache progressive enhancements. Every page works without this file. */
(function () {
  'use strict';

  var chatView = null; /* set by the chat page: where its contact's messages go */

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute('content') : '';
  }

  /* 1. Confirm before destructive submits: buttons (or links) and forms with data-confirm. */
  document.addEventListener('click', function (event) {
    var el = event.target.closest && event.target.closest('button[data-confirm], input[data-confirm], a[data-confirm]');
    if (el && !el.disabled && !window.confirm(el.getAttribute('data-confirm'))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.hasAttribute('data-confirm') &&
        !window.confirm(form.getAttribute('data-confirm'))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  /* 2. Copy buttons: <button data-copy-target="element-id">. */
  function selectTarget(target) {
    if (typeof target.select === 'function') {
      target.focus();
      target.select();
      if (typeof target.setSelectionRange === 'function') target.setSelectionRange(0, target.value.length);
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(target);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function fallbackCopy(target) {
    selectTarget(target);
    try {
      return document.execCommand('copy');
    } catch (err) {
      return false;
    }
  }

  function flashLabel(button, text) {
    if (!button.hasAttribute('data-label')) button.setAttribute('data-label', button.textContent);
    button.textContent = text;
    clearTimeout(button._gcTimer);
    button._gcTimer = setTimeout(function () {
      button.textContent = button.getAttribute('data-label');
    }, 2000);
  }

  document.addEventListener('click', function (event) {
    var button = event.target.closest && event.target.closest('[data-copy-target]');
    if (!button) return;
    var target = document.getElementById(button.getAttribute('data-copy-target'));
    if (!target) return;
    event.preventDefault();
    var text = 'value' in target && typeof target.value === 'string' ? target.value : target.textContent;
    var done = function () { flashLabel(button, 'Copied'); };
    var fallback = function () {
      if (fallbackCopy(target)) done();
      else flashLabel(button, 'Press Ctrl+C to copy');
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  });

  /* 3. Chat: live updates over Server-Sent Events, and sending without a reload. */
  function formatTime(ts) {
    return typeof ts === 'string' ? ts.slice(0, 16).replace('T', ' ') + ' UTC' : '';
  }

  function initChat(list) {
    var otherId = String(list.getAttribute('data-other-id'));
    var meId = String(list.getAttribute('data-me-id'));
    var meName = list.getAttribute('data-me') || '';
    var empty = document.getElementById('no-messages');

    function nearBottomScroll() {
      list.scrollTop = list.scrollHeight;
    }

    function hasMessage(id) {
      var items = list.querySelectorAll('li[data-id]');
      for (var i = 0; i < items.length; i++) {
        if (items[i].getAttribute('data-id') === String(id)) return true;
      }
      return false;
    }

    function appendMessage(msg) {
      if (msg.id == null || hasMessage(msg.id)) return;
      var li = document.createElement('li');
      li.className = 'msg ' + (String(msg.sender_id) === meId ? 'mine' : 'theirs');
      li.setAttribute('data-id', String(msg.id));
      var sender = document.createElement('span');
      sender.className = 'msg-sender';
      sender.textContent = msg.sender || '';
      var text = document.createElement('p');
      text.className = 'msg-text';
      text.textContent = msg.message || '';
      var time = document.createElement('time');
      if (msg.timestamp) time.setAttribute('datetime', msg.timestamp);
      time.textContent = formatTime(msg.timestamp);
      li.appendChild(sender);
      li.appendChild(text);
      li.appendChild(time);
      list.appendChild(li);
      if (empty) empty.hidden = true;
      nearBottomScroll();
    }

    nearBottomScroll();

    // The tab's one stream (see initStream) hands this page the messages of this chat.
    chatView = {
      otherId: otherId,
      show: appendMessage
    };

    var form = document.getElementById('chat-form');
    if (!form || !window.fetch || !window.FormData) return;
    var textarea = form.querySelector('textarea[name="message"]');
    var errorBox = document.getElementById('chat-error');
    var hint = document.getElementById('message-hint');
    var submitButton = form.querySelector('button[type="submit"]');
    var sending = false;
    if (hint) hint.hidden = false;

    function showError(text) {
      if (!errorBox) return;
      errorBox.textContent = text;
      errorBox.hidden = !text;
    }

    function send() {
      if (sending) return;
      if (typeof form.reportValidity === 'function' && !form.reportValidity()) return;
      sending = true;
      if (submitButton) submitButton.disabled = true;
      showError('');
      var text = textarea ? textarea.value : '';
      fetch(form.action, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Accept': 'application/json', 'X-CSRFToken': csrfToken() },
        body: new FormData(form)
      }).then(function (response) {
        return response.json().catch(function () { return null; }).then(function (data) {
          if (response.status === 201 && data && data.id != null) {
            appendMessage({
              id: data.id,
              sender_id: meId,
              sender: meName,
              receiver_id: otherId,
              message: text,
              timestamp: data.timestamp
            });
            if (textarea && textarea.value === text) textarea.value = '';
          } else if (data && data.message) {
            showError(data.message);
          } else if (response.status === 401) {
            showError('Your session has ended. Reload the page and log in again.');
          } else {
            showError('The message could not be sent (error ' + response.status + '). Please try again.');
          }
        });
      }).catch(function () {
        showError('The message could not be sent. Check your connection and try again.');
      }).then(function () {
        sending = false;
        if (submitButton) submitButton.disabled = false;
        if (textarea) textarea.focus();
      });
    }

    form.addEventListener('submit', function (event) {
      event.preventDefault();
      send();
    });

    if (textarea) {
      textarea.addEventListener('keydown', function (event) {
        if (event.key === 'Enter' && !event.shiftKey && !event.isComposing &&
            !event.ctrlKey && !event.altKey && !event.metaKey) {
          event.preventDefault();
          send();
        }
      });
    }
  }

  /* 4. One live stream per tab, for the signed-in user: every page decides where to show
     what arrives. The chat with that person shows the message; any other page says who
     wrote, with a link, in a polite live region. */
  function showNotice(msg) {
    var box = document.getElementById('live-notices');
    if (!box || !msg.with) return;
    var item = document.createElement('p');
    item.className = 'live-notice';
    var link = document.createElement('a');
    link.href = '/chat/' + encodeURIComponent(String(msg.with.id));
    link.textContent = 'New message from ' + msg.with.username;
    item.appendChild(link);
    box.appendChild(item);
    while (box.children.length > 5) box.removeChild(box.firstChild);
  }

  function initStream(body) {
    var url = body.getAttribute('data-stream-url');
    var meId = String(body.getAttribute('data-me-id'));
    if (!url || !window.EventSource) return;
    var source = new EventSource(url);
    source.addEventListener('message', function (event) {
      var msg;
      try {
        msg = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (!msg || typeof msg !== 'object' || !msg.with) return;
      if (chatView && String(msg.with.id) === chatView.otherId) {
        chatView.show(msg);
      } else if (String(msg.sender_id) !== meId) {
        showNotice(msg);
      }
    });
  }

  function init() {
    var list = document.querySelector('#messages[data-other-id]');
    if (list) initChat(list);
    if (document.body) initStream(document.body);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
