/* chatsys demo: a chat client of the public /v1 API, in plain JavaScript (no build step).
 *
 * - The application token lives in memory and in this tab's sessionStorage, never in a URL's
 *   query string (the API takes it in the path, as every client does).
 * - Text from the service is put into the page as text nodes only: no innerHTML anywhere.  Search
 *   highlights arrive as HTML-escaped text with <em>…</em> around the matches; they are split on
 *   those two tags and their entities decoded into text.
 * - Live updates come from the event-stream gateway when the page is told where it is
 *   (<meta name="chatsys-events-url">) and it answers; otherwise, and whenever it stops
 *   answering, the page polls the REST API, backing off while the service fails.
 */
(function () {
  "use strict";

  var STORE_KEY = "chatsys-demo";
  var PAGE = 50;                  // messages per page (the API's default)
  var POLL_MS = 1000;             // while the tab is visible and all is well
  var POLL_HIDDEN_MS = 10000;     // while the tab is hidden
  var POLL_ERROR_MAX_MS = 30000;  // backoff ceiling while the service fails
  var STREAM_RETRY_MS = 30000;    // how soon to try the stream again after it failed to open
  var CHATS_EVERY = 5;            // refresh the chat list every N polls

  var API = new URL("v1/", new URL(".", window.location.href)).pathname;
  // null: no stream configured; "" : the stream is on this origin (behind the same proxy);
  // otherwise the gateway's origin and path prefix.
  var EVENTS_BASE = (function () {
    var meta = document.querySelector('meta[name="chatsys-events-url"]');
    var value = meta ? (meta.getAttribute("content") || "").trim() : "";
    return value ? value.replace(/\/+$/, "") : null;
  })();

  function $(id) { return document.getElementById(id); }
  function enc(value) { return encodeURIComponent(String(value)); }

  var state = {
    token: null,
    app: null,
    chats: new Map(),       // chat_number -> representation
    chatsNext: null,        // pagination.next of the chat list
    chat: null,             // the chat shown: its number
    messages: new Map(),    // message_number -> {data, node}
    olderNext: null,        // pagination.next towards older messages
    searchNext: null,
    searchQuery: null,
    generation: 0,          // bumps whenever the chat shown changes: late answers are dropped
  };

  var live = { mode: "off", timer: null, delay: POLL_MS, failures: 0, ticks: 0, source: null,
               streamRetry: null, pollError: false };

  // -- the API -------------------------------------------------------------------------------

  function ApiError(status, code, message, details) {
    this.status = status;
    this.code = code;
    this.message = message;
    this.details = details;
  }

  function describe(status, error) {
    var message = error && typeof error.message === "string" ? error.message : "";
    if (status === 503) {
      return "The service is unavailable right now (a database, cache or broker it needs is down)." +
        (message ? " It said: " + message : "") + " Retrying will work once it is back.";
    }
    if (status === 0) return "Cannot reach the service. Is it running? (" + message + ")";
    if (!message) message = "The service answered HTTP " + status + ".";
    var details = error && Array.isArray(error.details) ? error.details : [];
    var extra = details
      .filter(function (d) { return d && typeof d.message === "string"; })
      .map(function (d) { return (d.field ? d.field + ": " : "") + d.message; })
      .filter(function (text) { return message.indexOf(text) === -1; });
    return extra.length ? message + " (" + extra.join("; ") + ")" : message;
  }

  function api(method, path, body) {
    var init = { method: method, headers: { Accept: "application/json" }, cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var url = path.charAt(0) === "/" ? path : API + path;
    return fetch(url, init).then(
      function (response) {
        if (response.status === 204) return null;
        return response.json().then(
          function (data) { return data; },
          function () { return null; }
        ).then(function (data) {
          if (response.ok) return data;
          var error = data && data.error ? data.error : null;
          throw new ApiError(response.status, error && error.code, describe(response.status, error),
                             error && error.details);
        });
      },
      function (failure) {
        throw new ApiError(0, "network", describe(0, { message: String(failure && failure.message || failure) }));
      }
    );
  }

  function appPath() { return "applications/" + enc(state.token); }
  function chatPath(n) { return appPath() + "/chats/" + enc(n === undefined ? state.chat : n); }

  // -- messages to the person ----------------------------------------------------------------

  function showError(error) {
    $("error-text").textContent = error instanceof ApiError ? error.message : String(error);
    $("error").hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error-text").textContent = "";
  }

  function setLive(mode, text) {
    live.mode = mode;
    $("live").dataset.mode = mode;
    $("live").textContent = text;
  }

  function flash(node) {
    node.classList.remove("changed");
    void node.offsetWidth;  // restart the animation
    node.classList.add("changed");
  }

  function setCount(node, value) {
    var text = String(value);
    if (node.textContent !== text) {
      node.textContent = text;
      flash(node);
    }
  }

  // A form's submit: disable its button while the request runs, report a failure plainly.
  function submitting(form, action) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      if (button.disabled) return;
      button.disabled = true;
      Promise.resolve().then(action).then(
        function () { button.disabled = false; },
        function (error) { button.disabled = false; showError(error); }
      );
    });
  }

  // -- persistence (this tab only) ------------------------------------------------------------

  function save() {
    try {
      if (state.token) {
        sessionStorage.setItem(STORE_KEY, JSON.stringify({ token: state.token, chat: state.chat }));
      } else {
        sessionStorage.removeItem(STORE_KEY);
      }
    } catch (ignored) { /* storage may be off: the page still works for this visit */ }
  }

  function restore() {
    try {
      var saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
      return saved && typeof saved.token === "string" ? saved : null;
    } catch (ignored) {
      return null;
    }
  }

  // -- the application -------------------------------------------------------------------------

  function showApp(app) {
    state.app = app;
    $("app-title").textContent = app.name;
    $("app-token-shown").value = state.token;
    setCount($("chats-count"), app.chats_count);
    $("app-none").hidden = true;
    $("app-current").hidden = false;
    $("chats-panel").hidden = false;
  }

  function enterApp(token, chat) {
    state.token = token;
    return api("GET", appPath()).then(function (app) {
      showApp(app);
      save();
      return loadChats().then(function () {
        if (chat && state.chats.has(chat)) return openChat(chat);
        startLive();
      });
    }, function (error) {
      state.token = null;
      save();
      throw error;
    });
  }

  function leaveApp() {
    stopLive();
    state.token = null;
    state.app = null;
    state.chat = null;
    state.generation += 1;
    state.chats.clear();
    $("chat-list").textContent = "";
    clearMessages();
    save();
    $("app-current").hidden = true;
    $("app-none").hidden = false;
    $("chats-panel").hidden = true;
    $("messages-panel").hidden = true;
    $("search-panel").hidden = true;
    setLive("off", "Not connected");
    $("app-name").focus();
  }

  // -- chats ---------------------------------------------------------------------------------

  function chatLabel(chat) {
    return chat.name ? chat.name : "Chat " + chat.chat_number;
  }

  function renderChats() {
    var list = $("chat-list");
    // Rebuilt in place of the old list: keep the keyboard focus on the chat it was on.
    var focused = document.activeElement && list.contains(document.activeElement)
      ? document.activeElement.dataset.chat : null;
    list.textContent = "";
    var numbers = Array.from(state.chats.keys()).sort(function (a, b) { return b - a; });
    numbers.forEach(function (n) {
      var chat = state.chats.get(n);
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.dataset.chat = String(n);
      button.setAttribute("aria-current", n === state.chat ? "true" : "false");
      var name = document.createElement("span");
      name.textContent = chatLabel(chat);
      var count = document.createElement("span");
      count.className = "n";
      count.textContent = "#" + n + " \u00b7 " + chat.messages_count + " msg";
      button.append(name, count);
      button.addEventListener("click", function () {
        openChat(n).then(function () { $("message-body").focus(); }, showError);
      });
      item.append(button);
      list.append(item);
      if (focused === String(n)) button.focus();
    });
  }

  function loadChats() {
    return api("GET", appPath() + "/chats?order=newest&limit=" + PAGE).then(function (page) {
      page.data.forEach(function (chat) { state.chats.set(chat.chat_number, chat); });
      if (state.chatsNext === null || state.chats.size <= PAGE) state.chatsNext = page.pagination.next;
      $("chats-more").hidden = !state.chatsNext;
      renderChats();
    });
  }

  function moreChats() {
    if (!state.chatsNext) return Promise.resolve();
    return api("GET", state.chatsNext).then(function (page) {
      page.data.forEach(function (chat) { state.chats.set(chat.chat_number, chat); });
      state.chatsNext = page.pagination.next;
      $("chats-more").hidden = !state.chatsNext;
      renderChats();
    });
  }

  function createChat() {
    var name = $("chat-name").value.trim();
    return api("POST", appPath() + "/chats", name ? { name: name } : {}).then(function (chat) {
      clearError();
      $("chat-name").value = "";
      state.chats.set(chat.chat_number, chat);
      renderChats();
      return openChat(chat.chat_number).then(function () { $("message-body").focus(); });
    });
  }

  function showChat(chat) {
    state.chats.set(chat.chat_number, chat);
    $("messages-heading").textContent = chatLabel(chat) + " (#" + chat.chat_number + ")";
    setCount($("messages-count"), chat.messages_count);
  }

  // -- messages ------------------------------------------------------------------------------

  function clearMessages() {
    state.messages.clear();
    state.olderNext = null;
    $("message-list").textContent = "";
    $("older").hidden = true;
    $("messages-empty").hidden = true;
    $("search-results").textContent = "";
    $("search-status").textContent = "";
    $("search-more").hidden = true;
    state.searchNext = null;
  }

  function maxNumber() {
    var max = 0;
    state.messages.forEach(function (_, n) { if (n > max) max = n; });
    return max;
  }

  function nearBottom() {
    var s = $("message-scroller");
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  function scrollToBottom() {
    var s = $("message-scroller");
    s.scrollTop = s.scrollHeight;
  }

  function messageNode(n) {
    var item = document.createElement("li");
    item.className = "message";
    item.dataset.number = String(n);
    var meta = document.createElement("div");
    meta.className = "meta";
    var number = document.createElement("span");
    number.className = "num";
    number.textContent = "#" + n;
    var edited = document.createElement("span");
    edited.className = "edited";
    var actions = document.createElement("span");
    actions.className = "actions";
    var edit = document.createElement("button");
    edit.type = "button";
    edit.className = "quiet edit";
    edit.textContent = "Edit";
    edit.setAttribute("aria-label", "Edit message " + n);
    edit.addEventListener("click", function () { startEdit(n); });
    actions.append(edit);
    meta.append(number, edited, actions);
    var body = document.createElement("p");
    body.className = "body";
    item.append(meta, body);
    return item;
  }

  function paint(entry) {
    var data = entry.data, node = entry.node;
    if (entry.editing) return;  // the person is typing: the newest version shows after
    node.classList.toggle("deleted", !!data.deleted);
    node.querySelector(".body").textContent = data.deleted ? "(deleted)" : data.body;
    node.querySelector(".edited").textContent = !data.deleted && data.version > 1 ? "edited (v" + data.version + ")" : "";
    node.querySelector(".edit").hidden = !!data.deleted;
    if (data.created_at) node.title = "created " + data.created_at + (data.version > 1 ? ", edited " + data.updated_at : "");
  }

  // A message from any source (a page, a poll, an event, our own POST or PATCH): kept when it
  // is newer than what we show (events may repeat or come late; each carries its version).
  function applyMessage(data, fresh) {
    if (!data || data.chat_number !== state.chat || typeof data.message_number !== "number") return;
    var n = data.message_number;
    var entry = state.messages.get(n);
    if (entry) {
      if (entry.data.deleted || (data.version || 0) <= (entry.data.version || 0)) return;
      entry.data = data;
      paint(entry);
      return;
    }
    var stick = nearBottom();
    entry = { data: data, node: messageNode(n), editing: false };
    state.messages.set(n, entry);
    paint(entry);
    var list = $("message-list");
    var after = null;
    for (var child = list.firstElementChild; child; child = child.nextElementSibling) {
      if (Number(child.dataset.number) > n) { after = child; break; }
    }
    list.insertBefore(entry.node, after);
    $("messages-empty").hidden = true;
    if (fresh && n === maxNumber()) {
      entry.node.classList.add("fresh");
      if (stick) scrollToBottom();
    }
  }

  function markDeleted(n, version) {
    var entry = state.messages.get(n);
    if (!entry || entry.data.deleted) return;
    entry.data = { chat_number: state.chat, message_number: n, version: version || entry.data.version, deleted: true };
    entry.editing = false;
    var form = entry.node.querySelector("form");
    if (form) form.remove();
    entry.node.querySelector(".body").hidden = false;
    paint(entry);
  }

  // The newest page.  Merged into what is shown: new and edited messages, and any shown message
  // inside the page's range that the page no longer holds has been deleted.
  function refreshNewest(generation) {
    // Only what was shown before asking can be judged deleted by this answer: a message we
    // learnt of meanwhile (our own POST's 201) may be newer than the page.
    var known = new Set(state.messages.keys());
    return api("GET", chatPath() + "/messages?order=newest&limit=" + PAGE).then(function (page) {
      if (generation !== state.generation) return;
      var before = maxNumber();
      var numbers = new Set();
      var lowest = Infinity;
      page.data.forEach(function (m) { numbers.add(m.message_number); lowest = Math.min(lowest, m.message_number); });
      if (before > 0 && page.pagination.next && lowest > before + 1) {
        return reloadMessages(generation);  // more arrived than a page holds: start over
      }
      var floor = page.pagination.next ? lowest : 0;
      state.messages.forEach(function (entry, n) {
        if (n >= floor && known.has(n) && !numbers.has(n)) markDeleted(n);
      });
      page.data.slice().reverse().forEach(function (m) { applyMessage(m, before > 0); });
      if (before === 0 && state.olderNext === null) {
        state.olderNext = page.pagination.next;
        $("older").hidden = !state.olderNext;
      }
      $("messages-empty").hidden = state.messages.size > 0;
    });
  }

  function reloadMessages(generation) {
    state.messages.clear();
    state.olderNext = null;
    $("message-list").textContent = "";
    return refreshNewest(generation).then(scrollToBottom);
  }

  function loadOlder() {
    if (!state.olderNext) return Promise.resolve();
    var generation = state.generation;
    var scroller = $("message-scroller");
    var fromBottom = scroller.scrollHeight - scroller.scrollTop;
    return api("GET", state.olderNext).then(function (page) {
      if (generation !== state.generation) return;
      page.data.forEach(function (m) { applyMessage(m, false); });
      state.olderNext = page.pagination.next;
      $("older").hidden = !state.olderNext;
      scroller.scrollTop = scroller.scrollHeight - fromBottom;  // keep the reader's place
      if (!state.olderNext) $("message-body").focus();
    });
  }

  function openChat(n) {
    stopLive();
    state.chat = n;
    state.generation += 1;
    var generation = state.generation;
    save();
    clearMessages();
    renderChats();
    $("messages-panel").hidden = false;
    $("search-panel").hidden = false;
    return api("GET", chatPath()).then(function (chat) {
      if (generation !== state.generation) return;
      showChat(chat);
      return refreshNewest(generation).then(function () {
        scrollToBottom();
        startLive();
      });
    });
  }

  function postMessage() {
    var input = $("message-body");
    var generation = state.generation;
    return api("POST", chatPath() + "/messages", { body: input.value }).then(function (message) {
      clearError();
      input.value = "";
      if (generation === state.generation) {
        applyMessage(message, true);
        scrollToBottom();
      }
      pollSoon();
    });
  }

  function startEdit(n) {
    var entry = state.messages.get(n);
    if (!entry || entry.editing || entry.data.deleted) return;
    entry.editing = true;
    var body = entry.node.querySelector(".body");
    body.hidden = true;
    var form = document.createElement("form");
    form.noValidate = true;
    var label = document.createElement("label");
    label.className = "visually-hidden";
    label.htmlFor = "edit-" + n;
    label.textContent = "New text of message " + n;
    var input = document.createElement("input");
    input.id = "edit-" + n;
    input.type = "text";
    input.autocomplete = "off";
    input.value = entry.data.body;
    var saveButton = document.createElement("button");
    saveButton.type = "submit";
    saveButton.textContent = "Save";
    var cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "quiet";
    cancel.textContent = "Cancel";
    form.append(label, input, saveButton, cancel);
    entry.node.append(form);

    function done() {
      entry.editing = false;
      form.remove();
      body.hidden = false;
      paint(entry);
      entry.node.querySelector(".edit").focus();
    }
    cancel.addEventListener("click", done);
    input.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { event.preventDefault(); done(); }
    });
    submitting(form, function () {
      return api("PATCH", chatPath() + "/messages/" + enc(n), { body: input.value }).then(function (message) {
        clearError();
        done();
        applyMessage(message, false);
      });
    });
    input.focus();
    input.select();
  }

  // -- search --------------------------------------------------------------------------------

  var ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": "\"", "&apos;": "'" };

  function decodeEntities(text) {
    return text.replace(/&(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});/g, function (entity) {
      if (ENTITIES[entity]) return ENTITIES[entity];
      var hex = entity.charAt(2) === "x" || entity.charAt(2) === "X";
      var code = parseInt(entity.slice(hex ? 3 : 2, -1), hex ? 16 : 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : entity;
    });
  }

  // "hello <em>wor</em>ld &amp; more" -> text "hello ", <mark>wor</mark>, text "ld & more".
  function renderHighlight(target, fragment) {
    target.textContent = "";
    var inside = false;
    fragment.split(/(<em>|<\/em>)/).forEach(function (piece) {
      if (piece === "<em>") { inside = true; return; }
      if (piece === "</em>") { inside = false; return; }
      if (!piece) return;
      var text = decodeEntities(piece);
      if (inside) {
        var mark = document.createElement("mark");
        mark.textContent = text;
        target.append(mark);
      } else {
        target.append(document.createTextNode(text));
      }
    });
  }

  function showHits(page, append) {
    var list = $("search-results");
    if (!append) list.textContent = "";
    page.data.forEach(function (hit) {
      var item = document.createElement("li");
      var n = document.createElement("span");
      n.className = "n";
      n.textContent = "#" + hit.message_number;
      var fragment = document.createElement("span");
      fragment.className = "fragment";
      renderHighlight(fragment, typeof hit.highlight === "string" ? hit.highlight : "");
      item.append(n, fragment);
      list.append(item);
    });
    state.searchNext = page.pagination.next;
    $("search-more").hidden = !state.searchNext;
    var shown = list.children.length;
    $("search-status").textContent = shown === 0
      ? "No message matches \u201c" + state.searchQuery + "\u201d (new messages are searchable a moment after they are sent)."
      : shown + (state.searchNext ? "+" : "") + (shown === 1 ? " message matches." : " messages match.");
  }

  function search() {
    var q = $("search-q").value;
    var generation = state.generation;
    state.searchQuery = q.trim();
    return api("GET", chatPath() + "/messages/search?q=" + enc(q)).then(function (page) {
      if (generation !== state.generation) return;
      clearError();
      showHits(page, false);
    });
  }

  function moreHits() {
    if (!state.searchNext) return Promise.resolve();
    return api("GET", state.searchNext).then(function (page) { showHits(page, true); });
  }

  // -- live updates: the event stream, or polling with backoff ----------------------------------

  function stopLive() {
    clearTimeout(live.timer);
    clearTimeout(live.streamRetry);
    live.timer = null;
    live.streamRetry = null;
    if (live.source) {
      live.source.close();
      live.source = null;
    }
  }

  function startLive() {
    stopLive();
    live.failures = 0;
    live.ticks = 0;
    if (state.chat !== null && EVENTS_BASE !== null && window.EventSource) {
      openStream();
    }
    schedulePoll(0);
  }

  function pollingText() {
    return "Live: polling every " + Math.round(live.delay / 100) / 10 + " s" +
      (EVENTS_BASE !== null ? " (event stream unreachable)" : "");
  }

  function openStream() {
    var source = new EventSource(EVENTS_BASE + "/v1/" + chatPath() + "/events");
    var opened = false;
    var generation = state.generation;
    live.source = source;
    source.onopen = function () {
      opened = true;
      setLive("stream", "Live: event stream");
      refreshNewest(generation).catch(function () { /* the next event or poll catches up */ });
    };
    source.onerror = function () {
      if (opened && source.readyState !== EventSource.CLOSED) {
        setLive("polling", "Live: stream reconnecting, polling meanwhile");
        return;  // EventSource reconnects by itself, sending Last-Event-ID
      }
      source.close();
      if (live.source === source) live.source = null;
      setLive("polling", pollingText());
      clearTimeout(live.streamRetry);
      live.streamRetry = setTimeout(function () {
        if (generation === state.generation && !live.source) openStream();
      }, STREAM_RETRY_MS);
    };
    function on(type, handler) {
      source.addEventListener(type, function (event) {
        if (generation !== state.generation) return;
        var data;
        try { data = JSON.parse(event.data); } catch (ignored) { return; }
        handler(data);
      });
    }
    on("message.created", function (m) { applyMessage(m, true); });
    on("message.updated", function (m) { applyMessage(m, false); });
    on("message.deleted", function (m) {
      if (m && m.chat_number === state.chat) markDeleted(m.message_number, m.version);
    });
    on("chat.updated", function (chat) {
      if (chat && chat.chat_number === state.chat) showChat(chat);
    });
    on("chat.deleted", function (chat) {
      if (chat && chat.chat_number === state.chat) {
        showError("This chat has been deleted.");
        stopLive();
      }
    });
    source.addEventListener("reset", function () {
      if (generation === state.generation) reloadMessages(generation).catch(showError);
    });
  }

  function streaming() {
    return live.source !== null && live.source.readyState === EventSource.OPEN;
  }

  function schedulePoll(delay) {
    clearTimeout(live.timer);
    live.timer = setTimeout(poll, delay);
  }

  function pollSoon() {
    if (live.timer !== null) schedulePoll(150);
  }

  function poll() {
    live.timer = null;
    if (!state.token) return;
    var generation = state.generation;
    live.ticks += 1;
    var work = [api("GET", appPath()).then(function (app) { if (generation === state.generation) showApp(app); })];
    if (state.chat !== null) {
      work.push(api("GET", chatPath()).then(function (chat) {
        if (generation === state.generation) { showChat(chat); renderChatCount(chat); }
      }));
      // With the stream open, events bring messages; the counts are still read here.
      if (!streaming()) work.push(refreshNewest(generation));
    }
    if (live.ticks % CHATS_EVERY === 0 || state.chat === null) work.push(loadChats());
    Promise.all(work).then(function () {
      if (generation !== state.generation) return;
      if (live.pollError) { clearError(); live.pollError = false; }
      live.failures = 0;
      live.delay = document.hidden ? POLL_HIDDEN_MS : POLL_MS;
      if (!streaming()) setLive("polling", pollingText());
      schedulePoll(live.delay);
    }, function (error) {
      if (generation !== state.generation) return;
      if (error instanceof ApiError && error.status === 404) {
        showError(error.message + " It may have been deleted.");
        stopLive();
        return;
      }
      live.failures += 1;
      live.delay = Math.min(POLL_ERROR_MAX_MS, POLL_MS * Math.pow(2, live.failures));
      live.delay = Math.round(live.delay * (0.75 + Math.random() * 0.5));
      live.pollError = true;
      showError(error);
      setLive("trouble", "Connection trouble: retrying in " + Math.round(live.delay / 1000) + " s");
      schedulePoll(live.delay);
    });
  }

  function renderChatCount(chat) {
    var button = $("chat-list").querySelector('button[data-chat="' + chat.chat_number + '"] .n');
    if (button) button.textContent = "#" + chat.chat_number + " \u00b7 " + chat.messages_count + " msg";
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && live.timer !== null && live.failures === 0) schedulePoll(0);
  });

  // -- wiring --------------------------------------------------------------------------------

  function init() {
    $("error-close").addEventListener("click", clearError);

    submitting($("app-create"), function () {
      var name = $("app-name").value;
      return api("POST", "applications", { name: name }).then(function (app) {
        clearError();
        $("app-name").value = "";
        state.token = app.app_token;
        return enterApp(app.app_token).then(function () { $("chat-name").focus(); });
      });
    });

    submitting($("app-enter"), function () {
      var token = $("app-token").value.trim();
      if (!token) throw new ApiError(0, "missing", "Enter the token of an application.");
      return enterApp(token).then(function () {
        clearError();
        $("app-token").value = "";
        $("chat-name").focus();
      });
    });

    $("app-leave").addEventListener("click", leaveApp);
    submitting($("chat-create"), createChat);
    $("chats-more").addEventListener("click", function () { moreChats().catch(showError); });
    submitting($("message-create"), postMessage);
    $("older").addEventListener("click", function () { loadOlder().catch(showError); });
    submitting($("search-form"), search);
    $("search-more").addEventListener("click", function () { moreHits().catch(showError); });

    var saved = restore();
    if (saved) {
      enterApp(saved.token, saved.chat).catch(function (error) {
        showError(error);
        leaveApp();
      });
    } else {
      $("app-name").focus();
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
