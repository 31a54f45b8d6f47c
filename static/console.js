// The few lines of own script: the stream cursor on reconnect, and the connection indicator.
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
})();
