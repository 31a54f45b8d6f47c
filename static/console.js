// The few lines of own script: the stream cursor on reconnect, the connection indicator,
// offer countdowns and timers, messages that clear, keyboard shortcuts and their help, the screen-reader announcements, and a
// notification with a tone when the tab is hidden.
(function () {
  // A supervisor's silent view of an agent's screen: the same fragments, acted on by nobody.
  function readonly() { return !!document.querySelector("#live[inert]"); }
  function cursor() {
    var meta = document.getElementById("ws-cursor");
    return meta ? meta.getAttribute("content") : "";
  }

  function indicate(state) {
    var el = document.getElementById("connection");
    if (!el) return;
    el.className = "connection " + state;
    el.textContent = el.dataset[{connected: "connected", reconnecting: "reconnecting", "signed-out": "signedOut"}[state]] || state;
    var again = document.getElementById("login-again");
    if (again) again.hidden = state !== "signed-out";
  }

  // Fires before the first connection and before every reconnect: ask for what was missed.
  document.addEventListener("htmx:ws:before:connection", function (event) {
    var connection = event.detail.connection;
    var url = new URL(connection.url);
    var since = cursor();
    if (since) url.searchParams.set("since", since); else url.searchParams.delete("since");
    connection.url = url.toString();
  });

  // Pushed fragments carry the version of what they show (data-v; data-key names what it is the
  // version of). Frames from several servers can arrive in any order, so before htmx swaps a frame
  // in, each fragment is checked against the page: an older one is dropped, one whose element is
  // not on the page yet goes into its container (data-into) in order (data-order), a removal
  // (data-delete) is remembered so an older insert arriving late cannot bring the element back,
  // and a fragment for an element that is not there yet waits until it is inserted.
  var removed = new Map(), parked = new Map(), PARKED_MAX = 200;
  function version(el) { return el && el.dataset && el.dataset.v !== undefined ? parseInt(el.dataset.v, 10) : null; }
  function keyOf(el) { return (el && el.dataset && el.dataset.key) || ""; }
  function older(incoming, current) {
    var a = version(incoming), b = version(current);
    if (a === null || b === null || keyOf(incoming) !== keyOf(current)) return false;
    return a < b;
  }
  function remember(el) {
    // What was taken off the page, with its version and what that version counts (its key).
    if (version(el) !== null) removed.set(el.id, {v: version(el), key: keyOf(el)});
  }
  function buried(el) {
    var gone = removed.get(el.id);
    return !!gone && version(el) !== null && gone.key === keyOf(el) && version(el) <= gone.v;
  }
  function freshest(el) {
    // Parts of `el` the page (or the parked fragments) know in a newer version stay as they are.
    el.querySelectorAll("[id][data-v]").forEach(function (part) {
      var known = document.getElementById(part.id) || parked.get(part.id);
      if (known && known !== part && older(part, known)) part.replaceWith(known.cloneNode(true));
      parked.delete(part.id);
    });
  }
  function placeOf(el) {
    var container = document.querySelector(el.dataset.into);
    if (!container) return null;
    var order = el.dataset.order || "";
    for (var child = container.firstElementChild; child; child = child.nextElementSibling) {
      if (child.dataset && child.dataset.order !== undefined && child.dataset.order > order && child.id)
        return "beforebegin target:#" + CSS.escape(child.id) + " strip:false";
    }
    return "beforeend target:" + el.dataset.into + " strip:false";
  }
  function settle(el) {
    var id = el.id, current = document.getElementById(id);
    if (el.hasAttribute("data-delete")) {
      if (current && older(el, current)) return false;
      var gone = removed.get(id);
      if (!(gone && gone.key === keyOf(el) && gone.v > version(el))) remember(el);
      if (current) current.querySelectorAll("[id][data-v]").forEach(remember);
      el.setAttribute("hx-swap-oob", "delete");
      return !!current;
    }
    if (buried(el)) return false;
    freshest(el);
    if (current) {
      if (older(el, current)) return false;
      if (!el.hasAttribute("hx-swap-oob")) el.setAttribute("hx-swap-oob", "outerMorph");
      return true;
    }
    var place = el.dataset.into ? placeOf(el) : null;
    if (!place) {
      var waiting = parked.get(id);
      if (!waiting || !older(el, waiting)) parked.set(id, el);
      if (parked.size > PARKED_MAX) parked.delete(parked.keys().next().value);
      return false;
    }
    el.setAttribute("hx-swap-oob", place);
    return true;
  }
  // One fragment at a time, each settled against the page as the ones before it left it: a frame
  // may hold several changes of one element (a pop offered and withdrawn in one batch).
  async function apply(html, source) {
    try { await applyEach(html, source); } catch (error) { console.error("could not apply a pushed frame", error); }
    document.dispatchEvent(new CustomEvent("console:frame"));
  }
  async function applyEach(html, source) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var fragments = Array.prototype.slice.call(template.content.children);
    for (var i = 0; i < fragments.length; i++) {
      var el = fragments[i];
      if (el.id && !settle(el)) continue;
      var holder = document.createElement("template");
      holder.content.appendChild(el);
      await htmx.swap({sourceElement: source, target: source, swap: "none", text: holder.innerHTML,
                       transition: false});
    }
  }
  window.consoleFrames = {settle: settle, apply: apply};
  document.addEventListener("htmx:ws:before:message:incoming", function (event) {
    var detail = event.detail, message = detail && detail.message;
    if (!message || typeof message.data !== "string") return;
    detail.waitUntil(apply(message.data, event.target));
    detail.cancelled = true;  // applied above, fragment by fragment
  });
  document.addEventListener("htmx:ws:after:connection", function () { indicate("connected"); });
  document.addEventListener("htmx:ws:close", function (event) {
    if (event.detail.code === 1008) indicate("signed-out");
    else if (event.detail.reason !== "removed") indicate("reconnecting");
  });

  // Countdowns: the server sends the deadline, the page shows the seconds left.
  setInterval(function () {
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Math.max(0, Math.round((Date.parse(el.dataset.deadline) - Date.now()) / 1000));
      if (el.dataset.deadline) el.textContent = left + " s";
    });
  }, 250);

  // The line about the last action lies over the page (it never moves the pop) and goes on the
  // next action, or after a few seconds: errors stay longer than confirmations.
  var flashTimer = null, flashNode = null;
  function clearFlash() {
    var flash = document.getElementById("flash");
    if (flash && flash.textContent) flash.textContent = "";
  }
  function flashShown() {
    var flash = document.getElementById("flash");
    if (flash === flashNode) return;  // not a new message
    flashNode = flash;
    clearTimeout(flashTimer);
    if (flash && flash.textContent.trim())
      flashTimer = setTimeout(clearFlash, flash.classList.contains("error") ? 8000 : 4000);
  }
  // An action is what the agent does: a click on a button or link, a form sent, Escape. Lists that
  // load by themselves (pickers, searches as one types) are not.
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("#flash, button, a, summary")) clearFlash();
  }, true);
  document.addEventListener("submit", clearFlash, true);
  document.addEventListener("keydown", function (event) { if (event.key === "Escape") clearFlash(); }, true);
  // A reason chosen closes the list of reasons (the status line that follows is drawn anew).
  document.addEventListener("htmx:before:request", function (event) {
    var details = event.target && event.target.closest && event.target.closest("details.go-away");
    if (details) details.open = false;
  });
  document.addEventListener("DOMContentLoaded", function () {
    // The flash is replaced whole (out of band) by each answer that carries one; a page may load
    // with one (the password just changed), which goes like any other.
    flashShown();
    new MutationObserver(flashShown).observe(document.body, {childList: true});
  });

  // Timers: how long the agent has been in their state, how long a call has been going on.
  function clock(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    var mm = h ? (m < 10 ? "0" : "") + m : String(m);
    return (h ? h + ":" : "") + mm + ":" + (s < 10 ? "0" : "") + s;
  }
  function tick() {
    document.querySelectorAll("time.timer[data-since]").forEach(function (el) {
      var since = Date.parse(el.dataset.since);
      if (!isNaN(since)) el.textContent = clock(Math.max(0, Math.floor((Date.now() - since) / 1000)));
    });
  }
  setInterval(tick, 1000);
  document.addEventListener("console:frame", tick);
  document.addEventListener("DOMContentLoaded", tick);

  // Keyboard first: A/D answer the oldest ringing offer or handoff, N note, T ticket, H handoff,
  // W wrap-up, / search, M my tickets, ? this list. Never while the agent is typing in a field.
  function focusIn(id, open) {
    var el = document.getElementById(id);
    if (!el) return false;
    if (open) { var details = el.closest("details"); if (details) details.open = true; }
    el.focus();
    return true;
  }
  // The note, ticket and handoff forms of the conversation in front (the chosen tab).
  function focusOn(key, open) {
    var items = document.querySelectorAll(".current-item");
    for (var i = 0; i < items.length; i++) {
      var field = items[i].querySelector('[data-focus="' + key + '"]');
      if (items[i].offsetParent !== null && field) return focusIn(field.id, open);
    }
    return false;
  }
  var keys = {
    n: function () { return focusOn("n"); },
    t: function () { return focusOn("t", true); },
    h: function () { return focusOn("h", true); },
    w: function () {
      var select = document.querySelector(".wrap-up select[name=disposition]");
      if (select) { select.focus(); return true; }
      return false;
    },
    "/": function () { return focusIn("customer-search"); },
    m: function () { var b = document.querySelector('[aria-keyshortcuts="m"]'); if (b) b.click(); return !!b; },
    "?": function () { toggleHelp(); return true; }
  };
  function toggleHelp() {
    var help = document.getElementById("help");
    if (!help) return;
    if (help.open) help.close(); else help.showModal();
  }
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("#help-button")) toggleHelp();
  });
  document.addEventListener("keydown", function (event) {
    if (readonly()) return;
    var t = event.target;
    if (event.key === "Escape" && t && t.blur && t.closest && t.closest("input, textarea, select")) { t.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey || (t && t.closest && t.closest("input, textarea, select, dialog"))) {
      if (!(event.key === "?" && t.closest && t.closest("dialog"))) return;
    }
    var key = event.key.toLowerCase();
    var button = document.querySelector('.pop .ringing [data-shortcut="' + key + '"]');
    if (button) { event.preventDefault(); button.click(); return; }
    if (keys[key] && keys[key]()) event.preventDefault();
  });

  // A form that worked starts empty again (notes, tickets, handoffs); one that failed keeps its text.
  document.addEventListener("htmx:finally:request", function (event) {
    // Only the form's own submit: a list loading inside it is no reason to empty it.
    var form = event.target && event.target.matches && event.target.matches("form[data-reset-on-success]")
      ? event.target : null;
    var ctx = event.detail && event.detail.ctx;
    if (form && ctx && ctx.response && ctx.response.status < 400) {
      form.reset();
      if (form.elements.client_id) form.elements.client_id.value = "";  // the next message is a new one
      var details = form.closest("details");
      if (details) details.open = false;
    }
  });

  // A chat message gets its id when it is first sent and keeps it until it went through: sent
  // again after a network failure, it is stored once. Enter sends; Shift+Enter is a new line.
  function messageId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches && form.matches("form[data-chat-composer], form[data-mail-composer], form[data-text-template]") && !form.elements.client_id.value)
      form.elements.client_id.value = messageId();
  }, true);
  // A file for the visitor goes with an id of its own, like a typed message; a refusal says why
  // in the usual message over the page (the answer's #flash), and so does a network failure.
  function showFlash(html, fallback) {
    var fresh = html && new DOMParser().parseFromString(html, "text/html").getElementById("flash");
    var flash = document.getElementById("flash");
    if (!fresh) {
      fresh = document.createElement("div");
      fresh.id = "flash"; fresh.className = "flash error"; fresh.setAttribute("role", "alert");
      fresh.textContent = fallback;
    }
    if (flash) flash.replaceWith(document.importNode(fresh, true)); else document.body.appendChild(document.importNode(fresh, true));
  }
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("input[data-chat-file]") || !input.files || !input.files[0]) return;
    var data = new FormData();
    data.append("client_id", messageId());
    data.append("file", input.files[0]);
    var headers = {};
    try { headers = JSON.parse(document.body.getAttribute("hx-headers:inherited") || "{}"); } catch (e) { headers = {}; }
    input.disabled = true;
    fetch(input.dataset.chatFile, {method: "POST", body: data, headers: headers, credentials: "same-origin"})
      .then(function (response) { return response.ok ? "" : response.text(); })
      .then(function (html) { if (html) showFlash(html, input.dataset.failed); })
      .catch(function () { showFlash("", input.dataset.failed); })
      .finally(function () { input.disabled = false; input.value = ""; });
  });
  // What of a chat the agent has on screen is read: the visitor's messages up to the newest shown,
  // told once per message, and only while the page is in front of the agent.
  var readUpTo = {};
  function markRead() {
    if (readonly()) return;
    if (document.visibilityState !== "visible") return;
    document.querySelectorAll(".pop .chat[id$='-chat']").forEach(function (log) {
      var pop = log.closest(".pop"), composer = pop && pop.querySelector("form[data-chat-composer] fieldset");
      if (!composer || composer.disabled) return;  // ringing: not read until accepted
      if (pop.offsetParent === null) return;  // behind another tab: not read until chosen
      var newest = 0;
      log.querySelectorAll("li.from-customer[data-message]").forEach(function (line) {
        newest = Math.max(newest, parseInt(line.dataset.message, 10));
      });
      var id = pop.dataset.conversation;
      if (newest > (readUpTo[id] || 0)) {
        readUpTo[id] = newest;
        htmx.ajax("POST", "/conversations/" + id + "/read", {values: {upto: newest}, swap: "none"});
      }
    });
  }
  document.addEventListener("visibilitychange", markRead);

  // Several conversations at once (chats, a call among them): a tab each, with the visitor's
  // messages not read yet and how long the visitor has waited for an answer. The chosen one is
  // in front with its forms; ringing offers always are. Alt+Down and Alt+Up (in the composer too)
  // go to the next and previous one; on the tabs the arrow keys do. A stylesheet of its own hides
  // the others, so a pushed fragment that morphs a pop cannot show it for a moment.
  var chosen = null, wish = null, wishNew = null, baseTitle = document.title, front = null, drawn = "";
  var unreadBefore = {};
  if (window.CSSStyleSheet && document.adoptedStyleSheets) {
    front = new CSSStyleSheet();
    document.adoptedStyleSheets = document.adoptedStyleSheets.concat([front]);
  }
  function popsOnPage() {
    return Array.prototype.slice.call(document.querySelectorAll("#screen-pop > .pop[data-conversation]"));
  }
  function isRinging(pop) { return !!pop.querySelector(":scope > .pop-state.ringing"); }
  function unreadOf(pop) {
    var seen = readUpTo[pop.dataset.conversation] || 0, n = 0;
    pop.querySelectorAll(".chat-log li.from-customer[data-message]").forEach(function (line) {
      if (!line.hasAttribute("data-read") && parseInt(line.dataset.message, 10) > seen) n++;
    });
    return n;
  }
  function waitingSince(pop) {
    // From the visitor's first message after the agent's last one.
    var since = null;
    pop.querySelectorAll(".chat-log li[data-message]").forEach(function (line) {
      if (line.classList.contains("from-agent")) since = null;
      else if (since === null && line.classList.contains("from-customer")) {
        var time = line.querySelector("time");
        since = time ? time.getAttribute("datetime") : null;
      }
    });
    return since;
  }
  function tabOf(pop, strip) {
    var id = pop.dataset.conversation, tab = document.createElement("button");
    tab.type = "button";
    tab.id = "tab-" + id;
    tab.className = "work-tab" + (isRinging(pop) ? " ringing" : "");
    tab.dataset.tab = id;
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-controls", pop.id);
    tab.setAttribute("aria-selected", String(id === chosen));
    tab.tabIndex = id === chosen ? 0 : -1;
    var badge = pop.querySelector(".pop-state .badge");
    if (badge) tab.appendChild(badge.cloneNode(true));
    var name = document.createElement("span"), who = pop.querySelector(".customer-name") ||
      pop.querySelector(".chat-visitor strong") || pop.querySelector(".pop-state .number");
    name.className = "tab-name";
    name.textContent = who ? who.textContent.trim() : id;
    tab.appendChild(name);
    if (isRinging(pop)) {
      var state = pop.querySelector(".pop-state .state"), ring = document.createElement("span");
      ring.className = "tab-state";
      ring.textContent = state ? state.textContent : "";
      tab.appendChild(ring);
    }
    var unread = unreadOf(pop);
    if (unread) {
      var count = document.createElement("span");
      count.className = "unread";
      count.textContent = String(unread);
      count.setAttribute("aria-label", unread + " " + (strip.dataset.unread || ""));
      tab.appendChild(count);
    }
    var since = waitingSince(pop);
    if (since && !isRinging(pop)) {
      var waited = document.createElement("time");
      waited.className = "timer";
      waited.dataset.since = since;
      waited.setAttribute("datetime", since);
      waited.title = strip.dataset.waiting || "";
      waited.setAttribute("aria-hidden", "true");  // a name that changes every second is noise to a screen reader
      tab.appendChild(waited);
    }
    return {tab: tab, unread: unread, name: name.textContent,
            key: [id, tab.className, name.textContent, unread, since, id === chosen, badge ? badge.textContent : ""].join("|")};
  }
  function drawTabs() {
    var strip = document.getElementById("work-tabs");
    if (!strip) return;
    var pops = popsOnPage(), open = pops.filter(function (pop) { return !isRinging(pop); });
    var ids = open.map(function (pop) { return pop.dataset.conversation; });
    if (wish && ids.indexOf(wish) >= 0) { chosen = wish; wish = null; }
    if (wishNew) {  // a handoff accepted: its conversation is a new part, the first one not there before
      var fresh = ids.filter(function (id) { return wishNew.indexOf(id) < 0; });
      if (fresh.length) { chosen = fresh[0]; wishNew = null; }
    }
    if (ids.indexOf(chosen) < 0) chosen = ids.length ? ids[0] : null;
    if (front) {
      var id = chosen ? CSS.escape(chosen) : "";
      front.replaceSync(open.length < 2 ? "" :
        '#screen-pop > .pop[data-conversation]:not([data-conversation="' + id + '"]):not(:has(> .pop-state.ringing)) { display: none; }\n' +
        "#current-conversation > .current-item:not(#current-" + id + ") { display: none; }");
    }
    // Drawn anew only when something on them changed (not for every frame: typing, read marks),
    // so the tab a screen reader is on is not announced again and again.
    var tabs = pops.map(function (pop) { return tabOf(pop, strip); });
    var key = tabs.map(function (t) { return t.key; }).join("\n"), total = 0, news = [];
    tabs.forEach(function (t) {
      total += t.unread;
      var id = t.tab.dataset.tab;
      if (id !== chosen && t.unread > (unreadBefore[id] || 0)) news.push(t.name + ": " + t.unread + " " + (strip.dataset.unread || ""));
      unreadBefore[id] = t.unread;
    });
    if (key !== drawn) {
      drawn = key;
      var focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("#work-tabs");
      strip.textContent = "";
      tabs.forEach(function (t) { strip.appendChild(t.tab); });
      if (focused && chosen) { var again = document.getElementById("tab-" + chosen); if (again) again.focus(); }
      tick();
    }
    strip.hidden = pops.length < 2;
    // A message in a chat behind its tab is heard too (its own log is out of view, and silent).
    var region = document.getElementById("announcer");
    if (news.length && region) region.textContent = news.join(". ");
    document.title = (total ? "(" + total + ") " : "") + baseTitle;
  }
  function choose(id, into) {
    chosen = id;
    drawTabs();
    markRead();
    drawTabs();
    if (into === "tab") { var tab = document.getElementById("tab-" + id); if (tab) tab.focus(); }
    else if (into === "composer") {
      var pop = document.querySelector('#screen-pop > .pop[data-conversation="' + CSS.escape(id) + '"]');
      var box = pop && pop.querySelector("form[data-chat-composer] fieldset:not([disabled]) textarea, form[data-mail-composer] fieldset:not([disabled]) textarea");
      var tab = document.getElementById("tab-" + id);
      if (box) box.focus(); else if (tab) tab.focus();  // a call has no composer: the focus stays in view
    }
  }
  function step(by, into) {
    var open = popsOnPage().filter(function (pop) { return !isRinging(pop); });
    if (open.length < 2) return false;
    var ids = open.map(function (pop) { return pop.dataset.conversation; });
    var at = Math.max(0, ids.indexOf(chosen));
    choose(ids[(at + by + ids.length) % ids.length], into);
    return true;
  }
  document.addEventListener("click", function (event) {
    var tab = event.target.closest && event.target.closest("#work-tabs [data-tab]");
    if (tab) { if (!tab.classList.contains("ringing")) choose(tab.dataset.tab, "composer"); return; }
    // The offer the agent accepts is the one they want in front once it is theirs.
    var accept = event.target.closest && event.target.closest(".pop .accept");
    if (accept && accept.closest(".handoff-offer"))
      wishNew = popsOnPage().map(function (pop) { return pop.dataset.conversation; });
    else if (accept) wish = accept.closest(".pop").dataset.conversation;
  });
  document.addEventListener("keydown", function (event) {
    var inTabs = event.target.closest && event.target.closest("#work-tabs");
    if (event.target.closest && event.target.closest("select, #customer-search")) return;  // Alt+Down opens lists there
    if (event.altKey && !event.ctrlKey && !event.metaKey && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      if (step(event.key === "ArrowDown" ? 1 : -1, inTabs ? "tab" : "composer")) event.preventDefault();
    } else if (inTabs && (event.key === "ArrowRight" || event.key === "ArrowLeft")) {
      if (step(event.key === "ArrowRight" ? 1 : -1, "tab")) event.preventDefault();
    }
  });
  document.addEventListener("console:frame", function () { drawTabs(); markRead(); drawTabs(); });
  document.addEventListener("DOMContentLoaded", drawTabs);

  // A canned response chosen in a chat's composer is filled in for its customer and put where the
  // cursor was, to be read and sent by the agent (never sent by itself).
  document.addEventListener("change", function (event) {
    var pick = event.target;
    if (!pick.matches || !pick.matches("select[data-canned]") || !pick.value) return;
    var form = pick.closest("form"), box = form && form.querySelector("textarea");
    var url = "/canned/" + encodeURIComponent(pick.value) + "/fill?conversation=" + encodeURIComponent(pick.dataset.canned);
    pick.value = "";
    fetch(url, {credentials: "same-origin", headers: {"HX-Request": "true"}}).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.text();
    }).then(function (html) {
      if (!box) return;
      var holder = document.createElement("template");
      holder.innerHTML = html;  // the answer is escaped text: this reads it back as text
      var text = holder.content.textContent, at = box.selectionStart || 0, end = box.selectionEnd || at;
      box.value = box.value.slice(0, at) + text + box.value.slice(end);
      box.focus();
      box.selectionStart = box.selectionEnd = at + text.length;
    }).catch(function (error) { console.error("could not fill the canned response", error); });
  });

  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || !box.closest) return;
    var form = box.closest("form[data-chat-composer]") || (event.ctrlKey && box.closest("form[data-mail-composer]"));
    if (form && box.tagName === "TEXTAREA") { event.preventDefault(); form.requestSubmit(); }
  });

  // The search box's results close once a customer is chosen, on Escape, or on a click elsewhere.
  function closeResults() {
    var results = document.getElementById("search-results");
    if (results) results.innerHTML = "";
  }
  document.addEventListener("htmx:finally:request", function (event) {
    if (event.target && event.target.closest && event.target.closest("#search-results")) closeResults();
  });
  document.addEventListener("click", function (event) {
    if (!(event.target.closest && event.target.closest(".search"))) closeResults();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && event.target && event.target.id === "customer-search") closeResults();
  });

  // Pushes morph the sections an agent works in; a part they opened (a form in <details>)
  // stays open, so what they type stays in view and their keys do not fall through to shortcuts.
  if (window.htmx && htmx.registerExtension) {
    htmx.registerExtension("keep-open", {
      htmx_before_morph_node: function (element, detail) {
        var old = detail && detail.oldNode, next = detail && detail.newNode;
        if (old && next && old.tagName === "DETAILS" && old.open && next.setAttribute) next.setAttribute("open", "");
      }
    });
  }

  // Screen readers hear each new offer and handoff once, through the live region.
  var spoken = new Set();
  function announce() {
    var region = document.getElementById("announcer");
    if (!region) return;
    var lines = [];
    document.querySelectorAll(".pop .ringing[data-offer]").forEach(function (pop) {
      if (spoken.has(pop.dataset.offer)) return;
      spoken.add(pop.dataset.offer);
      lines.push(pop.dataset.title || "");
    });
    if (lines.length) region.textContent = lines.join(". ");
  }
  document.addEventListener("console:frame", announce);
  document.addEventListener("htmx:after:swap", announce);

  // New offers in a hidden tab: a desktop notification (with permission) and a short tone.
  var audio = null, announced = new Set();
  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest("#go-available")) return;
    if (window.Notification && Notification.permission === "default") Notification.requestPermission();
    if (!audio && window.AudioContext) audio = new AudioContext();
  });
  function tone() {
    if (!audio) return;
    var osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = 880; gain.gain.value = 0.15;
    osc.connect(gain); gain.connect(audio.destination);
    osc.start(); osc.stop(audio.currentTime + 0.4);
  }
  document.addEventListener("console:frame", function () {
    document.querySelectorAll(".pop .ringing[data-offer]").forEach(function (pop) {
      if (announced.has(pop.dataset.offer)) return;
      announced.add(pop.dataset.offer);
      if (!document.hidden) return;
      tone();
      if (window.Notification && Notification.permission === "granted") {
        var note = new Notification(pop.dataset.title || "Incoming contact", {tag: "offer-" + pop.dataset.offer});
        note.onclick = function () { window.focus(); note.close(); };
      }
    });
  });

  // The wallboard: a desktop notification when a queue goes over one of its limits (once per
  // breach; the page's own rows say it in words, with a marker, whatever the colour).
  var notify = document.getElementById("notify-breaches"), breaches = null;
  function currentBreaches() {
    var now = new Map();
    document.querySelectorAll("#wallboard tr.breach[data-queue]").forEach(function (row) {
      now.set(row.id + "|" + row.dataset.breach, row);
    });
    return now;
  }
  if (notify) {
    notify.checked = localStorage.getItem("console-notify-breaches") === "1";
    notify.addEventListener("change", function () {
      localStorage.setItem("console-notify-breaches", notify.checked ? "1" : "0");
      if (notify.checked && window.Notification && Notification.permission === "default") Notification.requestPermission();
    });
    breaches = currentBreaches();
    document.addEventListener("console:frame", function () {
      var now = currentBreaches();
      now.forEach(function (row, key) {
        if (breaches.has(key) || !notify.checked || !window.Notification || Notification.permission !== "granted") return;
        var alerts = Array.prototype.map.call(row.querySelectorAll(".alert"), function (a) { return a.textContent.trim(); });
        new Notification(row.dataset.queue, {body: alerts.join(" · "), tag: "breach-" + key});
      });
      breaches = now;
    });
  }
})();
