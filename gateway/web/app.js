// Natter web chat: plain JS on the SDK the gateway serves at /sdk/. Everything a user
// or the server supplies is put in the page with textContent or as an attribute value
// set through the DOM, never as HTML.
import { NatterClient, NatterError, newId } from "/sdk/natter.js";

const $ = (id) => document.getElementById(id);
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const PAGE = 30;
const REACTIONS = ["👍", "❤️", "😂"];
const S = {
  client: null,
  me: "",
  chats: new Map(),       // chatId -> {id, type, name, peer, lastSeq, unread, last, ts}
  current: "",
  view: null,             // the open chat's view (see openChat)
  receipts: new Map(),    // chatId -> Map(userId -> {delivered, read})
  presence: new Map(),    // userId -> status
  typing: new Map(),      // chatId -> Map(userId -> timer)
  pendingOps: new Map(),  // refId -> [edit/delete/react messages seen before their target]
  file: null,
  editing: null,          // messageId being edited
  peers: JSON.parse(localStorage.getItem("natter.peers") || "{}"),
};

// ---------- sign in ----------

async function signIn(ev) {
  ev.preventDefault();
  $("signin-error").textContent = "";
  const user = $("signin-user").value.trim();
  const pasted = $("signin-token").value.trim();
  try {
    let token = pasted;
    if (!token) {
      const r = await fetch("/api/v1/dev/token", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user }),
      });
      const body = await r.json().catch(() => ({}));
      if (r.status === 404) {
        $("token-box").open = true;
        throw new Error("This server has no dev sign-in: paste a token.");
      }
      if (!r.ok) throw new Error(body?.error?.message || `sign-in failed (HTTP ${r.status})`);
      token = body.token;
    }
    sessionStorage.setItem("natter.token", token);
    sessionStorage.setItem("natter.dev", pasted ? "" : user);
    start(token);
  } catch (e) {
    $("signin-error").textContent = e.message;
  }
}

async function devRefresh() {
  const user = sessionStorage.getItem("natter.dev");
  if (!user) throw new Error("token expired: sign in again");
  const r = await fetch("/api/v1/dev/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user }) });
  if (!r.ok) throw new Error("token refresh failed");
  const { token } = await r.json();
  sessionStorage.setItem("natter.token", token);
  return token;
}

function signOut() {
  sessionStorage.removeItem("natter.token");
  sessionStorage.removeItem("natter.dev");
  S.client?.close();
  location.reload();
}

// ---------- start ----------

function start(token) {
  $("signin").hidden = true;
  $("app").hidden = false;
  const c = new NatterClient({ url: location.origin, token, refreshToken: devRefresh });
  S.client = c;
  c.on("state", (st) => {
    $("me-status").className = "dot " + st;
    $("me-status").title = st;
    if (st === "closed" && !S.me) signOut();
  });
  c.on("connected", (e) => {
    S.me = e.userId;
    $("me-name").textContent = e.userId;
    $("me-transport").textContent = e.transport === "sse" ? "(HTTP fallback)" : "";
    document.title = `Natter: ${e.userId}`;
    if (!e.resumed) loadChats();
    else if (S.current) markRead();
  });
  c.on("message", onMessage);
  c.on("receipt", onReceipt);
  c.on("typing", onTyping);
  c.on("presence", (p) => { S.presence.set(p.userId, p.status); renderChatList(); renderHead(); });
  c.on("error", (e) => {
    if (e.code !== "unknown_type") { toast(e.message); return; }
    // A server without typing support refuses the frame; the indicator just stays off.
    if (/"typing"/.test(e.message)) document.body.dataset.typingUnsupported = "1";
  });
  c.connect();
}

// ---------- chats ----------

async function loadChats() {
  try {
    const r = await S.client.rest("GET", "/api/v1/chats?limit=200");
    for (const ch of r.chats) upsertChat(ch);
    renderChatList();
    const peers = [...S.chats.values()].map((c) => c.peer).filter(Boolean);
    if (peers.length) S.client.subscribePresence(peers);
    const want = sessionStorage.getItem("natter.current");
    if (want && S.chats.has(want) && !S.current) openChat(want);
  } catch (e) {
    toast("Could not load chats: " + e.message);
  }
}

/** upsertChat merges a chat from the REST API (or a partial one) into S.chats, in place. */
function upsertChat(ch) {
  let c = S.chats.get(ch.id);
  if (!c) S.chats.set(ch.id, (c = { id: ch.id, type: ch.type, name: "", peer: "", lastSeq: 0, unread: 0, last: undefined, ts: 0 }));
  if (ch.type) c.type = ch.type;
  if (ch.name) c.name = ch.name;
  c.lastSeq = Math.max(c.lastSeq, ch.lastSeq ?? 0);
  // The server's unread count lags live messages: keep the higher.
  c.unread = Math.max(c.unread, ch.unread ?? 0);
  if (ch.lastMessage && (!c.last || ch.lastMessage.seq >= c.last.seq)) c.last = ch.lastMessage;
  c.ts = Math.max(c.ts, c.last?.timestamp ?? 0, Date.parse(ch.createdAt || "") || 0);
  c.peer ||= S.peers[ch.id] || "";
  if (!c.peer && c.type === "direct") {
    const m = ch.members?.find((x) => x.userId !== S.me);
    if (m) c.peer = m.userId;
    else if (c.last && c.last.senderId !== S.me) c.peer = c.last.senderId;
    if (!c.peer) void findPeer(c);
  }
  if (c.peer && S.peers[c.id] !== c.peer) { S.peers[c.id] = c.peer; localStorage.setItem("natter.peers", JSON.stringify(S.peers)); }
  return c;
}

async function findPeer(c) {
  try {
    const r = await S.client.rest("GET", `/api/v1/chats/${encodeURIComponent(c.id)}/members`);
    const m = (r.members || r).find?.((x) => x.userId !== S.me);
    if (m) { c.peer = m.userId; upsertChat({ id: c.id }); renderChatList(); S.client.subscribePresence([m.userId]); }
  } catch { /* the members endpoint may not exist yet: the name fills in from messages */ }
}

const chatName = (c) => c.type === "group" ? (c.name || "Group") : (c.peer || "Direct chat");
const presenceClass = (u) => (u ? S.presence.get(u) : undefined) || "unknown";

function renderChatList() {
  const ul = $("chat-list");
  const chats = [...S.chats.values()].sort((a, b) => (b.ts || 0) - (a.ts || 0));
  ul.replaceChildren(...chats.map((c) => {
    const li = el("li");
    li.dataset.chat = c.id;
    if (c.id === S.current) li.classList.add("active");
    const dot = el("span", "dot " + (c.type === "direct" ? presenceClass(c.peer) : "unknown"));
    dot.title = c.type === "direct" ? (S.presence.get(c.peer) || "presence unknown") : "group";
    const mid = el("div");
    mid.style.minWidth = "0";
    mid.append(el("div", "name", chatName(c)), el("div", "last", preview(c.last)));
    li.append(dot, mid);
    if (c.unread > 0 && c.id !== S.current) li.append(el("span", "badge", String(c.unread)));
    li.addEventListener("click", () => openChat(c.id));
    return li;
  }));
}

function preview(m) {
  if (!m) return "";
  const who = m.senderId === S.me ? "You: " : "";
  if (m.messageType === "image") return who + "📷 Photo";
  if (m.messageType === "file") return who + "📎 " + (m.meta?.name || "File");
  if (m.messageType === "system") return systemText(m);
  return who + m.content;
}

async function newChat(ev) {
  ev.preventDefault();
  $("new-chat-error").textContent = "";
  const users = $("new-chat-user").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (users.length === 0) return;
  try {
    const body = users.length === 1 ? { type: "direct", members: users } : { type: "group", members: users, name: users.join(", ") };
    const ch = await S.client.rest("POST", "/api/v1/chats", body);
    if (ch.type === "direct") S.peers[ch.id] = users[0];
    upsertChat(ch);
    S.client.trackChat(ch.id);
    if (ch.type === "direct") S.client.subscribePresence([users[0]]);
    $("new-chat-user").value = "";
    renderChatList();
    openChat(ch.id);
  } catch (e) {
    $("new-chat-error").textContent = e.message;
  }
}

// ---------- conversation ----------

function openChat(chatId) {
  if (S.current) S.client.stopTyping(S.current);
  S.current = chatId;
  sessionStorage.setItem("natter.current", chatId);
  S.editing = null;
  const box = $("messages");
  box.replaceChildren($("history-status"));
  S.view = { chatId, items: new Map(), oldest: 0, hasMore: true, loading: false };
  $("empty").hidden = true;
  for (const id of ["conv-head", "messages", "composer"]) $(id).hidden = false;
  renderHead();
  renderTyping();
  const c = S.chats.get(chatId);
  if (c) c.unread = 0;
  renderChatList();
  void loadOlder(true);
  $("input").focus();
}

function renderHead() {
  const c = S.chats.get(S.current);
  if (!c) return;
  $("conv-title").textContent = chatName(c);
  const st = c.type === "direct" ? presenceClass(c.peer) : "unknown";
  $("conv-dot").className = "dot " + st;
  $("conv-sub").textContent = c.type === "group" ? "Group" : (st === "unknown" ? "" : st);
}

async function loadOlder(first = false) {
  const v = S.view;
  if (!v || v.loading || !v.hasMore) return;
  v.loading = true;
  $("history-status").textContent = "Loading…";
  const box = $("messages");
  const fromBottom = box.scrollHeight - box.scrollTop;
  try {
    const page = await S.client.loadHistory(v.chatId, { before: v.oldest || undefined, limit: PAGE });
    if (S.view !== v) return;
    v.hasMore = page.hasMore;
    for (const m of page.messages) {
      v.oldest = v.oldest ? Math.min(v.oldest, m.seq) : m.seq;
      addMessage(m);
    }
    $("history-status").textContent = v.hasMore ? "" : "Beginning of the conversation";
    if (first) box.scrollTop = box.scrollHeight;
    else box.scrollTop = box.scrollHeight - fromBottom;
    markRead();
  } catch (e) {
    $("history-status").textContent = "Could not load history: " + e.message;
  } finally {
    v.loading = false;
  }
  // Keep loading while the list does not fill the view yet.
  if (S.view === v && v.hasMore && box.scrollHeight <= box.clientHeight) void loadOlder();
}

/** addMessage puts m in the open view at its seq position (or updates it). */
function addMessage(m) {
  const v = S.view;
  if (!v || m.chatId !== v.chatId) return;
  if (["edit", "delete", "react"].includes(m.messageType)) { applyOp(m); return; }
  let it = v.items.get(m.messageId);
  if (it) {
    if (m.seq && it.seq !== m.seq) { it.seq = m.seq; it.node.dataset.seq = String(m.seq); place(it); }
    it.pending = false;
    it.msg = { ...it.msg, ...m };
    renderItem(it);
    return;
  }
  it = { msg: m, seq: m.seq || Infinity, pending: !m.seq, node: el("div", "msg"), reactions: new Map() };
  it.node.dataset.id = m.messageId;
  it.node.dataset.seq = String(it.seq);
  v.items.set(m.messageId, it);
  if (Array.isArray(m.reactions)) for (const r of m.reactions) it.reactions.set(r.emoji, new Set(r.users || Array.from({ length: r.count || 0 }, (_, i) => `#${i}`)));
  renderItem(it);
  place(it);
  for (const op of S.pendingOps.get(m.messageId) || []) applyOp(op);
  S.pendingOps.delete(m.messageId);
}

/** place moves it's node to its seq order among the view's messages. */
function place(it) {
  const box = $("messages");
  let before = null;
  for (let n = box.lastElementChild; n && n.classList.contains("msg"); n = n.previousElementSibling) {
    if (n === it.node) continue;
    if (Number(n.dataset.seq) > it.seq) before = n; else break;
  }
  if (before) box.insertBefore(it.node, before);
  else box.append(it.node);
}

function systemText(m) {
  const e = m.meta || {};
  switch (e.event) {
    case "chat_created": return `${e.by || m.senderId} created the chat`;
    case "member_added": return `${e.by || "someone"} added ${e.userId}`;
    case "member_removed": return `${e.by || "someone"} removed ${e.userId}`;
    case "member_left": return `${e.userId} left`;
    case "chat_renamed": return `${e.by || "someone"} renamed the chat to ${e.name}`;
    default: return m.content || e.event || "system event";
  }
}

function renderItem(it) {
  const m = it.msg;
  const mine = m.senderId === S.me || it.pending;
  const n = it.node;
  n.className = "msg" + (mine ? " mine" : "") + (m.messageType === "system" ? " system" : "") + (it.deleted || m.deleted ? " deleted" : "");
  const kids = [];
  const c = S.chats.get(m.chatId);
  if (!mine && c?.type === "group" && m.messageType !== "system") kids.push(el("div", "sender", m.senderId));
  const bubble = el("div", "bubble");
  if (it.deleted || m.deleted) bubble.textContent = "This message was deleted";
  else if (m.messageType === "system") bubble.textContent = systemText(m);
  else if (m.messageType === "image" || m.messageType === "file") renderMedia(bubble, m, it);
  else bubble.textContent = m.content;
  kids.push(bubble);
  if (it.reactions.size > 0) {
    const r = el("div", "reactions");
    for (const [emoji, users] of it.reactions) if (users.size > 0) r.append(el("span", "", `${emoji} ${users.size}`));
    kids.push(r);
  }
  const meta = el("div", "meta");
  if (m.timestamp) meta.append(el("time", "", new Date(m.timestamp).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  if (it.edited || m.edited) meta.append(el("span", "", "edited"));
  if (mine && m.messageType !== "system") meta.append(ticks(it));
  kids.push(meta);
  if (!it.pending && !(it.deleted || m.deleted) && m.messageType !== "system") kids.push(actions(it, mine));
  n.replaceChildren(...kids);
}

function ticks(it) {
  const t = el("span", "ticks");
  if (it.pending) { t.textContent = "🕓"; t.title = "sending"; t.dataset.state = "pending"; return t; }
  let delivered = false, read = false;
  for (const [u, r] of S.receipts.get(it.msg.chatId) || []) {
    if (u === S.me) continue;
    if (r.delivered >= it.seq) delivered = true;
    if (r.read >= it.seq) read = true;
  }
  t.textContent = delivered || read ? "✓✓" : "✓";
  t.dataset.state = read ? "read" : delivered ? "delivered" : "sent";
  t.title = t.dataset.state;
  if (read) t.classList.add("read");
  return t;
}

function actions(it, mine) {
  const bar = el("div", "actions");
  for (const e of REACTIONS) {
    const b = el("button", "", e);
    b.type = "button";
    b.title = "React " + e;
    b.addEventListener("click", () => {
      const had = it.reactions.get(e)?.has(S.me);
      S.client.react(it.msg.chatId, it.msg.messageId, e, !!had).catch(opError);
    });
    bar.append(b);
  }
  if (mine && (it.msg.messageType || "text") === "text") {
    const ed = el("button", "", "Edit");
    ed.type = "button";
    ed.addEventListener("click", () => startEdit(it));
    bar.append(ed);
  }
  if (mine) {
    const del = el("button", "", "Delete");
    del.type = "button";
    del.addEventListener("click", () => S.client.delete(it.msg.chatId, it.msg.messageId).catch(opError));
    bar.append(del);
  }
  return bar;
}

function opError(e) {
  toast(e instanceof NatterError && e.code === "unknown_type" ? "This server does not support that yet." : "Failed: " + e.message);
}

/** applyOp applies an edit, delete or react event to the message it references. */
function applyOp(op) {
  const v = S.view;
  const it = v?.items.get(op.refId);
  if (!it) {
    const list = S.pendingOps.get(op.refId) || [];
    if (!list.some((x) => x.messageId === op.messageId)) list.push(op);
    S.pendingOps.set(op.refId, list);
    return;
  }
  if (op.messageType === "edit") { it.msg = { ...it.msg, content: op.content }; it.edited = true; }
  if (op.messageType === "delete") it.deleted = true;
  if (op.messageType === "react") {
    const emoji = op.meta?.emoji || op.emoji || op.content;
    const users = it.reactions.get(emoji) || new Set();
    if (op.meta?.remove || op.remove) users.delete(op.senderId); else users.add(op.senderId);
    it.reactions.set(emoji, users);
  }
  renderItem(it);
}

async function renderMedia(bubble, m, it) {
  const meta = m.meta || {};
  const wrap = el("div", "media");
  bubble.append(wrap);
  if (m.content && m.content !== meta.name) bubble.append(el("div", "", m.content));
  const local = it.localUrl;
  if (m.messageType === "image") {
    const img = el("img");
    img.alt = meta.name || "image";
    wrap.append(img);
    if (local) img.src = local;
    else if (meta.mediaId) img.src = await mediaUrl(meta.mediaId).catch(() => "") || "";
    if (!img.src) wrap.replaceChildren(el("span", "muted", "🖼 " + (meta.name || "image") + " (unavailable)"));
  } else {
    const a = el("a", "file", "📎 " + (meta.name || "file") + (meta.size ? ` (${fmtSize(meta.size)})` : ""));
    a.href = "#";
    a.addEventListener("click", async (ev) => {
      ev.preventDefault();
      try {
        const u = await mediaUrl(meta.mediaId);
        const dl = el("a");
        dl.href = u;
        dl.download = meta.name || "file";
        dl.click();
      } catch (e) { toast("Download failed: " + e.message); }
    });
    wrap.append(a);
  }
}

const mediaCache = new Map();
async function mediaUrl(id) {
  if (mediaCache.has(id)) return mediaCache.get(id);
  const r = await fetch(`/api/v1/media/${encodeURIComponent(id)}`, { headers: { Authorization: `Bearer ${S.client.token}` } });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  const u = URL.createObjectURL(await r.blob());
  mediaCache.set(id, u);
  return u;
}

const fmtSize = (n) => n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KB` : `${(n / (1 << 20)).toFixed(1)} MB`;

// ---------- live events ----------

function onMessage(m) {
  let c = S.chats.get(m.chatId);
  if (!c) { c = upsertChat({ id: m.chatId, type: m.chatId.startsWith("dm-") ? "direct" : "group" }); void loadChats(); }
  if (!["edit", "delete", "react"].includes(m.messageType)) {
    c.last = m;
    c.ts = m.timestamp || Date.now();
    c.lastSeq = Math.max(c.lastSeq || 0, m.seq);
    if (c.type === "direct" && !c.peer && m.senderId !== S.me) { c.peer = m.senderId; upsertChat({ id: c.id }); S.client.subscribePresence([m.senderId]); }
    const visible = m.chatId === S.current && document.visibilityState === "visible";
    if (m.senderId !== S.me && !visible) c.unread = (c.unread || 0) + 1;
    clearTyping(m.chatId, m.senderId);
  }
  S.client.markDelivered(m.chatId, m.seq);
  if (m.chatId === S.current) {
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    addMessage(m);
    if (atBottom || m.senderId === S.me) box.scrollTop = box.scrollHeight;
    markRead();
  }
  renderChatList();
}

function markRead() {
  if (!S.current || document.visibilityState !== "visible") return;
  const c = S.chats.get(S.current);
  let hi = 0;
  for (const it of S.view?.items.values() || []) if (Number.isFinite(it.seq)) hi = Math.max(hi, it.seq);
  if (hi > 0 && hi > (c?.readSent || 0)) {
    S.client.markRead(S.current, hi);
    if (c) { c.readSent = hi; c.unread = 0; }
  }
}

function onReceipt(r) {
  let m = S.receipts.get(r.chatId);
  if (!m) S.receipts.set(r.chatId, (m = new Map()));
  const old = m.get(r.userId) || { delivered: 0, read: 0 };
  m.set(r.userId, { delivered: Math.max(old.delivered, r.delivered), read: Math.max(old.read, r.read) });
  if (r.chatId === S.current && r.userId !== S.me) for (const it of S.view.items.values()) if (it.msg.senderId === S.me) renderItem(it);
}

function onTyping(t) {
  if (t.userId === S.me) return;
  let m = S.typing.get(t.chatId);
  if (!m) S.typing.set(t.chatId, (m = new Map()));
  clearTimeout(m.get(t.userId));
  if (t.state === "stop") m.delete(t.userId);
  else m.set(t.userId, setTimeout(() => clearTyping(t.chatId, t.userId), 6000));
  renderTyping();
}

function clearTyping(chatId, userId) {
  const m = S.typing.get(chatId);
  if (!m?.has(userId)) return;
  clearTimeout(m.get(userId));
  m.delete(userId);
  renderTyping();
}

function renderTyping() {
  const who = [...(S.typing.get(S.current)?.keys() || [])];
  $("typing").textContent = who.length === 0 ? "" : who.length === 1 ? `${who[0]} is typing…` : `${who.join(", ")} are typing…`;
}

// ---------- composer ----------

function startEdit(it) {
  S.editing = it.msg.messageId;
  $("input").value = it.msg.content;
  $("send").textContent = "Save";
  $("input").focus();
}

function stopEdit() {
  S.editing = null;
  $("input").value = "";
  $("send").textContent = "Send";
}

async function submit(ev) {
  ev.preventDefault();
  const chatId = S.current;
  const text = $("input").value.trim();
  if (!chatId) return;
  if (S.editing) {
    const id = S.editing;
    stopEdit();
    if (text) S.client.edit(chatId, id, text).catch(opError);
    return;
  }
  if (S.file) { await sendFile(chatId, text); return; }
  if (!text) return;
  $("input").value = "";
  autosize();
  const messageId = newId();
  addMessage({ chatId, messageId, senderId: S.me, content: text, messageType: "text" });
  $("messages").scrollTop = $("messages").scrollHeight;
  try {
    await S.client.send(chatId, text, { messageId });
  } catch (e) {
    toast("Not sent: " + e.message);
  }
}

async function sendFile(chatId, caption) {
  const file = S.file;
  const fd = new FormData();
  fd.append("chatId", chatId);
  fd.append("file", file, file.name);
  try {
    const media = await S.client.rest("POST", "/api/v1/media", fd);
    const image = file.type.startsWith("image/");
    const meta = { mediaId: media.id, name: media.name || file.name, size: media.size || file.size, contentType: media.contentType || file.type };
    clearFile();
    $("input").value = "";
    await S.client.send(chatId, caption || meta.name, { messageType: image ? "image" : "file", meta });
  } catch (e) {
    toast(e.code === "not_found" ? "Uploads are not available on this server yet." : "Upload failed: " + e.message);
  }
}

function pickFile() {
  const f = $("file").files[0];
  $("file").value = "";
  if (!f) return;
  clearFile();
  S.file = f;
  const p = $("preview");
  const parts = [];
  if (f.type.startsWith("image/")) {
    const img = el("img");
    img.alt = f.name;
    img.src = URL.createObjectURL(f);
    parts.push(img);
  }
  parts.push(el("span", "", `${f.name} (${fmtSize(f.size)})`));
  const x = el("button", "", "✕");
  x.type = "button";
  x.title = "Remove attachment";
  x.addEventListener("click", clearFile);
  parts.push(x);
  p.replaceChildren(...parts);
  p.hidden = false;
}

function clearFile() {
  const img = $("preview").querySelector("img");
  if (img) URL.revokeObjectURL(img.src);
  S.file = null;
  $("preview").replaceChildren();
  $("preview").hidden = true;
}

function autosize() {
  const t = $("input");
  t.style.height = "auto";
  t.style.height = Math.min(160, t.scrollHeight) + "px";
}

let toastTimer;
function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

// ---------- wiring ----------

$("signin-form").addEventListener("submit", signIn);
$("signout").addEventListener("click", signOut);
$("new-chat").addEventListener("submit", newChat);
$("composer").addEventListener("submit", submit);
$("file").addEventListener("change", pickFile);
$("input").addEventListener("input", () => { autosize(); if (S.current && $("input").value) S.client.typing(S.current); });
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
  if (e.key === "Escape" && S.editing) stopEdit();
});
$("input").addEventListener("blur", () => { if (S.current) S.client.stopTyping(S.current); });
$("messages").addEventListener("scroll", () => { if ($("messages").scrollTop < 80) void loadOlder(); });
document.addEventListener("visibilitychange", markRead);
window.addEventListener("focus", markRead);

const saved = sessionStorage.getItem("natter.token");
if (saved) start(saved);
else $("signin").hidden = false;
