// coi web's service worker: shows the notifications our COI server pushes (webpush-spec:
// Push Notification Payload) and completes the validation of a new subscription
// (webpush-spec: Validating A Push Subscription). It caches nothing: messages stay on
// the server side of the app.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

async function validate(value) {
  const me = await fetch("/api/me", { credentials: "same-origin" });
  if (!me.ok) throw new Error("not logged in");
  const { csrf } = await me.json();
  const response = await fetch("/api/push/validate", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ validation: value }),
  });
  const result = await response.json();
  for (const client of await self.clients.matchAll({ type: "window" })) {
    client.postMessage({ kind: "push-validated", ok: response.ok, result });
  }
}

function notification(data) {
  const from = data["from-name"] || data["from-email"] || "New message";
  let body = data.subject || "";
  if (data.content && (!data["content-type"] || data["content-type"].startsWith("text/plain"))
      && !data["content-encoding"]) {
    body = data.content.slice(0, 300);
  }
  const chat = data["group-id"] ? `group:${data["group-id"]}` : (data["from-email"] || "");
  return self.registration.showNotification(from, {
    body: body || "New message",
    tag: chat || undefined,
    icon: "/static/icon.svg",
    data: { chat },
  });
}

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {}; }
  if (typeof data.validation === "string") {
    event.waitUntil(validate(data.validation));
  } else {
    event.waitUntil(notification(data));
  }
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const chat = event.notification.data && event.notification.data.chat;
  const url = chat ? `/?chat=${encodeURIComponent(chat)}` : "/";
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const client of windows) {
      if ("focus" in client) { await client.navigate(url); return client.focus(); }
    }
    return self.clients.openWindow(url);
  })());
});
