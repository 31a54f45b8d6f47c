// The few lines of own script: the stream cursor on reconnect, the connection indicator,
// offer countdowns, keyboard shortcuts, and a notification with a tone when the tab is hidden.
(function () {
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

  // A and D accept or decline the oldest ringing offer, unless the agent is typing.
  document.addEventListener("keydown", function (event) {
    var t = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey || (t && t.closest && t.closest("input, textarea, select"))) return;
    var button = document.querySelector('.pop.ringing [data-shortcut="' + event.key.toLowerCase() + '"]');
    if (button) { event.preventDefault(); button.click(); }
  });

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
  document.addEventListener("htmx:ws:after:message:incoming", function () {
    document.querySelectorAll(".pop.ringing[data-offer]").forEach(function (pop) {
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
})();
