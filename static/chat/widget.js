/* The console's chat widget. A website adds one tag:
 *   <script src="https://console.example.nl/chat/widget.js" data-site="SITE-KEY" async></script>
 * (optionally data-identifier and data-identifier-hash for a logged-in customer, data-lang="nl").
 * It draws a button and a chat window in a shadow root, so the page's styles and the widget's
 * never meet, and talks to the console over a websocket of its own. The visitor's id and the
 * messages not yet confirmed are kept in the site's own storage (localStorage), so they survive
 * reloads and a browser that blocks third-party cookies. Everything the visitor or an agent
 * typed is shown as text; only http(s) links in it become links. */
(function () {
  "use strict";
  var tag = document.currentScript;
  if (!tag || !tag.dataset.site || window.__consoleChat) return;
  window.__consoleChat = true;
  var site = tag.dataset.site;
  var base = new URL(tag.src, location.href);
  var lang = (tag.dataset.lang || document.documentElement.lang || navigator.language || "en").slice(0, 2).toLowerCase() === "nl" ? "nl" : "en";
  var socketUrl = (base.protocol === "https:" ? "wss://" : "ws://") + base.host + "/chat/ws?site=" +
    encodeURIComponent(site) + "&lang=" + lang;
  var T = {
    en: {open: "Chat with us", title: "Chat", close: "Close the chat", send: "Send", placeholder: "Type your message",
         you: "You", us: "Customer service", sending: "sending…", connecting: "Connecting…", offline: "Connection lost; trying again…",
         closed: "We are closed right now. Leave your message and your email address, and we answer by email when we are back.",
         busy: "Nobody can answer right now. Leave your message and your email address, and we answer by email.",
         left: "Thank you. We answer by email as soon as we can.", about: "Who are you? (optional)", aboutLeave: "Your details",
         name: "Name", email: "Email address", needEmail: "Give your email address, so we can answer you.",
         hello: "Hello! How can we help?", label: "Your message", log: "Messages", failed: "Not sent: ",
         ended: "The chat has ended. Write again to start a new one.",
         idle: "The chat has ended because we heard nothing from you for a while. Write again to start a new one.", typing: " is typing…", read: "read",
         someone: "Customer service", end: "End chat", endLabel: "End the chat", youEnded: "You ended the chat.",
         rate: "How did we do?", star: " of 5 stars", comment: "Anything to add? (optional)", sendRating: "Send rating",
         rated: "Thank you for your rating.", transcript: "Download the transcript", attach: "Send a picture or PDF",
         mailIt: "Email it to me", mailTo: "Your email address for the transcript", mailed: "The transcript is on its way to ",
         tooBig: "A file may be at most 10 MB.", uploadFailed: "The file could not be sent. Check the connection and try again."},
    nl: {open: "Chat met ons", title: "Chat", close: "Chat sluiten", send: "Versturen", placeholder: "Typ je bericht",
         you: "Jij", us: "Klantenservice", sending: "versturen…", connecting: "Verbinden…", offline: "Verbinding weg; opnieuw proberen…",
         closed: "We zijn nu gesloten. Laat je bericht en je e-mailadres achter, dan antwoorden we per e-mail zodra we er weer zijn.",
         busy: "Er kan nu niemand antwoorden. Laat je bericht en je e-mailadres achter, dan antwoorden we per e-mail.",
         left: "Dank je wel. We antwoorden zo snel mogelijk per e-mail.", about: "Wie ben je? (niet verplicht)", aboutLeave: "Je gegevens",
         name: "Naam", email: "E-mailadres", needEmail: "Geef je e-mailadres, zodat we je kunnen antwoorden.",
         hello: "Hallo! Waarmee kunnen we helpen?", label: "Je bericht", log: "Berichten", failed: "Niet verstuurd: ",
         ended: "De chat is beëindigd. Schrijf opnieuw om een nieuwe te beginnen.",
         idle: "De chat is beëindigd omdat we een tijd niets van je hoorden. Schrijf opnieuw om een nieuwe te beginnen.", typing: " typt…", read: "gelezen",
         someone: "Klantenservice", end: "Stoppen", endLabel: "De chat beëindigen", youEnded: "Je hebt de chat beëindigd.",
         rate: "Hoe hebben we het gedaan?", star: " van 5 sterren", comment: "Nog iets kwijt? (niet verplicht)", sendRating: "Beoordeling versturen",
         rated: "Dank je wel voor je beoordeling.", transcript: "Gesprek downloaden", attach: "Een foto of pdf sturen",
         mailIt: "Per e-mail sturen", mailTo: "Je e-mailadres voor het gesprek", mailed: "Het gesprek is onderweg naar ",
         tooBig: "Een bestand is hoogstens 10 MB.", uploadFailed: "Het bestand kon niet worden verstuurd. Controleer de verbinding en probeer het opnieuw."}
  }[lang];
  var store = {
    get: function (name) { try { return JSON.parse(localStorage.getItem("console-chat:" + site + ":" + name)); } catch (e) { return null; } },
    set: function (name, value) { try { localStorage.setItem("console-chat:" + site + ":" + name, JSON.stringify(value)); } catch (e) { /* private mode: this tab only */ } }
  };
  var visitor = store.get("visitor"), pending = store.get("pending") || [], shownIds = {}, newest = 0;
  var socket = null, backoff = 1000, welcomed = false, typingShown = null, typedAt = 0, readSent = 0;
  var details = store.get("details"), leaving = false;  // details given but not confirmed yet
  var current = null, finished = null, answered = {};  // the open chat, the one that just ended, chats an agent wrote in

  // The widget's own document, out of the page's reach.
  var host = document.createElement("div");
  host.setAttribute("data-console-chat", "");
  var root = host.attachShadow({mode: "open"});  // styles stay apart either way; open lets tools and tests see in
  var css = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:15px;line-height:1.4}",
    ".launch{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:24px;padding:12px 18px;background:#1d4ed8;color:#fff;cursor:pointer;box-shadow:0 4px 14px #0003}",
    ".launch:focus-visible,button:focus-visible,textarea:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}",
    ".window{position:fixed;right:20px;bottom:20px;z-index:2147483001;width:min(360px,calc(100vw - 24px));height:min(520px,calc(100vh - 40px));display:flex;flex-direction:column;background:#fff;color:#111827;border:1px solid #d1d5db;border-radius:12px;box-shadow:0 8px 30px #0004;overflow:hidden}",
    ".window[hidden],.launch[hidden]{display:none}",
    "header{display:flex;align-items:center;justify-content:space-between;padding:10px 14px;background:#1d4ed8;color:#fff}",
    "header h2{margin:0;font-size:16px;font-weight:600}",
    "header button{background:none;border:0;color:#fff;font-size:20px;cursor:pointer;padding:2px 8px}",
    ".log{flex:1;overflow-y:auto;margin:0;padding:12px;list-style:none;display:flex;flex-direction:column;gap:8px}",
    ".line{max-width:85%;padding:8px 10px;border-radius:10px;background:#f3f4f6;overflow-wrap:anywhere;white-space:pre-wrap}",
    ".line.mine{align-self:flex-end;background:#dbeafe}",
    ".line .who{display:block;font-size:12px;color:#4b5563}",
    ".line.pending{opacity:.65}",
    ".line .read{display:block;font-size:11px;color:#4b5563;text-align:right}",
    ".line.note{align-self:center;background:none;color:#4b5563;font-size:13px;text-align:center}",
    ".line.error{align-self:center;background:#fee2e2;color:#991b1b;font-size:13px}",
    ".line a{color:#1d4ed8}",
    ".status{padding:4px 12px;font-size:12px;color:#4b5563;min-height:20px}",
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #e5e7eb}",
    "textarea{flex:1;resize:none;border:1px solid #d1d5db;border-radius:8px;padding:8px;min-height:40px;max-height:120px}",
    "form button{border:0;border-radius:8px;padding:0 14px;background:#1d4ed8;color:#fff;cursor:pointer}",
    ".hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}",
    "fieldset.about{border:0;border-top:1px solid #e5e7eb;margin:0;padding:8px 10px 0;display:grid;grid-template-columns:1fr 1fr;gap:6px}",
    "fieldset.about[hidden]{display:none}",
    "fieldset.about legend{padding:0;font-size:13px;color:#4b5563;float:left;grid-column:1/-1}",
    "fieldset.about label{display:flex;flex-direction:column;font-size:12px;color:#4b5563;gap:2px}",
    "fieldset.about input{border:1px solid #d1d5db;border-radius:6px;padding:6px;min-width:0}",
    "fieldset.about input[aria-invalid=true]{border-color:#b91c1c}",
    "header .end{font-size:13px;border:1px solid #fff8;border-radius:6px;margin-left:auto;margin-right:4px}",
    ".after{border-top:1px solid #e5e7eb;padding:8px 10px;display:flex;flex-direction:column;gap:6px}",
    ".after[hidden],.after [hidden],header .end[hidden]{display:none}",
    ".after fieldset{border:0;margin:0;padding:0;display:flex;flex-wrap:wrap;align-items:center;gap:4px}",
    ".after legend{padding:0 0 4px;font-size:13px;color:#4b5563}",
    ".after label.star{cursor:pointer;font-size:22px;color:#9ca3af;padding:0 2px}",
    ".after label.star.lit{color:#b45309}",
    ".after input[type=radio]{position:absolute;opacity:0;width:1px;height:1px}",
    ".after label.star:has(input:focus-visible){outline:3px solid #f59e0b}",
    ".after button{border:1px solid #1d4ed8;border-radius:8px;padding:6px 10px;background:#fff;color:#1d4ed8;cursor:pointer}",
    ".after .row{display:flex;gap:8px;flex-wrap:wrap}",
    ".after form.rating:not([hidden]){display:flex;flex-direction:column;align-items:stretch;gap:6px;padding:0;border:0}",
    ".after form.rating textarea{flex:none;width:100%;min-height:44px}",
    "form .attach{display:flex;align-items:center;background:none;border:1px solid #d1d5db;color:#374151;padding:0 10px}",
    "form .attach:disabled{opacity:.4;cursor:default}",
    ".line img{display:block;max-width:100%;max-height:180px;border-radius:6px;margin-top:4px}",
    ".line .size{font-size:12px;color:#4b5563}"
  ].join("");
  // A constructed style sheet: a page whose policy forbids inline styles still lets it through.
  try {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    root.adoptedStyleSheets = [sheet];
  } catch (e) {
    var style = document.createElement("style");
    style.textContent = css;
    root.appendChild(style);
  }
  function icon(path) {  // a line drawing, not an emoji: every system draws it the same
    var ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg"), line = document.createElementNS(ns, "path");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("width", "20"); svg.setAttribute("height", "20");
    svg.setAttribute("aria-hidden", "true"); svg.setAttribute("focusable", "false");
    line.setAttribute("d", path); line.setAttribute("fill", "none"); line.setAttribute("stroke", "currentColor");
    line.setAttribute("stroke-width", "2"); line.setAttribute("stroke-linecap", "round"); line.setAttribute("stroke-linejoin", "round");
    svg.appendChild(line);
    return svg;
  }
  function el(name, attrs, text) {
    var node = document.createElement(name);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (text) node.textContent = text;
    return node;
  }
  var launch = el("button", {"class": "launch", type: "button", "aria-haspopup": "dialog"}, T.open);
  var win = el("section", {"class": "window", role: "dialog", "aria-label": T.title, hidden: ""});
  var header = el("header");
  header.appendChild(el("h2", {}, T.title));
  var ender = el("button", {type: "button", "class": "end", "aria-label": T.endLabel, hidden: ""}, T.end);
  var closer = el("button", {type: "button", "aria-label": T.close}, "×");
  header.appendChild(ender); header.appendChild(closer);
  var log = el("ol", {"class": "log", role: "log", "aria-live": "polite", "aria-label": T.log});
  var status = el("div", {"class": "status", role: "status"});
  var form = el("form");
  var box = el("textarea", {rows: "1", maxlength: "4000", placeholder: T.placeholder, "aria-label": T.label});
  // Files go with a chat that is open (it starts with words: a question, the pre-chat form).
  var attach = el("button", {type: "button", "class": "attach", "aria-label": T.attach, title: T.attach, disabled: ""});
  attach.appendChild(icon("M16.5 6.5 8.6 14.4a2 2 0 0 0 2.8 2.8l8-8a4 4 0 0 0-5.6-5.6l-8 8a6 6 0 0 0 8.5 8.5l7.2-7.2"));
  var picker = el("input", {type: "file", hidden: "", accept: "image/png,image/jpeg,image/gif,image/webp,application/pdf"});
  form.appendChild(attach); form.appendChild(picker);
  form.appendChild(box);
  form.appendChild(el("button", {type: "submit"}, T.send));
  // Who the visitor is, before the first message: asked when the site wants it (optional for
  // them), and when nobody can answer now (then the email address is needed for the answer).
  var about = el("fieldset", {"class": "about", hidden: ""});
  var legend = el("legend", {}, T.about);
  var nameBox = el("input", {type: "text", name: "name", autocomplete: "name", maxlength: "200"});
  var emailBox = el("input", {type: "email", name: "email", autocomplete: "email", maxlength: "320"});
  var nameLabel = el("label", {}, T.name), emailLabel = el("label", {}, T.email);
  nameLabel.appendChild(nameBox); emailLabel.appendChild(emailBox);
  about.appendChild(legend); about.appendChild(nameLabel); about.appendChild(emailLabel);
  about.addEventListener("keydown", function (event) {  // Enter in a field: on to the message, or send it
    if (event.key !== "Enter" || event.isComposing) return;
    event.preventDefault();
    if (box.value.trim()) form.requestSubmit(); else box.focus();
  });
  // After a chat: a rating (1 to 5 stars and a comment, both optional to give) and the transcript.
  var afterChat = el("div", {"class": "after", hidden: ""});
  var rating = el("form", {"class": "rating"});
  var stars = el("fieldset");
  stars.appendChild(el("legend", {}, T.rate));
  [1, 2, 3, 4, 5].forEach(function (n) {
    var label = el("label", {"class": "star", title: n + T.star});
    label.appendChild(el("input", {type: "radio", name: "score", value: String(n), "aria-label": n + T.star}));
    label.appendChild(document.createTextNode("★"));
    stars.appendChild(label);
  });
  stars.addEventListener("change", function () {  // the chosen star and those before it light up
    var chosen = Number((rating.querySelector("input[name=score]:checked") || {}).value || 0);
    stars.querySelectorAll("label.star").forEach(function (label, n) { label.classList.toggle("lit", n < chosen); });
  });
  var remark = el("textarea", {rows: "2", maxlength: "2000", "aria-label": T.comment, placeholder: T.comment});
  var rateRow = el("div", {"class": "row"});
  rateRow.appendChild(el("button", {type: "submit"}, T.sendRating));
  rating.appendChild(stars); rating.appendChild(remark); rating.appendChild(rateRow);
  var download = el("button", {type: "button"}, T.transcript);
  // Or by mail, to the address given in the chat (the console sends it there only, once a chat).
  var mailForm = el("form", {"class": "row"});
  var mailBox = el("input", {type: "email", readonly: "", maxlength: "320", "aria-label": T.mailTo});
  mailForm.appendChild(mailBox); mailForm.appendChild(el("button", {type: "submit"}, T.mailIt));
  afterChat.appendChild(rating); afterChat.appendChild(download); afterChat.appendChild(mailForm);
  win.appendChild(header); win.appendChild(log); win.appendChild(status); win.appendChild(about); win.appendChild(afterChat);
  win.appendChild(form);
  root.appendChild(launch); root.appendChild(win);
  (document.body || document.documentElement).appendChild(host);

  function show(open) {
    win.hidden = !open; launch.hidden = open;
    store.set("open", open);
    if (open) { box.focus(); if (!socket) connect(); markRead(); } else launch.focus();
  }
  launch.addEventListener("click", function () { show(true); });
  function ended(chatId) {
    current = null; ender.hidden = true; attach.disabled = true;
    if (!chatId) return;
    finished = chatId;
    var rated = store.get("rated") || [];
    rating.hidden = !answered[chatId] || rated.indexOf(chatId) >= 0;
    afterChat.hidden = false;
    mailBox.value = store.get("email") || (store.get("details") || {}).email || "";
    mailForm.hidden = !mailBox.value;  // only to the address given in the chat
  }
  ender.addEventListener("click", function () {
    if (socket && socket.readyState === 1 && welcomed) socket.send(JSON.stringify({type: "end"}));
    box.focus();
  });
  rating.addEventListener("submit", function (event) {
    event.preventDefault();
    var chosen = rating.querySelector("input[name=score]:checked");
    if (!chosen) { status.textContent = T.rate; rating.querySelector("input").focus(); return; }
    if (socket && socket.readyState === 1 && welcomed && finished)
      socket.send(JSON.stringify({type: "rating", chat: finished, score: Number(chosen.value), comment: remark.value}));
  });
  download.addEventListener("click", function () {
    var chatId = finished || current;
    if (chatId && socket && socket.readyState === 1 && welcomed) socket.send(JSON.stringify({type: "transcript", chat: chatId}));
  });
  mailForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var chatId = finished || current;
    if (chatId && socket && socket.readyState === 1 && welcomed)
      socket.send(JSON.stringify({type: "transcript", chat: chatId, email: mailBox.value.trim()}));
  });
  function save(filename, text) {  // the transcript as a file, made here: nothing to fetch, nothing to open
    var url = URL.createObjectURL(new Blob([text], {type: "text/plain;charset=utf-8"}));
    var a = el("a", {href: url, download: filename});
    root.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }
  closer.addEventListener("click", function () { show(false); });
  win.addEventListener("keydown", function (event) { if (event.key === "Escape") show(false); });

  // Text as text; http(s) links clickable, opening apart from this page.
  function fill(node, text) {
    var link = /\bhttps?:\/\/[^\s<>"']+/gi, start = 0, found;
    while ((found = link.exec(text))) {
      var url = found[0].replace(/[.,;:!?)]+$/, "");
      node.appendChild(document.createTextNode(text.slice(start, found.index)));
      var a = el("a", {href: url, target: "_blank", rel: "noopener noreferrer nofollow ugc"}, url);
      node.appendChild(a);
      start = found.index + url.length;
      link.lastIndex = start;
    }
    node.appendChild(document.createTextNode(text.slice(start)));
  }
  function note(text, kind) {
    var li = el("li", {"class": "line " + (kind || "note")});
    li.textContent = text;
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
    return li;
  }
  // Each message once, in the console's order of ids; one of ours waiting shows as pending.
  function place(message) {
    if (shownIds[message.id]) return;
    shownIds[message.id] = true;
    newest = Math.max(newest, message.id);
    var waiting = message.client_id && log.querySelector('[data-client="' + CSS.escape(message.client_id) + '"]');
    if (waiting && message.from === "customer") waiting.remove();
    if (message.from === "system") {
      var end = {"chat ended": T.ended, "chat idle": T.idle, "chat ended by visitor": T.youEnded}[message.text];
      var said = end || (message.text === "message left" ? T.left : "");
      var line = note(said || message.text);
      line.setAttribute("data-id", String(message.id));
      if (end) ended(message.chat);
      return;
    }
    if (message.chat) { current = message.chat; ender.hidden = attach.disabled = false; afterChat.hidden = true; }
    if (message.from === "agent" && message.chat) answered[message.chat] = true;
    var mine = message.from === "customer";
    var li = el("li", {"class": "line" + (mine ? " mine" : " theirs"), "data-id": String(message.id)});
    li.appendChild(el("span", {"class": "who"}, mine ? T.you : (message.agent || T.us)));
    var text = el("span");
    if (message.attachment) showFile(text, message.attachment); else fill(text, message.text);
    li.appendChild(text);
    if (mine && message.read) li.appendChild(el("span", {"class": "read"}, "✓ " + T.read));
    var after = null;
    log.querySelectorAll("[data-id]").forEach(function (other) {
      if (!after && Number(other.dataset.id) > message.id) after = other;
    });
    log.insertBefore(li, after || log.querySelector(".pending") || null);
    log.scrollTop = log.scrollHeight;
    if (!mine) {
      clearTimeout(typingShown);
      if (welcomed) status.textContent = "";
      setTimeout(markRead, 0);
    }
  }
  // A file: a link to it (and the picture, for one) on the console, at the address it signed.
  function showFile(node, file) {
    var url = new URL(file.url || "", base).href;
    var a = el("a", {href: url, target: "_blank", rel: "noopener noreferrer", download: file.name}, file.name);
    if (/^image\//.test(file.type)) {
      var img = el("img", {src: url, alt: file.name});
      var pic = el("a", {href: url, target: "_blank", rel: "noopener noreferrer", download: file.name});
      pic.appendChild(img); node.appendChild(pic);
    }
    node.appendChild(a);
    var size = file.size < 1024 ? file.size + " B" : file.size < 1048576 ? Math.round(file.size / 1024) + " KB"
      : (file.size / 1048576).toFixed(1) + " MB";
    node.appendChild(el("span", {"class": "size"}, " (" + size + ")"));
  }
  attach.addEventListener("click", function () { picker.click(); });
  picker.addEventListener("change", function () {
    var file = picker.files && picker.files[0];
    picker.value = "";
    if (!file) return;
    if (file.size > 10 * 1024 * 1024) { note(T.failed + T.tooBig, "error"); return; }
    if (!visitor) { note(T.failed + T.uploadFailed, "error"); return; }
    var item = {id: newId(), text: file.name};
    showPending(item);
    var done = function (data) {
      var waiting = log.querySelector('[data-client="' + CSS.escape(item.id) + '"]');
      if (waiting) waiting.remove();
      if (data && data.type === "ack") place(data.message);
      else note(T.failed + ((data && data.message) || T.uploadFailed), "error");
    };
    fetch(new URL("/chat/attachments?site=" + encodeURIComponent(site) + "&lang=" + lang, base).href, {
      method: "POST", body: file, mode: "cors", credentials: "omit",
      headers: {"Content-Type": file.type || "application/octet-stream", "X-Chat-Visitor": visitor,
                "X-Chat-Message": item.id, "X-Chat-Filename": encodeURIComponent(file.name)}
    }).then(function (response) { return response.json(); }).then(done, function () { done(null); });
  });
  function showPending(item) {
    var li = el("li", {"class": "line mine pending", "data-client": item.id});
    li.appendChild(el("span", {"class": "who"}, T.you + " · " + T.sending));
    var text = el("span");
    fill(text, item.text);
    li.appendChild(text);
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
  }
  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }
  function sendOne(item) {
    if (socket && socket.readyState === 1 && welcomed)
      socket.send(JSON.stringify({type: "message", id: item.id, text: item.text, left: !!item.left}));
  }
  function sendDetails() {
    if (details && socket && socket.readyState === 1 && welcomed)
      socket.send(JSON.stringify({type: "details", name: details.name, email: details.email}));
  }
  function sendPending() { sendDetails(); pending.forEach(sendOne); }  // after a (re)connect: what is not confirmed yet
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = box.value.trim();
    if (!text) return;
    if (!about.hidden) {
      var email = emailBox.value.trim();
      var bad = (leaving && !email) || (email && !emailBox.checkValidity());
      emailBox.setAttribute("aria-invalid", bad ? "true" : "false");
      if (bad) { status.textContent = T.needEmail; emailBox.focus(); return; }
      if (email || nameBox.value.trim()) {
        details = {name: nameBox.value.trim(), email: email};
        store.set("details", details);
        sendDetails();
      }
      about.hidden = true;
      status.textContent = "";
    }
    var item = {id: newId(), text: text, left: leaving};
    leaving = false;
    pending.push(item);
    store.set("pending", pending);
    showPending(item);
    box.value = "";
    typedAt = 0;  // what the visitor types next is news again
    sendOne(item);
    if (!socket && !retry) connect();
  });
  box.addEventListener("input", function () {
    var now = Date.now();
    if (now - typedAt > 3000 && socket && socket.readyState === 1 && welcomed && box.value.trim()) {
      typedAt = now;
      socket.send(JSON.stringify({type: "typing"}));
    }
  });
  // What the visitor has seen of the agents' messages is read: told while the window is open and in front.
  function markRead() {
    if (win.hidden || document.visibilityState !== "visible" || !socket || socket.readyState !== 1 || !welcomed) return;
    var newest = 0;
    log.querySelectorAll(".line.theirs[data-id]").forEach(function (line) { newest = Math.max(newest, Number(line.dataset.id)); });
    if (newest > readSent) { readSent = newest; socket.send(JSON.stringify({type: "read", upto: newest})); }
  }
  document.addEventListener("visibilitychange", markRead);
  box.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit(); }
  });

  var retry = null;  // the timer of the next reconnect, while one waits
  function connect() {
    if (socket || retry) return;  // one socket at a time
    status.textContent = T.connecting;
    welcomed = false;
    var own = socket = new WebSocket(socketUrl);
    own.addEventListener("open", function () {
      own.send(JSON.stringify({type: "hello", visitor: visitor, after: newest, page: location.href, lang: lang,
                                  identifier: tag.dataset.identifier || "", identifier_hash: tag.dataset.identifierHash || ""}));
    });
    own.addEventListener("message", function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type === "welcome") {
        welcomed = true; backoff = 1000; status.textContent = "";
        visitor = data.visitor; store.set("visitor", visitor);
        var answering = data.open && data.staffed;
        if (!log.querySelector(".note.greeting")) {
          note(answering ? (data.greeting || T.hello) : data.open ? T.busy : T.closed).classList.add("greeting");
        }
        // Before the first message of a chat: who they are, when asked or when nobody can answer.
        var first = !data.chat && !pending.length;
        if (data.chat) { current = data.chat; ender.hidden = attach.disabled = false; }
        leaving = first && !answering;
        if (first && (data.prechat || leaving)) {
          legend.textContent = leaving ? T.aboutLeave : T.about;
          emailBox.required = leaving;
          if (data.known) { nameBox.value = nameBox.value || data.known.name; emailBox.value = emailBox.value || data.known.email; }
          about.hidden = false;
        } else about.hidden = true;
        sendPending();
      } else if (data.type === "message" || data.type === "ack") {
        if (data.type === "ack") {
          pending = pending.filter(function (item) { return item.id !== data.id; });
          store.set("pending", pending);
        }
        place(data.message);
      } else if (data.type === "rated") {
        var rated = (store.get("rated") || []).concat([data.chat]).slice(-20);
        store.set("rated", rated);
        rating.hidden = true;
        note(T.rated);
      } else if (data.type === "transcript") {
        save(data.filename, data.text);
      } else if (data.type === "mailed") {
        mailForm.hidden = true;
        note(T.mailed + data.to);
      } else if (data.type === "details") {
        if (details && details.email) store.set("email", details.email);  // where a transcript may be mailed
        details = null;
        store.set("details", null);
      } else if (data.type === "typing") {
        status.textContent = (data.agent || T.someone) + T.typing;
        clearTimeout(typingShown);
        typingShown = setTimeout(function () { if (welcomed) status.textContent = ""; }, 5000);
      } else if (data.type === "read") {
        log.querySelectorAll(".line.mine[data-id]").forEach(function (line) {
          if (Number(line.dataset.id) <= data.upto && !line.querySelector(".read"))
            line.appendChild(el("span", {"class": "read"}, "✓ " + T.read));
        });
      } else if (data.type === "error" && data.code === "after") {  // a rating or transcript refused: said, nothing else
        note(data.message, "error");
      } else if (data.type === "error" && data.code === "details") {
        // The name or address could not be taken: asked again, with the reason.
        details = null;
        store.set("details", null);
        about.hidden = false;
        emailBox.setAttribute("aria-invalid", "true");
        status.textContent = data.message;
      } else if (data.type === "error") {
        var again = data.code === "flood" || data.code === "unavailable";
        if (data.id && !again) {  // refused for what it is: it goes, with the reason, its text back in the box
          var refused = pending.filter(function (item) { return item.id === data.id; })[0];
          if (refused) {
            box.value = box.value.trim() ? box.value + "\n" + refused.text : refused.text;
            leaving = leaving || !!refused.left;
          }
          if (data.code === "email") {  // needed to answer: asked for, with the reason
            legend.textContent = T.aboutLeave;
            emailBox.required = leaving = true;
            about.hidden = false;
            emailBox.setAttribute("aria-invalid", "true");
            emailBox.focus();
          }
          pending = pending.filter(function (item) { return item.id !== data.id; });
          store.set("pending", pending);
          var waiting = log.querySelector('[data-client="' + CSS.escape(data.id) + '"]');
          if (waiting) waiting.remove();
        } else if (data.id) {  // too fast: it stays and goes again in a while
          var item = pending.filter(function (p) { return p.id === data.id; })[0];
          if (item) setTimeout(function () { sendOne(item); }, 15000);
        }
        note((data.id && !again ? T.failed : "") + data.message, "error");
        if (!data.id) {
          status.textContent = data.message;
          backoff = again ? 30000 : -1;  // refused (unknown site, another website, identity): no retry
        }
      }
    });
    own.addEventListener("close", function () {
      if (socket === own) socket = null;
      if (backoff < 0 || retry) return;
      status.textContent = T.offline;
      retry = setTimeout(function () { retry = null; connect(); }, backoff);
      backoff = Math.min(backoff * 2, 30000);
    });
  }
  pending.forEach(showPending);
  if (store.get("open") || pending.length || visitor) connect();
  if (store.get("open")) { win.hidden = false; launch.hidden = true; }
})();
