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

// The message body when the payload carries it as plain text (webpush-spec: content,
// content-type, content-encoding); null for anything else (HTML, encrypted, files).
function plainText(data) {
  if (typeof data.content !== "string") return null;
  const type = (data["content-type"] || "text/plain").toLowerCase();
  if (!type.startsWith("text/plain")) return null;
  const encoding = (data["content-encoding"] || "8bit").toLowerCase();
  try {
    if (encoding === "7bit" || encoding === "8bit") return data.content;
    if (encoding === "base64") {
      const bytes = Uint8Array.from(atob(data.content.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
      return new TextDecoder().decode(bytes);
    }
    if (encoding === "quoted-printable") {
      const soft = data.content.replace(/=\r?\n/g, "");
      const bytes = [];
      for (let i = 0; i < soft.length; i++) {
        const hex = soft.slice(i + 1, i + 3);
        if (soft[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(hex)) { bytes.push(parseInt(hex, 16)); i += 2; }
        else bytes.push(soft.charCodeAt(i) & 0xff);
      }
      return new TextDecoder().decode(new Uint8Array(bytes));
    }
  } catch (e) { return null; }
  return null;
}

function notification(data) {
  const from = data["from-name"] || data["from-email"] || "New message";
  const text = plainText(data);
  const body = text !== null && text.trim() ? text.trim().slice(0, 300) : (data.subject || "");
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
