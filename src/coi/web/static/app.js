// coi web: the browser side. Plain DOM, no framework, nothing loaded from elsewhere.
// Text from messages is only ever set with textContent; the one exception is message
// HTML, which the server sanitised (coi.web.sanitize) and the CSP keeps inert anyway.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { me: null, csrf: "", chats: [], chat: null, data: null, reply: null, edit: null,
                files: [], events: null, reloadTimer: null, html: new Map(), shown: "" };
const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢"];

// -- API -------------------------------------------------------------------------------

async function api(path, options = {}) {
  const init = { method: options.method || (options.body !== undefined ? "POST" : "GET"),
                 headers: {}, credentials: "same-origin" };
  if (init.method !== "GET") init.headers["X-CSRF-Token"] = state.csrf;
  if (options.body instanceof FormData) init.body = options.body;
  else if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (response.status === 401 && path !== "/api/login") { showLogin(); throw new Error("not logged in"); }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function flash(text, isError = false) {
  const box = $("status");
  box.textContent = text;
  box.className = isError ? "error" : "";
  box.hidden = !text;
  clearTimeout(flash.timer);
  if (text) flash.timer = setTimeout(() => { box.hidden = true; }, isError ? 8000 : 4000);
}

function fail(error) { flash(error.message || String(error), true); }

function when(ts) {
  const d = new Date(ts * 1000);
  const today = new Date();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return d.toDateString() === today.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

// -- login -----------------------------------------------------------------------------

function showLogin() {
  if (state.events) { state.events.close(); state.events = null; }
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-form").address.focus();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  $("login-error").textContent = "";
  form.querySelector("button").disabled = true;
  try {
    const me = await api("/api/login", { body: { address: form.address.value, password: form.password.value } });
    form.password.value = "";
    await start(me);
  } catch (e) {
    $("login-error").textContent = e.message;
  } finally {
    form.querySelector("button").disabled = false;
  }
});

async function logout() {
  try {
    const reg = "serviceWorker" in navigator ? await navigator.serviceWorker.getRegistration() : null;
    const sub = reg && reg.pushManager ? await reg.pushManager.getSubscription() : null;
    await api("/api/logout", { body: {} });
    if (sub) await sub.unsubscribe();
  } catch (e) { /* logged out all the same */ }
  state.chat = null;
  showLogin();
}

async function start(me) {
  state.me = me;
  state.csrf = me.csrf;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  const account = me.accounts[0];
  $("me-button").textContent = account ? (account.name || account.address) : me.address;
  listen();
  await loadChats();
  const wanted = new URLSearchParams(location.search).get("chat") || location.pathname.split("/chat/")[1];
  if (wanted) {
    const found = state.chats.find((c) => String(c.id) === wanted || c.peer === wanted || c.key === wanted);
    if (found) openChat(found.id);
  }
  registerWorker();
}

// -- live events -----------------------------------------------------------------------

function listen() {
  if (state.events) state.events.close();
  const source = new EventSource("/api/events");
  state.events = source;
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.kind === "status") { flash(event.text); return; }
    scheduleReload(event.kind === "reload" || event.chat === null || (state.chat && event.chat === state.chat));
  };
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) setTimeout(listen, 3000); };
}

function scheduleReload(chatToo) {
  state.reloadChat = state.reloadChat || chatToo;
  clearTimeout(state.reloadTimer);
  state.reloadTimer = setTimeout(async () => {
    const chatToo = state.reloadChat;
    state.reloadChat = false;
    try {
      await loadChats();
      if (chatToo && state.chat) await loadChat(state.chat, true);
    } catch (e) { fail(e); }
  }, 100);
}

// -- chat list -------------------------------------------------------------------------

async function loadChats() {
  const query = $("search").value.trim();
  state.chats = await api("/api/chats" + (query ? `?q=${encodeURIComponent(query)}` : ""));
  renderChats();
}

function chatTitle(c) { return c.title || c.name || c.peer || `chat ${c.id}`; }

function renderChats() {
  const list = $("chat-list");
  list.replaceChildren(...state.chats.map((c) => el("li", {},
    el("button", { class: "chat-item" + (c.id === state.chat ? " current" : ""), "data-chat": c.id,
                   "aria-current": c.id === state.chat ? "true" : null, onclick: () => openChat(c.id) },
      el("span", { class: "avatar", "aria-hidden": "true", text: (chatTitle(c)[0] || "?").toUpperCase() }),
      el("span", { class: "summary" },
        el("span", { class: "name", text: chatTitle(c) + (c.muted ? " 🔕" : "") }),
        el("span", { class: "last", text: (c.request ? "Request: " : "") + (c.last || "") })),
      el("span", { class: "side" },
        el("time", { text: c.last_time ? when(c.last_time) : "" }),
        c.unread ? el("span", { class: "unread", "aria-label": `${c.unread} unread`, text: String(c.unread) }) : null)))));
  $("no-chats").hidden = state.chats.length > 0;
}

let searchTimer = null;
$("search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => loadChats().catch(fail), 200);
});

// -- one chat --------------------------------------------------------------------------

async function openChat(id) {
  if (state.chat !== id) { cancelContext(); clearFiles(); }
  state.chat = id;
  document.body.classList.add("in-chat");
  $("chat-view").hidden = false;
  $("empty-view").hidden = true;
  history.replaceState(null, "", "/");
  await loadChat(id, false);
  renderChats();
  $("compose-text").focus();
}

async function loadChat(id, keepScroll) {
  const data = await api(`/api/chats/${id}`);
  if (state.chat !== id) return;
  state.data = data;
  const c = data.chat;
  $("chat-title").textContent = chatTitle(c);
  $("chat-subtitle").textContent = c.group ? `${(data.members || []).length + 1} members` + (data.left ? " · you left" : "") : (c.peer || "");
  $("group-menu").hidden = !c.group;
  $("mute-toggle").textContent = c.muted ? "🔕" : "🔔";
  $("mute-toggle").setAttribute("aria-pressed", String(Boolean(c.muted)));
  $("mute-toggle").title = c.muted ? "Unmute" : "Mute notifications";
  $("request-banner").hidden = !c.request;
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  // an event that changed nothing shown keeps the DOM as it is: a click on a file
  // under way, a hover, an opened HTML view are not lost to a rebuild
  const shown = JSON.stringify([id, c.group, data.messages]);
  if (!keepScroll || shown !== state.shown) {
    state.shown = shown;
    list.replaceChildren(...data.messages.map(renderMessage));
    if (!keepScroll || atBottom) list.scrollTop = list.scrollHeight;
  }
  if (c.unread && document.visibilityState === "visible") {
    api(`/api/chats/${id}/read`, { body: {} }).then(() => loadChats()).catch(fail);
  }
}

function stateText(m) {
  if (!m.outgoing) return "";
  if (m.state === "failed") return `failed: ${m.error}`;
  if (m.state === "sending") return "sending…";
  return m.read_by && m.read_by.length ? "read" : "sent";
}

function renderMessage(m) {
  const group = state.data && state.data.chat.group;
  const item = el("li", { class: `msg ${m.outgoing ? "out" : "in"}${m.mentions_me ? " mention" : ""}${m.deleted ? " deleted" : ""}`,
                          "data-id": m.id, tabindex: "0" });
  if (group && !m.outgoing) item.append(el("div", { class: "sender", text: m.name || m.from }));
  if (m.parent) {
    item.append(el("blockquote", { class: "quote" },
      el("strong", { text: m.parent.outgoing ? "You" : (m.parent.name || m.parent.from) }),
      el("span", { text: m.parent.text })));
  }
  if (m.deleted) item.append(el("p", { class: "text", text: "This message was deleted." }));
  else if (m.text) item.append(el("p", { class: "text", text: m.text }));
  if (m.poll) item.append(renderPoll(m));
  if (m.location) {
    const where = `${m.location.latitude}, ${m.location.longitude}`;
    item.append(el("p", { class: "location" }, "📍 ",
      el("a", { href: `https://www.openstreetmap.org/?mlat=${m.location.latitude}&mlon=${m.location.longitude}`,
                target: "_blank", rel: "noopener noreferrer", text: where })));
  }
  for (const f of m.files || []) {
    const box = el("div", { class: "file" });
    if (f.inline) box.append(el("img", { src: f.url + "?inline=1", alt: f.name, loading: "lazy" }));
    box.append(el("a", { href: f.url, download: f.name, text: `⬇ ${f.name} (${formatSize(f.size)})` }));
    item.append(box);
  }
  if (m.email && !m.deleted) {
    const html = el("div", { class: "html" });
    if (state.html.has(m.id)) html.innerHTML = state.html.get(m.id);  // sanitised by the server
    else item.append(el("button", { class: "linklike", onclick: (e) => showHtml(m.id, html, e.target), text: "Show formatted" }));
    item.append(html);
  }
  const reactions = Object.entries(m.reactions || {});
  if (reactions.length) {
    const counts = {};
    for (const [, emoji] of reactions) counts[emoji] = (counts[emoji] || 0) + 1;
    item.append(el("div", { class: "reactions" }, ...Object.entries(counts).map(([emoji, n]) =>
      el("span", { class: "reaction", title: reactions.filter(([, e]) => e === emoji).map(([who]) => who).join(", "),
                   text: n > 1 ? `${emoji} ${n}` : emoji }))));
  }
  const meta = [when(m.time)];
  if (m.edited && !m.deleted) meta.push("edited");
  if (m.encrypted) meta.push(m.verified || m.outgoing ? "🔒" : "🔒?");
  if (m.pinned) meta.push("📌 pinned");
  if (m.email) meta.push("email");
  const st = stateText(m);
  if (st) meta.push(st);
  item.append(el("div", { class: "meta" + (m.state === "failed" ? " error" : ""), text: meta.join(" · ") }));
  if (!m.deleted) item.append(messageActions(m));
  return item;
}

function renderPoll(m) {
  const p = m.poll;
  const box = el("div", { class: "poll" }, el("strong", { text: p.question + (p.closed ? " (closed)" : "") }));
  p.options.forEach((option, i) => box.append(el("div", { class: "poll-option" },
    el("span", { text: `${option}: ${p.counts[i] || 0}` }))));
  return box;
}

function formatSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

async function showHtml(id, box, button) {
  try {
    const data = await api(`/api/messages/${id}/html`);
    state.html.set(id, data.html);
    box.innerHTML = data.html;  // sanitised by the server (coi.web.sanitize)
    button.remove();
  } catch (e) { fail(e); }
}

function messageActions(m) {
  const bar = el("div", { class: "actions" });
  bar.append(el("button", { title: "Reply", "aria-label": "Reply", onclick: () => startReply(m), text: "↩" }));
  for (const emoji of QUICK_REACTIONS) {
    bar.append(el("button", { title: `React ${emoji}`, "aria-label": `React ${emoji}`, onclick: () => react(m, emoji), text: emoji }));
  }
  if (m.outgoing && m.kind !== "poll") {
    bar.append(el("button", { title: "Edit", "aria-label": "Edit", onclick: () => startEdit(m), text: "✎" }));
    bar.append(el("button", { title: "Delete for everyone", "aria-label": "Delete", onclick: () => del(m), text: "🗑" }));
  }
  return bar;
}

async function react(m, emoji) {
  const mine = state.me && Object.entries(m.reactions || {}).find(([who]) => state.me.accounts.some((a) => a.address === who));
  const value = mine && mine[1] === emoji ? "" : emoji;  // the same again takes it back
  try { await api(`/api/messages/${m.id}/react`, { body: { emoji: value } }); await loadChat(state.chat, true); } catch (e) { fail(e); }
}

async function del(m) {
  if (!confirm("Delete this message for everyone?")) return;
  try { await api(`/api/messages/${m.id}/delete`, { body: {} }); await loadChat(state.chat, true); } catch (e) { fail(e); }
}

function startReply(m) {
  state.edit = null;
  state.reply = m;
  setContext(`Reply to ${m.outgoing ? "yourself" : (m.name || m.from)}: ${m.text.slice(0, 80)}`);
}

function startEdit(m) {
  state.reply = null;
  state.edit = m;
  setContext("Editing your message");
  $("compose-text").value = m.text;
}

function setContext(text) {
  $("compose-context-text").textContent = text;
  $("compose-context").hidden = false;
  $("compose-text").focus();
}

function cancelContext() {
  if (state.edit) $("compose-text").value = "";
  state.reply = null;
  state.edit = null;
  $("compose-context").hidden = true;
}

$("compose-cancel").addEventListener("click", cancelContext);

// -- composing -------------------------------------------------------------------------

function addFiles(list) {
  for (const f of list) state.files.push(f);
  renderFiles();
}

function clearFiles() { state.files = []; renderFiles(); }

function renderFiles() {
  const box = $("compose-files");
  box.hidden = state.files.length === 0;
  box.replaceChildren(...state.files.map((f, i) => el("span", { class: "chip" }, f.name,
    el("button", { type: "button", "aria-label": `Remove ${f.name}`, onclick: () => { state.files.splice(i, 1); renderFiles(); }, text: "✕" }))));
}

$("file-input").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
$("chat-view").addEventListener("dragover", (e) => { e.preventDefault(); $("chat-view").classList.add("dropping"); });
$("chat-view").addEventListener("dragleave", () => $("chat-view").classList.remove("dropping"));
$("chat-view").addEventListener("drop", (e) => {
  e.preventDefault();
  $("chat-view").classList.remove("dropping");
  if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
});

$("compose-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
  if (e.key === "Escape") { cancelContext(); }
});

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const textBox = $("compose-text");
  const text = textBox.value;
  if (!text.trim() && state.files.length === 0) return;
  const button = $("send-button");
  button.disabled = true;
  try {
    if (state.edit) {
      await api(`/api/messages/${state.edit.id}/edit`, { body: { text } });
    } else {
      const form = new FormData();
      form.append("to", String(state.chat));
      form.append("text", text);
      if (state.reply) form.append("reply_to", String(state.reply.id));
      for (const f of state.files) form.append("file", f, f.name);
      await api("/api/send", { body: form });
    }
    textBox.value = "";
    state.edit = null;
    cancelContext();
    clearFiles();
    await loadChat(state.chat, false);
    await loadChats();
  } catch (e) { fail(e); } finally { button.disabled = false; textBox.focus(); }
});

$("back").addEventListener("click", () => {
  state.chat = null;
  document.body.classList.remove("in-chat");
  $("chat-view").hidden = true;
  $("empty-view").hidden = false;
  renderChats();
});

$("mute-toggle").addEventListener("click", async () => {
  const c = state.data && state.data.chat;
  if (!c) return;
  try {
    const result = await api(`/api/chats/${c.id}/mute`, { body: { muted: !c.muted } });
    flash(result.muted ? "muted" : "unmuted");
    await loadChat(c.id, true);
    await loadChats();
  } catch (e) { fail(e); }
});

$("accept-request").addEventListener("click", async () => {
  try { await api(`/api/chats/${state.chat}/accept`, { body: {} }); await loadChat(state.chat, true); await loadChats(); } catch (e) { fail(e); }
});

$("block-request").addEventListener("click", async () => {
  const c = state.data && state.data.chat;
  if (!c || !c.peer) return;
  try { await api("/api/contacts", { body: { address: c.peer, blocked: true } }); $("back").click(); await loadChats(); } catch (e) { fail(e); }
});

// -- dialogs ---------------------------------------------------------------------------

function dialog(title, fields, onOk, okText = "OK") {
  $("dialog-title").textContent = title;
  $("dialog-error").textContent = "";
  $("dialog-ok").textContent = okText;
  $("dialog-ok").hidden = !onOk;
  const body = $("dialog-body");
  body.replaceChildren(...fields);
  const form = $("dialog-form");
  form.onsubmit = async (event) => {
    if (event.submitter && event.submitter.value === "cancel") return;
    event.preventDefault();
    try {
      await onOk(form);
      $("dialog").close();
    } catch (e) { $("dialog-error").textContent = e.message; }
  };
  $("dialog").showModal();
  const first = body.querySelector("input, textarea, select, button");
  if (first) first.focus();
}

function field(label, name, attrs = {}) {
  const input = attrs.multiline ? el("textarea", { name, rows: 3 }) : el("input", { name, type: attrs.type || "text" });
  for (const [k, v] of Object.entries(attrs)) if (k !== "multiline" && k !== "value") input.setAttribute(k, v);
  if (attrs.value !== undefined) input.value = attrs.value;
  return el("label", {}, label, input);
}

$("new-chat").addEventListener("click", () => dialog("New chat", [
  field("Mail address", "to", { type: "email", required: "required" }),
  field("Message", "text", { multiline: true, required: "required" }),
], async (form) => {
  const row = await api("/api/send", { body: { to: form.to.value, text: form.text.value } });
  await loadChats();
  await openChat(row.chat);
}, "Send"));

$("new-group").addEventListener("click", () => dialog("New group", [
  field("Group name", "name", { required: "required" }),
  field("Members (mail addresses, separated by commas or spaces)", "members", { required: "required" }),
  field("First message", "text", { multiline: true, required: "required", value: "Hello!" }),
], async (form) => {
  const members = form.members.value.split(/[\s,;]+/).filter(Boolean);
  const result = await api("/api/groups", { body: { name: form.name.value, members, text: form.text.value } });
  await loadChats();
  await openChat(result.chat);
}, "Create"));

$("group-menu").addEventListener("click", () => {
  const data = state.data;
  const members = el("ul", { class: "members" }, ...(data.members || []).map((addr) => el("li", {}, addr, " ",
    el("button", { type: "button", class: "linklike", onclick: () => groupCall("members", { remove: addr }), text: "remove" }))));
  dialog(`Group: ${chatTitle(data.chat)}`, [
    members,
    field("Rename to", "rename", { value: data.chat.name }),
    field("Add member", "add", { type: "email" }),
    el("button", { type: "button", class: "danger", onclick: () => groupCall("leave", {}), text: "Leave group" }),
  ], async (form) => {
    if (form.add.value) await groupCall("members", { add: form.add.value }, false);
    if (form.rename.value && form.rename.value !== data.chat.name) await groupCall("rename", { name: form.rename.value }, false);
  }, "Save");
});

async function groupCall(what, body, close = true) {
  await api(`/api/chats/${state.chat}/${what}`, { body }).catch((e) => { $("dialog-error").textContent = e.message; throw e; });
  if (close) $("dialog").close();
  await loadChat(state.chat, true);
  await loadChats();
}

$("open-contacts").addEventListener("click", async () => {
  let contacts = [];
  try { contacts = await api("/api/contacts"); } catch (e) { fail(e); return; }
  const list = el("ul", { class: "contacts" }, ...contacts.map((c) => el("li", {},
    el("span", { text: c.name ? `${c.name} <${c.address}>` : c.address }), " ",
    c.blocked ? el("em", { text: "blocked " }) : null,
    el("button", { type: "button", class: "linklike", text: c.blocked ? "unblock" : "block",
                   onclick: () => contactCall({ address: c.address, blocked: !c.blocked }) }))));
  dialog("Contacts", [
    contacts.length ? list : el("p", { class: "hint", text: "No contacts stored yet." }),
    field("Add or block: mail address", "address", { type: "email" }),
    field("Name", "name"),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "blocked" }), "Blocked"),
  ], async (form) => {
    if (!form.address.value) return;
    await api("/api/contacts", { body: { address: form.address.value, name: form.name.value || null, blocked: form.blocked.checked } });
    await loadChats();
  }, "Save");
});

async function contactCall(body) {
  try { await api("/api/contacts", { body }); $("dialog").close(); await loadChats(); flash(body.blocked ? `blocked ${body.address}` : `unblocked ${body.address}`); } catch (e) { fail(e); }
}

$("me-button").addEventListener("click", async () => {
  let p = {};
  try { p = await api("/api/profile"); } catch (e) { fail(e); return; }
  dialog("Your profile", [
    p.avatar ? el("img", { class: "avatar-large", src: p.avatar, alt: "Your avatar" }) : null,
    field("Name", "name", { value: p.name || "" }),
    field("Status", "status", { value: p.status || "", multiline: true }),
    el("label", {}, "Avatar", el("input", { type: "file", name: "avatar", accept: "image/png,image/jpeg" })),
  ].filter(Boolean), async (form) => {
    const body = new FormData();
    body.append("name", form.name.value);
    body.append("status", form.status.value);
    if (form.avatar.files[0]) body.append("avatar", form.avatar.files[0], form.avatar.files[0].name);
    const saved = await api("/api/profile", { body });
    $("me-button").textContent = saved.name || state.me.address;
  }, "Save");
});

$("open-settings").addEventListener("click", () => {
  const a = state.me.accounts[0] || {};
  const filter = el("select", { name: "filter" }, ...["none", "seen", "active"].map((v) =>
    el("option", { value: v, selected: a.filter === v, text: { none: "none: chats stay in the inbox", seen: "seen: move chats out once read", active: "active: move chats out at once" }[v] })));
  const pushButton = el("button", { type: "button", onclick: enablePush, text: "Enable notifications on this device" });
  dialog("Settings", [
    el("label", {}, "Chat filter", filter),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "read_receipts", checked: a.read_receipts }), "Send read receipts"),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "encrypt_only", checked: a.encrypt_only }), "Encrypted chats only"),
    pushButton,
  ], async (form) => {
    await api("/api/settings", { body: { filter: form.filter.value, read_receipts: form.read_receipts.checked, encrypt_only: form.encrypt_only.checked } });
    state.me = await api("/api/me");
    flash("settings saved");
  }, "Save");
});

$("logout").addEventListener("click", logout);

// -- service worker and Web Push ---------------------------------------------------------

async function registerWorker() {
  if (!("serviceWorker" in navigator)) return;
  try { await navigator.serviceWorker.register("/sw.js", { scope: "/" }); } catch (e) { /* no offline or push */ }
}

function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

async function enablePush() {
  try {
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) throw new Error("this browser has no Web Push");
    if ((await Notification.requestPermission()) !== "granted") throw new Error("notifications are not allowed for this page");
    const reg = await navigator.serviceWorker.ready;
    const { key } = await api("/api/push/key");
    let sub = await reg.pushManager.getSubscription();
    if (sub) await sub.unsubscribe();
    sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
    await api("/api/push/subscribe", { body: { subscription: sub.toJSON(), device: navigator.userAgent.slice(0, 120) } });
    flash("notifications enabled: the server is checking this device");
  } catch (e) { fail(e); }
}

// -- start -------------------------------------------------------------------------------

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && document.body.classList.contains("in-chat") && document.activeElement !== $("compose-text")) $("back").click();
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && state.chat) loadChat(state.chat, true).catch(fail);
});

api("/api/me").then(start).catch(() => showLogin());
