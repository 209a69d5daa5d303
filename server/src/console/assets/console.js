// Companion care-team console: refreshes the open inbox without a reload, raises a banner when
// a new urgent alert arrives, and keeps deadline countdowns current. No dependencies.
(function () {
  "use strict";
  function span(ms) {
    var mins = Math.floor(Math.abs(ms) / 60000);
    if (mins < 60) return mins + " min";
    if (mins < 48 * 60) { var h = Math.floor(mins / 60), m = mins % 60; return m ? h + " h " + m + " min" : h + " h"; }
    return Math.floor(mins / 1440) + " d";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-deadline")) - now;
      el.textContent = left >= 0 ? "in " + span(left) : "overdue by " + span(left);
      el.classList.toggle("overdue", left < 0);
    });
  }
  function urgentIds(root) {
    var ids = {};
    root.querySelectorAll("tr[data-severity='urgent']").forEach(function (tr) { ids[tr.getAttribute("data-alert-id")] = true; });
    return ids;
  }
  // A reset link carries the email and the code in its fragment (never sent to the server):
  // fill them in, then drop the fragment from the address bar and the history.
  function fillReset() {
    var form = document.getElementById("reset-form");
    if (!form || !location.hash) return;
    var params = new URLSearchParams(location.hash.slice(1));
    var email = params.get("email"), code = params.get("code");
    if (email) form.querySelector("#email").value = email;
    if (code) form.querySelector("#code").value = code;
    history.replaceState(null, "", location.pathname + location.search);
    if (code) form.querySelector("#new-password").focus();
  }
  function start() {
    fillReset();
    tick();
    setInterval(tick, 15000);
    var table = document.querySelector("table.inbox");
    if (!table) return;
    var every = parseInt(table.getAttribute("data-poll"), 10);
    if (!every) return;
    var status = table.getAttribute("data-status");
    var body = document.getElementById("inbox-rows");
    var known = urgentIds(body);
    var baseTitle = document.title;
    function poll() {
      // Keep a half-written note or an open form: skip while the user is working in a row.
      var active = document.activeElement;
      if (active && body.contains(active) && active.tagName !== "BODY") { return; }
      if (body.querySelector("details[open]")) { return; }
      fetch("/console/alerts/rows?status=" + encodeURIComponent(status), { credentials: "same-origin", redirect: "follow" })
        .then(function (r) {
          if (r.redirected || !r.ok) { if (r.redirected) { window.location.reload(); } return null; }
          return r.text();
        })
        .then(function (html) {
          if (html === null) return;
          body.innerHTML = html;
          var now = urgentIds(body), fresh = false;
          Object.keys(now).forEach(function (id) {
            if (!known[id]) {
              fresh = true;
              var row = body.querySelector("tr[data-alert-id='" + id + "']");
              if (row) row.classList.add("fresh");
            }
          });
          known = now;
          if (fresh) {
            var banner = document.getElementById("urgent-banner");
            if (banner) { banner.hidden = false; }
            document.title = "(!) Urgent alert · " + baseTitle;
          }
          tick();
        })
        .catch(function () { /* offline for a moment: try again next time */ });
    }
    setInterval(poll, every);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();

// My account: browser notifications for alerts. Where the browser has service workers and the
// Push API, shows the button; a click asks for permission, registers the console's service
// worker, subscribes with the server's key and posts the subscription as a signed form.
(function () {
  "use strict";
  function keyBytes(text) {
    var b64 = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }
  function start() {
    var section = document.getElementById("web-push");
    var button = document.getElementById("web-push-enable");
    var status = document.getElementById("web-push-status");
    if (!section || !button || !status) return;
    var key = section.getAttribute("data-key"), csrf = section.getAttribute("data-csrf");
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
      status.textContent = "This browser cannot show notifications from the console.";
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      button.disabled = true;
      status.textContent = "Turning notifications on…";
      Notification.requestPermission().then(function (permission) {
        if (permission !== "granted") throw new Error("Notifications are blocked for this site: allow them in the browser's site settings, then try again.");
        return navigator.serviceWorker.register("/console/push-worker.js", { scope: "/console/" });
      }).then(function () {
        return navigator.serviceWorker.ready;
      }).then(function (registration) {
        return registration.pushManager.getSubscription().then(function (existing) {
          return existing || registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
        });
      }).then(function (subscription) {
        var json = subscription.toJSON();
        var form = new URLSearchParams();
        form.set("csrf", csrf);
        form.set("endpoint", json.endpoint);
        form.set("p256dh", json.keys.p256dh);
        form.set("auth", json.keys.auth);
        return fetch("/console/account/web-push", { method: "POST", credentials: "same-origin", body: form });
      }).then(function (response) {
        return response.text().then(function (text) {
          if (!response.ok) throw new Error(text && text.length < 200 ? text : "The server did not accept this browser (" + response.status + ").");
          status.textContent = text;
          button.disabled = false;
        });
      }).catch(function (error) {
        status.textContent = error && error.message ? error.message : "Notifications could not be turned on.";
        button.disabled = false;
      });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
