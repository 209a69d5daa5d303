// Companion care-team console: the service worker that shows alert notifications. A push
// carries fixed text and an opaque id only ({"title", "body", "kind", "alert_id", "url"});
// the console shows the alert itself once staff sign in. No dependencies, no caching.
"use strict";
self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });
self.addEventListener("push", function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {}; }
  var alerting = data.kind === "care_alert" || data.kind === "care_team_unreachable";
  event.waitUntil(self.registration.showNotification(data.title || "Companion", {
    body: data.body || "Open the console.",
    tag: data.alert_id || data.care_team_id || data.notification_id || "companion",
    renotify: true,
    requireInteraction: alerting,
    data: { url: data.url || "/console/alerts" }
  }));
});
self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var wanted = (event.notification.data && event.notification.data.url) || "/console/alerts";
  var url = new URL(wanted, self.location.origin);
  // Only the console's own pages open from here.
  if (url.origin !== self.location.origin || url.pathname.indexOf("/console/") !== 0) {
    url = new URL("/console/alerts", self.location.origin);
  }
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
    for (var i = 0; i < windows.length; i++) {
      if (windows[i].url.indexOf(self.location.origin + "/console") === 0 && "focus" in windows[i]) {
        return windows[i].navigate(url.href).then(function (w) { return (w || windows[i]).focus(); });
      }
    }
    return self.clients.openWindow(url.href);
  }));
});
