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

  function onScreen() {
    return document.visibilityState === 'visible';
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

    // What is shown on a visible page is read: say so, so that every tab clears its count.
    // A message that arrives while the tab is hidden is read when the tab is shown again.
    var readUrl = list.getAttribute('data-read-url');
    var unseen = 0;

    function markRead(upto) {
      if (!readUrl || !window.fetch) return;
      fetch(readUrl, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Accept': 'application/json', 'Content-Type': 'application/json', 'X-CSRFToken': csrfToken() },
        body: JSON.stringify({ upto: upto })
      }).catch(function () { /* the next visit marks it read */ });
    }

    function received(msg) {
      appendMessage(msg);
      if (String(msg.sender_id) === meId) return;
      if (onScreen()) markRead(msg.id);
      else unseen = Math.max(unseen, msg.id);
    }

    document.addEventListener('visibilitychange', function () {
      if (onScreen() && unseen) {
        markRead(unseen);
        unseen = 0;
      }
    });

    // The tab's one stream (see initStream) hands this page the messages of this chat.
    chatView = {
      otherId: otherId,
      show: received,
      onScreen: onScreen
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

  /* 4. Unread counts per conversation, for the tab's title and the home page's badges.
     Each count covers the messages up to lastId: a message event at or below it is
     already counted (the home page rendered it, or GET /conversations returned it), and
     a `read` event brings the server's count. Until the counts are known, events wait. */
  var unread = {
    counts: {},
    ready: false,
    waiting: [],
    baseTitle: '',
    listeners: []
  };

  function seedUnread(entries) {
    entries.forEach(function (entry) {
      unread.counts[String(entry.id)] = { n: entry.n, lastId: entry.lastId };
    });
    unread.ready = true;
    var waiting = unread.waiting;
    unread.waiting = [];
    waiting.forEach(function (apply) { apply(); });
    showUnread();
  }

  function whenCounted(apply) {
    if (unread.ready) {
      apply();
      showUnread();
    } else {
      unread.waiting.push(apply);
    }
  }

  function countFor(id) {
    var key = String(id);
    return unread.counts[key] || (unread.counts[key] = { n: 0, lastId: 0 });
  }

  function countMessage(msg, meId) {
    var count = countFor(msg.with.id);
    if (msg.id <= count.lastId) return;
    count.lastId = msg.id;
    var onThisChat = chatView && chatView.otherId === String(msg.with.id) && chatView.onScreen();
    if (String(msg.sender_id) !== meId && !onThisChat) count.n += 1;
  }

  function showUnread() {
    var total = 0;
    Object.keys(unread.counts).forEach(function (id) { total += unread.counts[id].n; });
    document.title = (total > 0 ? '(' + total + ') ' : '') + unread.baseTitle;
    unread.listeners.forEach(function (listener) { listener(unread.counts); });
  }

  /* Pages without the conversation list learn the counts from GET /conversations
     (without previews: they cost the server a decryption each). */
  function fetchUnread() {
    if (!window.fetch) return seedUnread([]);
    fetch('/conversations?preview=0', { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (response) { return response.ok ? response.json() : { conversations: [] }; })
      .catch(function () { return { conversations: [] }; })
      .then(function (data) {
        seedUnread((data.conversations || []).map(function (c) {
          return { id: c.user.id, n: c.unread, lastId: c.last_message ? c.last_message.id : 0 };
        }));
      });
  }

  /* 5. The home page's conversation list: badges, last message, most recent on top. */
  var PREVIEW_CHARS = 100;

  function preview(text) {
    var line = String(text || '').split(/\s+/).filter(Boolean).join(' ');
    return line.length <= PREVIEW_CHARS ? line : line.slice(0, PREVIEW_CHARS - 1).trim() + '\u2026';
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function buildRow(user) {
    var li = el('li', 'item conversation');
    li.setAttribute('data-user-id', String(user.id));
    li.setAttribute('data-last-id', '0');
    var main = el('div', 'item-main');
    var link = el('a', 'conversation-name', user.username);
    link.href = '/chat/' + encodeURIComponent(String(user.id));
    var badge = el('span', 'badge unread-count');
    badge.hidden = true;
    badge.appendChild(el('span', 'visually-hidden', ', '));
    badge.appendChild(el('span', 'unread-number', '0'));
    badge.appendChild(el('span', 'visually-hidden', ' unread'));
    link.appendChild(badge);
    main.appendChild(link);
    main.appendChild(el('p', 'conversation-preview', 'No messages yet.'));
    li.appendChild(main);
    return li;
  }

  function initHome(list) {
    var empty = document.getElementById('no-conversations');
    var rows = {};
    Array.prototype.forEach.call(list.querySelectorAll('li[data-user-id]'), function (li) {
      rows[li.getAttribute('data-user-id')] = li;
    });

    function rowFor(user) {
      var key = String(user.id);
      if (!rows[key]) {
        rows[key] = buildRow(user);
        // Contacts without messages come last, the newest first.
        var firstQuiet = list.querySelector('li[data-last-id="0"]');
        list.insertBefore(rows[key], firstQuiet);
        if (empty) empty.hidden = true;
      }
      return rows[key];
    }

    function showMessage(msg, meId) {
      var li = rowFor(msg.with);
      if (msg.id <= Number(li.getAttribute('data-last-id'))) return;
      li.setAttribute('data-last-id', String(msg.id));
      var mine = String(msg.sender_id) === meId;
      li.querySelector('.conversation-preview').textContent = (mine ? 'You: ' : '') + preview(msg.message);
      var time = li.querySelector('time') || li.appendChild(document.createElement('time'));
      time.setAttribute('datetime', msg.timestamp || '');
      time.textContent = formatTime(msg.timestamp);
      list.insertBefore(li, list.firstChild);
    }

    function showCounts(counts) {
      Object.keys(rows).forEach(function (id) {
        var n = counts[id] ? counts[id].n : 0;
        var badge = rows[id].querySelector('.unread-count');
        badge.querySelector('.unread-number').textContent = String(n);
        badge.hidden = n === 0;
      });
    }

    function dropRequest(connectionId) {
      var request = document.querySelector('#requests li[data-connection-id="' + connectionId + '"]');
      if (request) request.parentNode.removeChild(request);
    }

    unread.listeners.push(showCounts);
    homeView = { showMessage: showMessage, addContact: rowFor, dropRequest: dropRequest };
    seedUnread(Object.keys(rows).map(function (id) {
      var badge = rows[id].querySelector('.unread-number');
      return { id: id, n: Number(badge ? badge.textContent : 0) || 0, lastId: Number(rows[id].getAttribute('data-last-id')) || 0 };
    }));
  }

  /* 6. One live stream per tab, for the signed-in user: every page decides where to show
     what arrives. The chat with that person shows the message; any other page says who
     wrote, with a link, in a polite live region. Requests, new contacts and shares are
     announced there too. */
  var homeView = null; /* set by the home page: its conversation list */

  // The one place that tells the person about something new (desktop notifications can join here).
  function announce(text, href) {
    var box = document.getElementById('live-notices');
    if (!box) return;
    var item = el('p', 'live-notice');
    var link = el('a', null, text);
    link.href = href;
    item.appendChild(link);
    box.appendChild(item);
    while (box.children.length > 5) box.removeChild(box.firstChild);
  }

  function onMessage(msg, meId) {
    if (chatView && String(msg.with.id) === chatView.otherId) {
      chatView.show(msg);
    } else if (String(msg.sender_id) !== meId) {
      announce('New message from ' + msg.with.username, '/chat/' + encodeURIComponent(String(msg.with.id)));
    }
    if (homeView) homeView.showMessage(msg, meId);
    whenCounted(function () { countMessage(msg, meId); });
  }

  function onRead(data) {
    whenCounted(function () { countFor(data.with.id).n = Number(data.unread) || 0; });
  }

  function onRequest(conn) {
    announce('Contact request from ' + conn.user.username, '/');
  }

  function onContact(conn) {
    announce('You and ' + conn.user.username + ' are now connected', '/chat/' + encodeURIComponent(String(conn.user.id)));
    if (homeView) {
      homeView.dropRequest(conn.id);
      homeView.addContact(conn.user);
      showUnread();
    }
  }

  function onShare(file) {
    announce(file.owner.username + ' shared ' + file.filename + ' with you', '/file/' + encodeURIComponent(String(file.id)) + '/view');
  }

  function listen(source, name, handle, valid) {
    source.addEventListener(name, function (event) {
      var data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (data && typeof data === 'object' && valid(data)) handle(data);
    });
  }

  function initStream(body) {
    var url = body.getAttribute('data-stream-url');
    var meId = String(body.getAttribute('data-me-id'));
    if (!url || !window.EventSource) return;
    if (!homeView) fetchUnread();
    var source = new EventSource(url);
    var hasUser = function (data) { return data.user && data.user.id != null; };
    listen(source, 'message', function (msg) { onMessage(msg, meId); }, function (msg) { return msg.with && msg.id != null; });
    listen(source, 'read', onRead, function (data) { return data.with && data.with.id != null; });
    listen(source, 'request', onRequest, hasUser);
    listen(source, 'contact', onContact, hasUser);
    listen(source, 'share', onShare, function (file) { return file.owner && file.id != null; });
  }

  function init() {
    unread.baseTitle = document.title;
    var list = document.querySelector('#messages[data-other-id]');
    if (list) initChat(list);
    var conversations = document.getElementById('conversations');
    if (conversations && document.body.hasAttribute('data-stream-url')) initHome(conversations);
    if (document.body) initStream(document.body);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
