/* GhostCache progressive enhancements. Every page works without this file. */
(function () {
  'use strict';

  var chatView = null; /* set by the chat page: where its contact's messages go */
  var listView = null; /* set by pages with the conversation list (home, chat) */
  var requestsView = null; /* set by the home page: its pending contact requests */
  /* Filled in by e2ee-chat.js on the chat page (end-to-end encrypted conversations):
     decorate(li, msg, how) shows an E2EE message (how: 'live', 'sent' or 'older');
     send(text, plainPost) resolves to {response, sealed}; onEvent(name, data) takes the
     stream's `e2ee` and `key` events and answers true when the page showed them. */
  var hooks = window.GhostCacheHooks = window.GhostCacheHooks || {};

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute('content') : '';
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  // A form sent by script: the same fields, the answer as JSON, the token also in a header.
  function postForm(form) {
    return fetch(form.action, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Accept': 'application/json', 'X-CSRFToken': csrfToken() },
      body: new FormData(form)
    });
  }

  function each(nodes, fn) {
    Array.prototype.forEach.call(nodes, fn);
  }

  function chatHref(userId) {
    return '/chat/' + encodeURIComponent(String(userId));
  }

  function onScreen() {
    return document.visibilityState === 'visible';
  }

  /* 1. Confirm before destructive submits: buttons (or links) and forms with data-confirm. */
  document.addEventListener('click', function (event) {
    var control = event.target.closest && event.target.closest('button[data-confirm], input[data-confirm], a[data-confirm]');
    if (control && !control.disabled && !window.confirm(control.getAttribute('data-confirm'))) {
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

  /* 3. Times in the reader's own time zone. The server writes UTC: the datetime attribute
     (which stays) and the text "2024-12-03 14:05 UTC" (what shows without this file).
     Here the text becomes local: today "14:05", this year "3 Dec, 14:05", otherwise with
     the year, in the browser's language; the title holds the full local date and time. */
  var timeFormats = null;

  function makeTimeFormats() {
    try {
      // Two-digit hours where the clock counts to 24 ("09:05"), not before AM/PM ("9:05 AM").
      var probe = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' }).resolvedOptions();
      var hour = probe.hourCycle === 'h23' || probe.hourCycle === 'h24' || probe.hour12 === false ? '2-digit' : 'numeric';
      var format = function (options) { return new Intl.DateTimeFormat(undefined, options); };
      return {
        today: format({ hour: hour, minute: '2-digit' }),
        thisYear: format({ day: 'numeric', month: 'short', hour: hour, minute: '2-digit' }),
        otherYear: format({ day: 'numeric', month: 'short', year: 'numeric', hour: hour, minute: '2-digit' }),
        dateOnly: format({ day: 'numeric', month: 'short', year: 'numeric' }),
        full: format({ dateStyle: 'full', timeStyle: 'long' })
      };
    } catch (err) {
      return null; /* no Intl: the UTC text stays */
    }
  }

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  function localizeTime(time) {
    var formats = timeFormats || (timeFormats = makeTimeFormats());
    var moment = new Date(time.getAttribute('datetime') || '');
    if (!formats || isNaN(moment.getTime())) return;
    var now = new Date();
    var format = time.hasAttribute('data-date-only') ? formats.dateOnly
      : sameDay(moment, now) ? formats.today
      : moment.getFullYear() === now.getFullYear() ? formats.thisYear
      : formats.otherYear;
    time.textContent = format.format(moment);
    time.title = formats.full.format(moment);
  }

  function localizeTimes() {
    each(document.querySelectorAll('time[datetime]'), localizeTime);
  }

  /* A <time> for a timestamp that arrived in JSON, written like the server's, then local. */
  function timeElement(ts) {
    var time = document.createElement('time');
    setTime(time, ts);
    return time;
  }

  function setTime(time, ts) {
    if (typeof ts !== 'string') return;
    time.setAttribute('datetime', ts);
    time.textContent = ts.slice(0, 16).replace('T', ' ') + ' UTC';
    localizeTime(time);
  }

  /* 4. Chat: live updates over Server-Sent Events, sending without a reload, and older
     messages loaded as the list is scrolled up. */
  function hasMessage(list, id) {
    return list.querySelector('li[data-id="' + Number(id) + '"]') !== null;
  }

  function messageItem(msg, meId, how) {
    var li = el('li', 'msg ' + (String(msg.sender_id) === meId ? 'mine' : 'theirs'));
    li.setAttribute('data-id', String(msg.id));
    li.appendChild(el('span', 'msg-sender', msg.sender || ''));
    li.appendChild(el('p', 'msg-text', msg.message != null ? msg.message : msg.e2ee ? 'Encrypted message' : ''));
    li.appendChild(timeElement(msg.timestamp));
    if (msg.e2ee) {
      li.classList.add('e2ee');
      if (msg.envelope) li.setAttribute('data-envelope', JSON.stringify(msg.envelope));
      if (hooks.decorate) hooks.decorate(li, msg, how);
    }
    return li;
  }

  function initChat(list) {
    var otherId = String(list.getAttribute('data-other-id'));
    var meId = String(list.getAttribute('data-me-id'));
    var meName = list.getAttribute('data-me') || '';
    var empty = document.getElementById('no-messages');

    function scrollToEnd() {
      list.scrollTop = list.scrollHeight;
    }

    function nearEnd() {
      return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    }

    function appendMessage(msg, how) {
      if (msg.id == null || hasMessage(list, msg.id)) return;
      // Someone reading older messages stays where they are; otherwise follow the new one.
      var follow = nearEnd() || String(msg.sender_id) === meId;
      list.appendChild(messageItem(msg, meId, how));
      if (empty) empty.hidden = true;
      if (follow) scrollToEnd();
    }

    scrollToEnd();
    initOlderMessages(list, meId);

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
      appendMessage(msg, 'live');
      if (String(msg.sender_id) === meId) return;
      var live = document.getElementById('chat-live');
      if (live) live.textContent = msg.sender + ': ' + (msg.message != null ? msg.message : 'Encrypted message');
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

    // data-blocked: e2ee-chat.js holds the composer (a key to accept, no key in this browser).
    function send() {
      if (sending || form.hasAttribute('data-blocked')) return;
      if (typeof form.reportValidity === 'function' && !form.reportValidity()) return;
      sending = true;
      if (submitButton) submitButton.disabled = true;
      showError('');
      var text = textarea ? textarea.value : '';
      var plainPost = function () { return postForm(form); };
      var post = hooks.send ? hooks.send(text, plainPost)
        : plainPost().then(function (response) { return { response: response, sealed: false }; });
      post.then(function (sent) {
        var response = sent.response;
        return response.json().catch(function () { return null; }).then(function (data) {
          if (response.status === 201 && data && data.id != null) {
            appendMessage({
              id: data.id,
              sender_id: meId,
              sender: meName,
              receiver_id: otherId,
              message: text,
              e2ee: sent.sealed,
              mid: sent.mid,
              timestamp: data.timestamp
            }, 'sent');
            if (textarea && textarea.value === text) textarea.value = '';
          } else if (data && data.message) {
            showError(data.message);
          } else if (response.status === 401) {
            showError('Your session has ended. Reload the page and log in again.');
          } else {
            showError('The message could not be sent (error ' + response.status + '). Please try again.');
          }
        });
      }).catch(function (err) {
        showError((err && err.userMessage) || 'The message could not be sent. Check your connection and try again.');
      }).then(function () {
        sending = false;
        if (submitButton) submitButton.disabled = form.hasAttribute('data-blocked');
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

  /* Older messages: scrolled to the top of the list, or following the "Older messages"
     link (which without this file opens the previous page), the page before the oldest
     shown is fetched and put above it, and what was on screen stays where it was. A page
     shorter than asked for is the beginning of the conversation. Quietly: nothing is
     announced and focus stays put. */
  var NEAR_TOP = 40; /* px */

  function initOlderMessages(list, meId) {
    var link = document.getElementById('older-link');
    var url = list.getAttribute('data-history-url');
    var pageSize = Number(list.getAttribute('data-page-size')) || 50;
    if (!link || !url || !window.fetch) return;
    var loading = false;
    var stopped = false;

    function oldestId() {
      var first = list.querySelector('li[data-id]');
      return first ? Number(first.getAttribute('data-id')) : 0;
    }

    function prepend(messages) {
      var fragment = document.createDocumentFragment();
      messages.forEach(function (msg) {
        if (msg && msg.id != null && !hasMessage(list, msg.id)) fragment.appendChild(messageItem(msg, meId, 'older'));
      });
      var height = list.scrollHeight;
      var top = list.scrollTop;
      list.insertBefore(fragment, list.firstChild);
      list.scrollTop = top + (list.scrollHeight - height); /* the added height goes above the view */
    }

    function reachedTheBeginning() {
      stopped = true;
      if (document.activeElement === link) list.focus(); /* the link goes: keep the keyboard near */
      link.parentNode.hidden = true;
    }

    function loadOlder() {
      var oldest = oldestId();
      if (loading || stopped || !oldest) return;
      loading = true;
      list.setAttribute('aria-busy', 'true');
      fetch(url + '?before=' + oldest + '&limit=' + pageSize, {
        credentials: 'same-origin',
        headers: { 'Accept': 'application/json' }
      }).then(function (response) {
        if (!response.ok) throw new Error('history answered ' + response.status);
        return response.json();
      }).then(function (data) {
        var messages = (data && data.messages) || [];
        prepend(messages);
        if (messages.length < pageSize) reachedTheBeginning();
        else link.href = url + '?before=' + oldestId();
      }).catch(function () {
        stopped = true; /* no retry storm while scrolling: the link still opens the older page */
      }).then(function () {
        loading = false;
        list.removeAttribute('aria-busy');
      });
    }

    list.addEventListener('scroll', function () {
      if (list.scrollTop < NEAR_TOP) loadOlder();
    }, { passive: true });

    link.addEventListener('click', function (event) {
      if (stopped) return;
      event.preventDefault();
      loadOlder();
    });
  }

  /* 5. Unread counts per conversation, for the tab's title and the conversation list's
     badges. Each count covers the messages up to lastId: a message event at or below it is
     already counted (the page rendered it, or GET /conversations returned it), and a
     `read` event brings the server's count. Until the counts are known, events wait. */
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
  function serverCounts() {
    return fetch('/conversations?preview=0', { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (response) { return response.ok ? response.json() : { conversations: [] }; })
      .catch(function () { return { conversations: [] }; })
      .then(function (data) {
        return (data.conversations || []).map(function (c) {
          return { id: c.user.id, n: c.unread, lastId: c.last_message ? c.last_message.id : 0 };
        });
      });
  }

  function fetchUnread() {
    if (!window.fetch) return seedUnread([]);
    serverCounts().then(seedUnread);
  }

  /* Only messages are replayed after a reconnect (Last-Event-ID): a `read` from another tab
     in the gap would leave a stale badge. So a reconnected stream asks for the counts again;
     a count the stream has already moved past keeps its own figure. */
  function resyncUnread() {
    if (!window.fetch || !unread.ready) return;
    serverCounts().then(function (entries) {
      entries.forEach(function (entry) {
        var count = countFor(entry.id);
        if (entry.lastId >= count.lastId) {
          count.n = entry.n;
          count.lastId = entry.lastId;
        }
      });
      showUnread();
    });
  }

  /* 6. The conversation list (home page, and beside the chat): badges, last message,
     most recent on top. Beside the chat the rows show no preview (data-previews="0"). */
  var PREVIEW_CHARS = 100;

  function preview(text) {
    var line = String(text || '').split(/\s+/).filter(Boolean).join(' ');
    return line.length <= PREVIEW_CHARS ? line : line.slice(0, PREVIEW_CHARS - 1).trim() + '\u2026';
  }

  function buildRow(user, withPreview) {
    var li = el('li', 'item conversation');
    li.setAttribute('data-user-id', String(user.id));
    li.setAttribute('data-last-id', '0');
    var main = el('div', 'item-main');
    var link = el('a', 'conversation-name', user.username);
    link.href = chatHref(user.id);
    var badge = el('span', 'badge unread-count');
    badge.hidden = true;
    badge.appendChild(el('span', 'visually-hidden', ', '));
    badge.appendChild(el('span', 'unread-number', '0'));
    badge.appendChild(el('span', 'visually-hidden', ' unread'));
    link.appendChild(badge);
    main.appendChild(link);
    if (withPreview) main.appendChild(el('p', 'conversation-preview', 'No messages yet.'));
    li.appendChild(main);
    return li;
  }

  function initConversations(list) {
    var empty = document.getElementById('no-conversations');
    var withPreview = list.getAttribute('data-previews') !== '0';
    var rows = {};
    each(list.querySelectorAll('li[data-user-id]'), function (li) {
      rows[li.getAttribute('data-user-id')] = li;
    });

    function rowFor(user) {
      var key = String(user.id);
      if (!rows[key]) {
        rows[key] = buildRow(user, withPreview);
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
      var line = li.querySelector('.conversation-preview');
      var text = msg.message != null ? preview(msg.message) : 'Encrypted message';
      if (line) line.textContent = (String(msg.sender_id) === meId ? 'You: ' : '') + text;
      setTime(li.querySelector('time') || li.appendChild(document.createElement('time')), msg.timestamp);
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

    unread.listeners.push(showCounts);
    listView = { showMessage: showMessage, addContact: rowFor };
    seedUnread(Object.keys(rows).map(function (id) {
      var badge = rows[id].querySelector('.unread-number');
      return { id: id, n: Number(badge ? badge.textContent : 0) || 0, lastId: Number(rows[id].getAttribute('data-last-id')) || 0 };
    }));
  }

  /* 7. Contact requests on the home page. One that arrives live joins the list as a clone
     of the page's <template> (no HTML built from strings); Accept and Deny answer in
     place. Should the answer fail, the form is submitted the ordinary way, so the server's
     own message shows. */
  var acceptedHere = {}; /* connection ids accepted in this tab: their `contact` event is no news here */

  function fillRequest(li, conn) {
    var name = conn.user.username;
    var id = encodeURIComponent(String(conn.id));
    li.setAttribute('data-connection-id', String(conn.id));
    li.querySelector('.request-name').textContent = name;
    each(li.querySelectorAll('.request-who'), function (span) { span.textContent = ' ' + name; });
    var time = li.querySelector('time');
    if (time) setTime(time, conn.created_at);
    li.querySelector('form[data-request-action="accept"]').setAttribute('action', '/connect/accept/' + id);
    li.querySelector('form[data-request-action="deny"]').setAttribute('action', '/connect/deny/' + id);
    li.querySelector('form[data-request-action="deny"] button')
      .setAttribute('data-confirm', 'Deny ' + name + '\u2019s request and block them?');
    each(li.querySelectorAll('input[name="csrf_token"]'), function (input) { input.value = csrfToken(); });
  }

  function initRequests(section) {
    var list = document.getElementById('requests');
    var template = document.getElementById('request-template');
    if (!list) return;

    function rowOf(connectionId) {
      return list.querySelector('li[data-connection-id="' + Number(connectionId) + '"]');
    }

    function add(conn) {
      if (!template || !template.content || rowOf(conn.id)) return;
      var li = template.content.querySelector('li').cloneNode(true);
      fillRequest(li, conn);
      list.insertBefore(li, list.firstChild); /* newest first, as the page lists them */
      section.hidden = false;
    }

    function drop(connectionId) {
      var li = rowOf(connectionId);
      if (li) li.parentNode.removeChild(li);
      section.hidden = list.querySelector('li') === null;
    }

    // Where the keyboard goes when the answered request leaves the page.
    function focusAfter(li, conn, action) {
      var next = li.nextElementSibling || li.previousElementSibling;
      var contact = action === 'accept' && listView && listView.addContact(conn.user);
      var target = contact ? contact.querySelector('a') : next ? next.querySelector('button') : document.getElementById('chats-heading');
      if (target) target.focus();
    }

    function answered(form, li, conn) {
      var action = form.getAttribute('data-request-action');
      var name = conn.user.username;
      if (action === 'accept') {
        acceptedHere[String(conn.id)] = true;
        announce('You and ' + name + ' are now connected', chatHref(conn.user.id));
      } else {
        announce('Request from ' + name + ' denied; ' + name + ' is blocked.');
      }
      focusAfter(li, conn, action);
      drop(conn.id);
      showUnread();
    }

    document.addEventListener('submit', function (event) {
      var form = event.target;
      if (event.defaultPrevented || !window.fetch || !(form instanceof HTMLFormElement) ||
          !form.classList.contains('request-form') || !list.contains(form)) return;
      event.preventDefault();
      var li = form.closest('li');
      each(li.querySelectorAll('button'), function (button) { button.disabled = true; });
      postForm(form).then(function (response) {
        if (!response.ok) throw new Error('answered ' + response.status);
        return response.json();
      }).then(function (conn) {
        answered(form, li, conn);
      }).catch(function () {
        form.submit();
      });
    });

    requestsView = { add: add, drop: drop };
  }

  /* 8. Desktop notifications, only when asked for: the home page's button asks the
     browser's permission (nothing else ever does). Once granted, a message from someone
     else that arrives while the tab is hidden shows "New message from NAME", never the
     text (it would show on a locked screen). One per conversation (the tag): a newer one
     replaces it, and the person's other tabs replace rather than add to it. Clicking it
     brings this tab forward, on that chat. */
  var NOTIFY_STATES = {
    granted: 'Desktop notifications are on: they say who wrote, never what.',
    denied: 'Desktop notifications are blocked for this site in your browser\u2019s settings.',
    unsupported: 'This browser cannot show desktop notifications.'
  };
  var notified = {}; /* per conversation, the newest message notified (reconnects repeat some) */

  function notificationsWork() {
    return 'Notification' in window && typeof window.Notification.requestPermission === 'function';
  }

  function askPermission() {
    return new Promise(function (resolve) {
      // Older browsers answer through a callback rather than a promise.
      var answer = Notification.requestPermission(resolve);
      if (answer && typeof answer.then === 'function') {
        answer.then(resolve, function () { resolve(Notification.permission); });
      }
    });
  }

  function initNotifyButton(button) {
    var status = document.getElementById('notify-status');

    function show(state) {
      var text = NOTIFY_STATES[state];
      button.hidden = Boolean(text); /* only 'default' leaves something to ask */
      if (status) {
        status.textContent = text || '';
        status.hidden = !text;
      }
    }

    show(notificationsWork() ? Notification.permission : 'unsupported');
    button.addEventListener('click', function () {
      var hadFocus = document.activeElement === button;
      askPermission().then(function (state) {
        show(state);
        if (hadFocus && button.hidden && status) status.focus(); /* the button is gone */
      });
    });
  }

  function notifyDesktop(msg) {
    if (onScreen() || !notificationsWork() || Notification.permission !== 'granted') return;
    var key = String(msg.with.id);
    if (msg.id <= (notified[key] || 0)) return;
    notified[key] = msg.id;
    var note;
    try {
      note = new Notification('New message from ' + msg.with.username, { tag: 'ghostcache-chat-' + key });
    } catch (err) {
      return; /* some mobile browsers show notifications only from a service worker */
    }
    note.onclick = function () {
      window.focus();
      if (!chatView || chatView.otherId !== key) window.location.href = chatHref(key);
      note.close();
    };
  }

  /* 9. One live stream per tab, for the signed-in user: every page decides where to show
     what arrives. The chat with that person shows the message; any other page says who
     wrote, with a link, in a polite live region. Requests, new contacts and shares are
     announced there too. */

  // The one place that tells the person about something new, on the page.
  function announce(text, href) {
    var box = document.getElementById('live-notices');
    if (!box) return;
    var item = el('p', 'live-notice');
    if (href) {
      var link = el('a', null, text);
      link.href = href;
      item.appendChild(link);
    } else {
      item.textContent = text;
    }
    box.appendChild(item);
    while (box.children.length > 5) box.removeChild(box.firstChild);
  }

  function onMessage(msg, meId) {
    var fromThem = String(msg.sender_id) !== meId;
    if (chatView && String(msg.with.id) === chatView.otherId) {
      chatView.show(msg);
    } else if (fromThem) {
      announce('New message from ' + msg.with.username, chatHref(msg.with.id));
    }
    if (fromThem) notifyDesktop(msg);
    if (listView) listView.showMessage(msg, meId);
    whenCounted(function () { countMessage(msg, meId); });
  }

  function onRead(data) {
    whenCounted(function () { countFor(data.with.id).n = Number(data.unread) || 0; });
  }

  function onRequest(conn) {
    if (requestsView) requestsView.add(conn);
    announce('Contact request from ' + conn.user.username, requestsView ? '#requests-heading' : '/');
  }

  function onContact(conn) {
    if (requestsView) requestsView.drop(conn.id);
    if (listView) {
      listView.addContact(conn.user);
      showUnread();
    }
    if (!acceptedHere[String(conn.id)]) {
      announce('You and ' + conn.user.username + ' are now connected', chatHref(conn.user.id));
    }
  }

  function onShare(file) {
    announce(file.owner.username + ' shared ' + file.filename + ' with you', '/file/' + encodeURIComponent(String(file.id)) + '/view');
  }

  /* A conversation turned end-to-end encrypted, or a contact's key changed: the chat with
     them shows it (e2ee-chat.js); anywhere else, a notice with a link to that chat. */
  function onE2ee(name, data) {
    if (hooks.onEvent && hooks.onEvent(name, data)) return;
    var who = data.with.username;
    announce(name === 'e2ee' ? 'Your conversation with ' + who + ' is now end-to-end encrypted'
      : who + '\u2019s security key changed: compare safety numbers again', chatHref(data.with.id));
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
    if (!listView) fetchUnread();
    var source = new EventSource(url);
    var connectedBefore = false;
    source.addEventListener('open', function () {
      if (connectedBefore) resyncUnread();
      connectedBefore = true;
    });
    var hasUser = function (data) { return data.user && data.user.id != null; };
    listen(source, 'message', function (msg) { onMessage(msg, meId); }, function (msg) { return msg.with && msg.id != null; });
    listen(source, 'read', onRead, function (data) { return data.with && data.with.id != null; });
    listen(source, 'request', onRequest, hasUser);
    listen(source, 'contact', onContact, hasUser);
    listen(source, 'share', onShare, function (file) { return file.owner && file.id != null; });
    var hasWith = function (data) { return data.with && data.with.id != null; };
    listen(source, 'e2ee', function (data) { onE2ee('e2ee', data); }, hasWith);
    listen(source, 'key', function (data) { onE2ee('key', data); }, hasWith);
  }

  /* A file link (/file/<id>/view#key=...) opened while signed out lands here with its key
     in the fragment. The fragment never reaches the server; adding it to the form's action
     makes the browser keep it across the redirect after login (a Location without a
     fragment inherits the request's), so the file page still finds the key. */
  function keepKeyThroughLogin() {
    var form = document.querySelector('form[action^="/login"]');
    if (form && /^#key=/.test(location.hash)) form.action = form.getAttribute('action') + location.hash;
  }

  function init() {
    keepKeyThroughLogin();
    unread.baseTitle = document.title;
    localizeTimes();
    // "Today" moves on at midnight: a tab shown again brings its times up to date.
    document.addEventListener('visibilitychange', function () {
      if (onScreen()) localizeTimes();
    });
    var signedIn = document.body && document.body.hasAttribute('data-stream-url');
    var messages = document.querySelector('#messages[data-other-id]');
    if (messages) initChat(messages);
    var conversations = document.getElementById('conversations');
    if (conversations && signedIn) initConversations(conversations);
    var requests = document.getElementById('requests-section');
    if (requests && signedIn) initRequests(requests);
    var notifyButton = document.getElementById('notify-button');
    if (notifyButton) initNotifyButton(notifyButton);
    if (signedIn) initStream(document.body);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
