// Natter web chat: plain JS on the SDK the gateway serves at /sdk/. Everything a user
// or the server supplies is put in the page with textContent or as an attribute value
// set through the DOM, never as HTML.
//
// What the page shows is the server's state, so it is the same after a reload and on
// every device: unread counts are the server's (GET /api/v1/chats) plus the messages
// that arrived since, counted the way the server counts them; reactions are the
// history's counts plus only the operations newer than each message's stateSeq; read
// ticks start from GET /api/v1/chats/{id}/receipts and move with receipt frames.
import { NatterClient, newId } from "/sdk/natter.js";
import { $, el, button, scrollToEnd, toast } from "./dom.js";
import { ID_RULE, humanError, validUserId } from "./errors.js";
import { initGroups } from "./groups.js";
import { attachment, clearFile, pickFile, renderEncryptedFile, renderMedia } from "./media.js";
import { initPeople, nameOf } from "./people.js";
import { openE2EE, shown, userOf } from "./e2ee.js";

const PAGE = 30;
const narrow = matchMedia("(max-width: 720px)");
const REACTIONS = ["👍", "❤️", "😂"];
const OPS = ["edit", "delete", "react"];
const S = {
  client: null,
  me: "",
  chats: new Map(),       // chatId -> chat (see upsertChat)
  current: "",
  view: null,             // the open chat's view (see openChat)
  receipts: new Map(),    // chatId -> Map(userId -> {delivered, read})
  presence: new Map(),    // userId -> status
  typing: new Map(),      // chatId -> Map(userId -> timer)
  pendingOps: new Map(),  // refId -> [edit/delete/react messages seen before their target]
  editing: null,          // messageId being edited
  everConnected: false,
  left: new Set(),        // chats this user left or was removed from, in this session
  e2ee: null,             // this browser as an end-to-end encryption device (e2ee.js), null without WebCrypto
};

const rest = (method, path, body) => S.client.rest(method, path, body);
const groups = initGroups({
  S, rest,
  changed: (c) => { renderChatList(); if (c.id === S.current) renderHead(); groups.render(c); },
  left: (c) => { S.left.add(c.id); S.chats.delete(c.id); closeChat(); renderChatList(); },
});

const people = initPeople({
  S, rest,
  renamed: () => {
    if (S.me) $("me-name").textContent = nameOf(S.me);
    renderChatList();
    renderHead();
    renderTyping();
    if (S.view) for (const it of S.view.items.values()) renderItem(it);
  },
  joined: async (chatId) => { await loadChats(); if (S.chats.has(chatId)) openChat(chatId); },
});

// ---------- sign in ----------

async function signIn(ev) {
  ev.preventDefault();
  $("signin-error").textContent = "";
  const user = $("signin-user").value.trim();
  const pasted = $("signin-token").value.trim();
  try {
    let token = pasted;
    if (!token) {
      if (!validUserId(user)) throw new Error(`A user ID uses ${ID_RULE}.`);
      const r = await fetch("/api/v1/dev/token", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user }),
      });
      const body = await r.json().catch(() => ({}));
      if (r.status === 404) {
        $("token-box").open = true;
        throw new Error("This server has no dev sign-in: paste a token.");
      }
      if (!r.ok) throw new Error(humanError(body?.error, "signin"));
      token = body.token;
    }
    sessionStorage.setItem("natter.token", token);
    sessionStorage.setItem("natter.dev", pasted ? "" : user);
    await start(token);
  } catch (e) {
    $("signin-error").textContent = e instanceof TypeError ? humanError(e) : e.message;
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
  sessionStorage.removeItem("natter.current");
  S.client?.close();
  location.reload();
}

// ---------- start and connection state ----------

async function start(token) {
  $("signin").hidden = true;
  $("app").hidden = false;
  const c = new NatterClient({ url: location.origin, token, refreshToken: devRefresh });
  S.client = c;
  // Every message passes through the device's EncryptedChats (plain ones unchanged),
  // so encrypted ones arrive decrypted, in order. Without WebCrypto the page still
  // works for plain chats.
  try {
    S.e2ee = await openE2EE(c, userOf(token));
    S.e2ee.ready.catch((e) => toast("Encryption keys not published: " + humanError(e)));
  } catch (e) {
    S.e2ee = null;
    console.warn("natter: no end-to-end encryption in this browser:", e);
  }
  // A plain chat's messages are shown as they arrive, as always; an encrypted one's
  // once EncryptedChats has decrypted them (it hears every message, after this
  // handler: the choice is made here, once per message).
  const viaE2EE = new Set();
  c.on("message", (m) => {
    if (S.e2ee && (m.messageType === "encrypted" || m.messageType === "encrypted_keys" || S.chats.get(m.chatId)?.encrypted)) viaE2EE.add(m.chatId + ":" + m.seq);
    else onMessage(m);
  });
  S.e2ee?.chats.onMessage((m) => {
    if (viaE2EE.delete(m.chatId + ":" + m.seq)) onMessage(shown(m));
  });
  c.on("state", onState);
  c.on("connected", (e) => {
    S.me = e.userId;
    S.everConnected = true;
    $("me-name").textContent = nameOf(e.userId);
    void people.loadMe();
    void people.loadInvitations();
    $("me-transport").textContent = e.transport === "sse" ? "(HTTP fallback)" : "";
    document.title = `Natter: ${e.userId}`;
    // Every (re)connection re-reads the chat list: unread counts, names and
    // membership may have changed meanwhile, on another device or by others.
    void loadChats();
    if (S.current) void loadReceipts(S.current);
  });
  c.on("receipt", onReceipt);
  c.on("typing", onTyping);
  c.on("invitation", (inv) => {
    if (inv.state === "pending") toast(`${nameOf(inv.invitedBy)} invited you to a group`);
    void people.loadInvitations();
  });
  c.on("presence", (p) => { S.presence.set(p.userId, p.status); renderChatList(); renderHead(); });
  c.on("error", (e) => {
    if (e.code === "token_expiring") return; // the SDK renews the token itself
    // A chat this user left answers what the SDK still asks of it with not_member.
    if (e.code === "not_member" && (S.left.has(e.chatId) || S.chats.get(e.chatId)?.gone)) return;
    if (e.code !== "unknown_type") { toast(humanError(e)); return; }
    // A server without typing support refuses the frame; the indicator just stays off.
    if (/"typing"/.test(e.message)) document.body.dataset.typingUnsupported = "1";
  });
  c.connect();
}

/** onState shows the connection: a dot by the user's name and, when it is lost, a banner. */
function onState(st) {
  $("me-status").className = "dot " + st;
  $("me-status").title = st;
  const banner = $("banner");
  if (st === "connected" || st === "closed" || (st === "connecting" && !S.everConnected)) {
    banner.hidden = true;
  } else {
    banner.textContent = "Connection lost. Reconnecting… Messages you send now go out once it is back.";
    banner.hidden = false;
    // Presence seen before is stale now: show none until the server tells again.
    S.presence.clear();
    renderChatList();
    renderHead();
  }
  document.body.dataset.connection = st;
  if (st === "closed" && !S.me) signOut();
}

// ---------- chats ----------

async function loadChats() {
  try {
    const r = await rest("GET", "/api/v1/chats?limit=200");
    const seen = new Set();
    for (const ch of r.chats) { upsertChat(ch, true); seen.add(ch.id); }
    // A chat the server no longer lists was left (maybe on another device).
    if (!r.hasMore) for (const id of [...S.chats.keys()]) if (!seen.has(id) && !S.chats.get(id).local) S.chats.delete(id);
    renderChatList();
    const peers = [...S.chats.values()].map((c) => c.peer).filter(Boolean);
    if (peers.length) S.client.subscribePresence(peers);
    // The peers' names of the most recent direct chats (others load when opened).
    for (const c of r.chats.filter((x) => x.type === "direct").slice(0, 30)) void people.loadNames(c.id);
    const want = sessionStorage.getItem("natter.current");
    if (want && S.chats.has(want) && !S.current) openChat(want);
    if (S.current && !S.chats.has(S.current)) closeChat();
  } catch (e) {
    toast("Could not load your chats. " + humanError(e, "chats"));
  }
}

let refreshTimer;
/** refreshChatsSoon re-reads the chat list once, shortly (many receipts, one read). */
function refreshChatsSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => void loadChats(), 300);
}

/**
 * upsertChat merges a chat (from the REST list when fromServer, or a partial one)
 * into S.chats. A chat holds: srvUnread and srvLastSeq, the server's unread count and
 * last seq when it was last listed; readSeq, how far this user has read (on any
 * device); live, the seqs of countable messages that arrived since the listing.
 */
function upsertChat(ch, fromServer = false) {
  let c = S.chats.get(ch.id);
  if (!c) {
    c = { id: ch.id, type: ch.type || "", name: "", peer: "", members: null, last: undefined, ts: 0,
      srvUnread: 0, srvLastSeq: 0, readSeq: 0, live: new Set(), gone: "", local: !fromServer };
    S.chats.set(ch.id, c);
  }
  if (ch.type) c.type = ch.type;
  if (typeof ch.name === "string" && (fromServer || ch.name)) c.name = ch.name;
  if (ch.encrypted) c.encrypted = true;
  if (Array.isArray(ch.members)) c.members = ch.members.map((m) => ({ userId: m.userId, role: m.role }));
  if (fromServer) {
    c.local = false;
    c.srvUnread = ch.unread ?? 0;
    c.srvLastSeq = ch.lastSeq ?? 0;
    c.readSeq = Math.max(c.readSeq, ch.readSeq ?? 0);
  }
  if (ch.lastMessage && (!c.last || ch.lastMessage.seq > (c.last.seq || 0) ||
    (ch.lastMessage.seq === c.last.seq && !listingBehind(ch.lastMessage, c.last)))) c.last = ch.lastMessage;
  c.ts = Math.max(c.ts, c.last?.timestamp ?? 0, Date.parse(ch.lastActivity || ch.createdAt || "") || 0);
  if (!c.peer && c.type === "direct") {
    const m = c.members?.find((x) => x.userId !== S.me);
    if (m) c.peer = m.userId;
    else if (c.last && c.last.senderId !== S.me && c.last.messageType !== "system") c.peer = c.last.senderId;
  }
  if ((c.type === "direct" && !c.peer) || (c.type === "group" && !c.name && !c.members)) void fetchMembers(c);
  return c;
}

const fetching = new Set();
async function fetchMembers(c) {
  if (fetching.has(c.id)) return;
  fetching.add(c.id);
  try {
    await groups.loadMembers(c);
    if (c.type === "direct" && !c.peer) {
      c.peer = c.members.find((x) => x.userId !== S.me)?.userId || "";
      if (c.peer) S.client.subscribePresence([c.peer]);
    }
    renderChatList();
    if (c.id === S.current) renderHead();
  } catch { /* the name fills in from messages */ } finally {
    fetching.delete(c.id);
  }
}

/** unread is the server's count plus what arrived since, minus what was read since. */
function unread(c) {
  const floor = Math.max(c.srvLastSeq, c.readSeq);
  let n = c.readSeq >= c.srvLastSeq ? 0 : c.srvUnread;
  for (const s of c.live) if (s > floor) n++;
  return n;
}

/** countable says whether m counts as unread, as the server counts: a message from someone else, not an operation, system event or key distribution. */
const countable = (m) => m.senderId !== S.me && m.messageType !== "system" && m.messageType !== "encrypted_keys" && !OPS.includes(m.messageType);

/** chatName is what a chat is called: its name, else (groups) the other members, else the peer. */
function chatName(c) {
  if (c.type !== "group") return c.peer ? nameOf(c.peer) : "Direct chat";
  if (c.name) return c.name;
  const others = (c.members || []).map((m) => m.userId).filter((u) => u !== S.me).map(nameOf);
  return others.length ? others.join(", ") : "Group";
}
const presenceClass = (u) => (u ? S.presence.get(u) : undefined) || "unknown";

function renderChatList() {
  const ul = $("chat-list");
  const chats = [...S.chats.values()].sort((a, b) => (b.ts || 0) - (a.ts || 0));
  ul.replaceChildren(...chats.map((c) => {
    const li = el("li");
    li.dataset.chat = c.id;
    if (c.id === S.current) li.classList.add("active");
    const dot = el("span", "dot " + (c.type === "direct" ? presenceClass(c.peer) : "group"));
    dot.title = c.type === "direct" ? (S.presence.get(c.peer) || "presence unknown") : "group";
    const mid = el("div", "mid");
    mid.append(el("div", "name", chatName(c)), el("div", "last", preview(c.last)));
    li.append(dot, mid);
    const n = c.id === S.current && document.visibilityState === "visible" ? 0 : unread(c);
    if (n > 0) li.append(el("span", "badge", String(n)));
    li.addEventListener("click", () => openChat(c.id));
    return li;
  }));
}

function preview(m) {
  if (!m) return "";
  const who = m.senderId === S.me ? "You: " : "";
  if (m.deleted) return who + "Message deleted";
  if (m.messageType === "image") return who + "📷 Photo";
  if (m.messageType === "file") return who + "📎 " + (m.meta?.name || "File");
  if (m.messageType === "system") return systemText(m);
  if (m.messageType === "encrypted" || m.messageType === "encrypted_keys") return who + "🔒 Encrypted message";
  if (m.messageType === "efile") return who + "🔒📎 " + (m.efile?.name || "File");
  return who + m.content;
}

async function newChat(ev) {
  ev.preventDefault();
  $("new-chat-error").textContent = "";
  const users = [...new Set($("new-chat-user").value.split(",").map((s) => s.trim()).filter(Boolean))].filter((u) => u !== S.me);
  if (users.length === 0) {
    if ($("new-chat-user").value.trim()) $("new-chat-error").textContent = "That is you: name someone else to chat with.";
    return;
  }
  const bad = users.find((u) => !validUserId(u));
  if (bad) { $("new-chat-error").textContent = `"${bad}" is not a valid user ID: use ${ID_RULE}.`; return; }
  const name = $("new-chat-name").value.trim();
  // Two or more others make a group; so does one with a group name given.
  const group = users.length > 1 || (!!name && $("new-chat-user").value.includes(","));
  try {
    const body = group ? { type: "group", members: users, name } : { type: "direct", members: users };
    if ($("new-chat-e2ee").checked) {
      if (!S.e2ee) throw new Error("This browser cannot encrypt: open the chat over https (or localhost).");
      body.encrypted = true;
    }
    const ch = await rest("POST", "/api/v1/chats", body);
    const c = upsertChat(ch, false);
    if (!group) { c.peer = users[0]; S.client.subscribePresence([users[0]]); }
    if (ch.invited?.length) toast(`Invited ${ch.invited.join(", ")}: they join when they accept.`);
    S.client.trackChat(ch.id);
    $("new-chat-user").value = "";
    $("new-chat-name").value = "";
    $("new-chat-name").hidden = true;
    $("new-chat-e2ee").checked = false;
    renderChatList();
    openChat(ch.id);
  } catch (e) {
    $("new-chat-error").textContent = humanError(e, "newChat");
  }
}

// ---------- conversation ----------

function openChat(chatId) {
  if (S.current && S.current !== chatId) S.client.stopTyping(S.current);
  S.current = chatId;
  sessionStorage.setItem("natter.current", chatId);
  S.editing = null;
  S.pendingOps.clear();
  groups.close();
  const box = $("messages");
  box.replaceChildren($("history-status"));
  S.view = { chatId, items: new Map(), oldest: 0, hasMore: true, loading: false, maxSeq: 0 };
  $("empty").hidden = true;
  $("app").classList.add("conv-open");
  // On a phone the conversation is a screen of its own: the browser's back returns to the list.
  if (narrow.matches && history.state?.chat !== chatId) history.pushState({ chat: chatId }, "");
  for (const id of ["conv-head", "messages"]) $(id).hidden = false;
  renderHead();
  renderTyping();
  renderChatList();
  void loadOlder(true);
  void loadReceipts(chatId);
  const c = S.chats.get(chatId);
  if (c?.type === "group" && !c.gone) void fetchMembers(c);
  if (!c?.gone) void people.loadNames(chatId);
  if (!narrow.matches) $("input").focus();
}

/** closeChat goes back to the chat list (on a narrow screen, the other screen). */
function closeChat() {
  if (S.current) S.client?.stopTyping(S.current);
  S.current = "";
  S.view = null;
  sessionStorage.removeItem("natter.current");
  groups.close();
  $("app").classList.remove("conv-open");
  for (const id of ["conv-head", "messages", "composer", "gone"]) $(id).hidden = true;
  $("typing").textContent = "";
  $("empty").hidden = false;
  renderChatList();
}

function renderHead() {
  const c = S.chats.get(S.current);
  if (!c) return;
  $("conv-title").textContent = chatName(c);
  $("conv-head").dataset.encrypted = c.encrypted ? "1" : "";
  const group = c.type === "group";
  const st = group ? "group" : presenceClass(c.peer);
  $("conv-dot").className = "dot " + st;
  const connected = S.client?.state === "connected";
  if (group) {
    const n = c.members?.length;
    $("conv-sub").textContent = c.gone ? "" : n ? `${n} member${n === 1 ? "" : "s"}` : "Group";
  } else {
    $("conv-sub").textContent = !connected ? "waiting for the connection" : st === "unknown" ? "" : st;
  }
  if (c.encrypted && !c.gone) $("conv-sub").textContent = "🔒 End-to-end encrypted" + ($("conv-sub").textContent ? " · " + $("conv-sub").textContent : "");
  $("info-btn").hidden = !group || !!c.gone;
  $("gone").hidden = !c.gone;
  $("gone").textContent = c.gone;
  $("composer").hidden = !!c.gone;
}

async function loadReceipts(chatId) {
  try {
    const r = await rest("GET", `/api/v1/chats/${encodeURIComponent(chatId)}/receipts`);
    for (const x of r.receipts || []) onReceipt({ chatId, userId: x.userId, delivered: x.delivered, read: x.read });
  } catch { /* ticks move with live receipts */ }
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
    if (S.e2ee && S.chats.get(v.chatId)?.encrypted) {
      // Oldest first: a key distribution in the page comes before the messages it opens.
      for (const raw of [...page.messages].sort((a, b) => a.seq - b.seq)) {
        v.oldest = v.oldest ? Math.min(v.oldest, raw.seq) : raw.seq;
        const m = await S.e2ee.chats.decrypt(raw, false);
        if (S.view !== v) return;
        if (m) addMessage(shown(m));
      }
      S.e2ee.persist();
    } else {
      for (const m of page.messages) {
        v.oldest = v.oldest ? Math.min(v.oldest, m.seq) : m.seq;
        addMessage(m);
      }
    }
    $("history-status").textContent = v.hasMore ? "" : "Beginning of the conversation";
    if (first) box.scrollTop = box.scrollHeight;
    else box.scrollTop = box.scrollHeight - fromBottom;
    markRead();
  } catch (e) {
    if (S.view === v) $("history-status").textContent = "Could not load the history. " + humanError(e, "history");
  } finally {
    v.loading = false;
  }
  // Keep loading while the list does not fill the view yet.
  if (S.view === v && v.hasMore && box.scrollHeight <= box.clientHeight) void loadOlder();
}

/**
 * addMessage puts m in the open view at its seq position, or updates the one there.
 * A copy read from history or a sync carries its current state with stateSeq, the
 * last operation already in it: it replaces an older state, never adds to it.
 */
function addMessage(m) {
  const v = S.view;
  if (!v || m.chatId !== v.chatId) return;
  if (keyNoise(m)) return;
  if (m.seq > v.maxSeq) v.maxSeq = m.seq;
  if (OPS.includes(m.messageType)) { applyOp(m); return; }
  let it = v.items.get(m.messageId);
  if (it) {
    if (m.seq && it.seq !== m.seq) { it.seq = m.seq; it.node.dataset.seq = String(m.seq); place(it); }
    it.pending = false;
    const fresher = (m.stateSeq || 0) > it.stateSeq;
    it.msg = { ...it.msg, ...m, content: fresher || !it.edited ? m.content : it.msg.content };
    if (fresher) setState(it, m);
    renderItem(it);
    return;
  }
  it = { msg: m, seq: m.seq || Infinity, pending: !m.seq, node: el("div", "msg"), reactions: new Map(), stateSeq: 0 };
  it.node.dataset.id = m.messageId;
  it.node.dataset.seq = String(it.seq);
  setState(it, m);
  v.items.set(m.messageId, it);
  renderItem(it);
  place(it);
  for (const op of S.pendingOps.get(m.messageId) || []) applyOp(op);
  S.pendingOps.delete(m.messageId);
}

/** setState takes m's current state (history or sync) into it. */
function setState(it, m) {
  it.stateSeq = m.stateSeq || 0;
  it.edited = !!m.edited;
  it.deleted = !!m.deleted;
  it.reactions = new Map((m.reactions || []).map((r) => [r.emoji, { count: r.count || 0, me: !!r.me }]));
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

/** listOf names a bulk change's users: the first three, then how many more. */
function listOf(users, who) {
  const us = Array.isArray(users) ? users : [];
  const named = us.slice(0, 3).map(who).join(", ");
  return us.length > 3 ? `${named} and ${us.length - 3} more` : named;
}

/** others is " and N more" for a members_added copy naming fewer users (userIds) than it added (total). */
function others(e) {
  const n = (e.total || 0) - (Array.isArray(e.userIds) ? e.userIds.length : 0);
  return n > 0 ? ` and ${n} more` : "";
}

/** concerns reports whether a membership event names user (userId, or one of userIds). */
function concerns(e, user) {
  return e.userId === user || (Array.isArray(e.userIds) && e.userIds.includes(user));
}

function systemText(m) {
  const e = m.meta || {};
  const who = (u) => (u === S.me ? "you" : nameOf(u));
  const by = (u) => (u === S.me ? "You" : u ? nameOf(u) : "Someone");
  switch (e.event) {
    case "chat_created": return `${by(e.by || m.senderId)} created the chat`;
    // by == userId: they accepted an invitation.
    case "member_added": return e.by && e.by === e.userId ? `${by(e.userId)} joined` : `${by(e.by)} added ${who(e.userId)}`;
    case "member_removed": return `${by(e.by)} removed ${who(e.userId)}`;
    case "member_left": return `${by(e.userId)} left`;
    case "role_changed": return `${by(e.by)} made ${who(e.userId)} ${e.role === "admin" ? "an admin" : "a member"}`;
    case "chat_renamed": return e.name ? `${by(e.by)} renamed the group to “${e.name}”` : `${by(e.by)} removed the group's name`;
    // total: the live copy an added member of a large chat gets names only them.
    case "members_added": return `${by(e.by)} added ${listOf(e.userIds, who)}${others(e)}`;
    case "members_removed": return `${by(e.by)} removed ${listOf(e.userIds, who)}`;
    case "device_keys_changed": return `🔑 ${e.userId === S.me ? "You" : nameOf(e.userId)} ${e.userId === S.me ? "have" : "has"} a new or changed device (${e.deviceId}): its encryption keys changed`;
    case "device_revoked": return `🔑 ${e.userId === S.me ? "You" : nameOf(e.userId)} removed a device (${e.deviceId})`;
    default: return m.content || e.event || "system event";
  }
}

/**
 * keyNoise says m is nothing to show: a key distribution (encrypted_keys, which the
 * device's EncryptedChats consumes; without WebCrypto it is just skipped), or a device
 * key event in a chat that is not encrypted (older servers announced key changes in
 * every chat of the user; they matter, and are shown, only where messages are
 * encrypted).
 */
const keyNoise = (m) => m.messageType === "encrypted_keys" ||
  (m.messageType === "system" && ["device_keys_changed", "device_revoked"].includes(m.meta?.event) && !S.chats.get(m.chatId)?.encrypted);

/** applySystem updates the chat a system event speaks of: its name, its members, or that the user is no longer in it. */
function applySystem(c, m) {
  const e = m.meta || {};
  if (e.event === "chat_renamed") c.name = e.name || "";
  if (e.event === "members_added" || e.event === "members_removed") {
    if (e.event === "members_removed" && concerns(e, S.me)) {
      c.gone = `${e.by || "An admin"} removed you from this group.`;
      c.members = null;
    } else if (c.members) {
      const named = new Set(e.userIds || []);
      const ms = c.members.filter((x) => !named.has(x.userId));
      if (e.event === "members_added") for (const u of named) ms.push({ userId: u, role: e.role || "member" });
      c.members = ms.sort((a, b) => (a.userId < b.userId ? -1 : 1));
    }
    if (e.event === "members_added" && concerns(e, S.me)) c.gone = "";
  }
  if (["member_added", "member_removed", "member_left", "role_changed"].includes(e.event)) {
    if (e.userId === S.me && (e.event === "member_removed" || e.event === "member_left")) {
      c.gone = e.event === "member_left" ? "You left this group." : `${e.by || "An admin"} removed you from this group.`;
      c.members = null;
    } else if (c.members) {
      const ms = c.members.filter((x) => x.userId !== e.userId);
      if (e.event === "member_added" || e.event === "role_changed") ms.push({ userId: e.userId, role: e.role || "member" });
      c.members = ms.sort((a, b) => (a.userId < b.userId ? -1 : 1));
    }
    if (e.event === "member_added" && e.userId === S.me) c.gone = "";
  }
  groups.render(c);
}

function renderItem(it) {
  const m = it.msg;
  const mine = m.senderId === S.me || it.pending;
  const n = it.node;
  const system = m.messageType === "system";
  n.className = "msg" + (mine ? " mine" : "") + (system ? " system" : "") + (it.deleted ? " deleted" : "");
  const kids = [];
  const c = S.chats.get(m.chatId);
  if (!mine && c?.type === "group" && !system) {
    const s = el("div", "sender", nameOf(m.senderId));
    s.title = m.senderId; // the identity, whatever the name
    kids.push(s);
  }
  const bubble = el("div", "bubble");
  if (it.deleted) bubble.textContent = "This message was deleted";
  else if (system) bubble.textContent = systemText(m);
  else if (m.messageType === "image" || m.messageType === "file") renderMedia(bubble, m, () => S.client.token);
  else if (m.messageType === "efile") renderEncryptedFile(bubble, m, (f) => S.e2ee.chats.download(f));
  else bubble.textContent = m.content;
  kids.push(bubble);
  if (it.reactions.size > 0 && !it.deleted) {
    const r = el("div", "reactions");
    for (const [emoji, x] of it.reactions) if (x.count > 0) {
      const chip = el("span", x.me ? "mine" : "", `${emoji} ${x.count}`);
      chip.dataset.emoji = emoji;
      r.append(chip);
    }
    kids.push(r);
  }
  const meta = el("div", "meta");
  if (m.timestamp) meta.append(el("time", "", new Date(m.timestamp).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  if (it.edited) meta.append(el("span", "", "edited"));
  if (mine && !system) meta.append(ticks(it));
  if (!it.pending && !it.deleted && !system && !c?.gone) meta.append(actions(it, mine));
  kids.push(meta);
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

/** actions is the message's action bar, in its meta line (so it never covers another message). */
function actions(it, mine) {
  const bar = el("span", "actions");
  // Reactions are refused in encrypted chats (the server would see them).
  if (!S.chats.get(it.msg.chatId)?.encrypted) for (const e of REACTIONS) {
    const had = !!it.reactions.get(e)?.me;
    const b = button(e, had ? "on" : "", (had ? "Take back " : "React ") + e);
    b.addEventListener("click", () => {
      S.client.react(it.msg.chatId, it.msg.messageId, e, !!it.reactions.get(e)?.me).catch((err) => toast(humanError(err, "react")));
    });
    bar.append(b);
  }
  if (mine && (it.msg.messageType || "text") === "text") {
    const ed = button("Edit");
    ed.addEventListener("click", () => startEdit(it));
    bar.append(ed);
  }
  if (mine) {
    const del = button("Delete");
    del.addEventListener("click", () => S.client.delete(it.msg.chatId, it.msg.messageId).catch((err) => toast(humanError(err, "react"))));
    bar.append(del);
  }
  return bar;
}

/**
 * applyOp applies an edit, delete or react event to the message it references,
 * unless that message's state already holds it (op.seq <= its stateSeq). Reactions
 * are counted as the server counts them: it sequences only reactions that change
 * something, so each one moves a count by exactly one.
 */
function applyOp(op) {
  const v = S.view;
  const it = v?.items.get(op.refId);
  if (!it) {
    const list = S.pendingOps.get(op.refId) || [];
    if (!list.some((x) => x.messageId === op.messageId)) list.push(op);
    S.pendingOps.set(op.refId, list);
    return;
  }
  if (op.seq && op.seq <= it.stateSeq) return;
  if (op.seq) it.stateSeq = op.seq;
  if (op.messageType === "edit" && !it.deleted && op.senderId === it.msg.senderId) { it.msg = { ...it.msg, content: op.content }; it.edited = true; }
  if (op.messageType === "delete") { it.deleted = true; it.reactions.clear(); }
  if (op.messageType === "react" && !it.deleted) {
    const emoji = op.meta?.emoji;
    const mine = op.senderId === S.me;
    const r = it.reactions.get(emoji) || { count: 0, me: false };
    if (op.meta?.remove) {
      if (r.count > 0 && !(mine && !r.me)) { r.count--; if (mine) r.me = false; }
    } else if (!(mine && r.me)) {
      r.count++;
      if (mine) r.me = true;
    }
    if (r.count > 0) it.reactions.set(emoji, r); else it.reactions.delete(emoji);
  }
  renderItem(it);
}


// ---------- live events ----------

/**
 * Whether the listing's copy of the chat's last message lacks an edit or delete the
 * page already applied live: GET /chats reads the store, which the persister may
 * not have caught up with, so its copy of the same message can be older.
 */
function listingBehind(listed, live) {
  return (live.deleted && !listed.deleted) || (live.edited && !listed.edited);
}

function onMessage(m) {
  const ev = m.messageType === "system" ? m.meta || {} : {};
  const removesMe = (ev.userId === S.me && (ev.event === "member_removed" || ev.event === "member_left")) ||
    (ev.event === "members_removed" && concerns(ev, S.me));
  let c = S.chats.get(m.chatId);
  const addsMe = (ev.userId === S.me && ev.event === "member_added") || (ev.event === "members_added" && concerns(ev, S.me));
  if (addsMe) S.left.delete(m.chatId);
  if (!c && (removesMe || S.left.has(m.chatId))) return;
  if (!c) { c = upsertChat({ id: m.chatId, type: m.chatId.startsWith("dm-") ? "direct" : "group" }); void loadChats(); }
  if (OPS.includes(m.messageType) && c.last?.messageId === m.refId) {
    // The list shows the last message in its current state, as GET /chats does.
    if (m.messageType === "edit" && m.senderId === c.last.senderId && !c.last.deleted) c.last = { ...c.last, content: m.content, edited: true };
    if (m.messageType === "delete") c.last = { ...c.last, deleted: true, content: "", meta: undefined };
  }
  if (!OPS.includes(m.messageType) && !keyNoise(m)) {
    if (!c.last || m.seq >= (c.last.seq || 0)) { c.last = m; c.ts = Math.max(c.ts, m.timestamp || Date.now()); }
    if (c.type === "direct" && !c.peer && m.senderId !== S.me && m.messageType !== "system") { c.peer = m.senderId; S.client.subscribePresence([m.senderId]); }
    // Counted unless the server's listing (or a read) already covers it.
    if (countable(m) && m.seq > Math.max(c.srvLastSeq, c.readSeq)) c.live.add(m.seq);
    if (m.messageType === "system") applySystem(c, m);
    if (m.e2ee && !c.encrypted) { c.encrypted = true; if (m.chatId === S.current) renderHead(); }
    clearTyping(m.chatId, m.senderId);
  }
  if (!removesMe) S.client.markDelivered(m.chatId, m.seq);
  if (removesMe) S.left.add(m.chatId);
  if (m.chatId === S.current) {
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    addMessage(m);
    if (atBottom || m.senderId === S.me) scrollToEnd();
    markRead();
    if (m.messageType === "system") renderHead();
  }
  renderChatList();
}

/** markRead tells the server the open chat is read up to its newest message shown. */
function markRead() {
  if (!S.current || document.visibilityState !== "visible") return;
  const c = S.chats.get(S.current);
  if (c?.gone) return;
  // Up to the newest seq shown or applied (an edit or a reaction is seen too).
  let hi = S.view?.maxSeq || 0;
  for (const it of S.view?.items.values() || []) if (Number.isFinite(it.seq)) hi = Math.max(hi, it.seq);
  if (c && hi > c.readSeq) {
    S.client.markRead(S.current, hi);
    c.readSeq = hi;
    renderChatList();
  }
}

function onReceipt(r) {
  let m = S.receipts.get(r.chatId);
  if (!m) S.receipts.set(r.chatId, (m = new Map()));
  const old = m.get(r.userId) || { delivered: 0, read: 0 };
  m.set(r.userId, { delivered: Math.max(old.delivered, r.delivered), read: Math.max(old.read, r.read) });
  const c = S.chats.get(r.chatId);
  // This user read on another device (or this one): the chat is read that far here too.
  if (r.userId === S.me && c && r.read > c.readSeq) {
    c.readSeq = r.read;
    // Read only part of what the server counted: only the server knows how many are left.
    if (r.read < c.srvLastSeq) refreshChatsSoon();
    renderChatList();
  }
  if (r.chatId === S.current && r.userId !== S.me && S.view) for (const it of S.view.items.values()) if (it.msg.senderId === S.me) renderItem(it);
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
  const who = [...(S.typing.get(S.current)?.keys() || [])].map(nameOf);
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
    if (!text) return;
    const done = encrypted(chatId) ? S.e2ee?.chats.edit(chatId, id, text) : S.client.edit(chatId, id, text);
    done?.catch((e) => toast("Not changed. " + humanError(e, "react")));
    return;
  }
  if (attachment()) { await sendFile(chatId, text); return; }
  if (!text) return;
  if (encrypted(chatId) && !S.e2ee) { toast("This browser cannot encrypt: open the chat over https (or localhost)."); return; }
  $("input").value = "";
  autosize();
  const messageId = newId();
  addMessage({ chatId, messageId, senderId: S.me, content: text, messageType: "text" });
  scrollToEnd();
  try {
    if (encrypted(chatId)) {
      await S.e2ee.chats.sendText(chatId, text, { messageId });
      await S.e2ee.persist(true);
    } else await S.client.send(chatId, text, { messageId });
  } catch (e) {
    toast("Not sent. " + humanError(e, "send"));
  }
}

/** encrypted says whether chatId is an end-to-end encrypted chat. */
const encrypted = (chatId) => !!S.chats.get(chatId)?.encrypted;

async function sendFile(chatId, caption) {
  const file = attachment();
  if (encrypted(chatId)) {
    if (!S.e2ee) { toast("This browser cannot encrypt: open the chat over https (or localhost)."); return; }
    try {
      const data = new Uint8Array(await file.arrayBuffer());
      clearFile();
      $("input").value = "";
      await S.e2ee.chats.sendFile(chatId, data, { name: file.name, mime: file.type, caption });
      await S.e2ee.persist(true);
    } catch (e) {
      toast("Upload failed. " + humanError(e, "upload"));
    }
    return;
  }
  const fd = new FormData();
  fd.append("chatId", chatId);
  fd.append("file", file, file.name);
  try {
    const media = await rest("POST", "/api/v1/media", fd);
    const image = file.type.startsWith("image/");
    const meta = { mediaId: media.id, name: media.name || file.name, size: media.size || file.size, contentType: media.contentType || file.type };
    clearFile();
    $("input").value = "";
    await S.client.send(chatId, caption || meta.name, { messageType: image ? "image" : "file", meta });
  } catch (e) {
    toast("Upload failed. " + humanError(e, "upload"));
  }
}

function autosize() {
  const t = $("input");
  t.style.height = "auto";
  t.style.height = Math.min(160, t.scrollHeight) + "px";
}

// ---------- wiring ----------

$("signin-form").addEventListener("submit", signIn);
$("signout").addEventListener("click", signOut);
$("new-chat").addEventListener("submit", newChat);
$("new-chat-user").addEventListener("input", () => {
  const group = $("new-chat-user").value.includes(",");
  $("new-chat-name").hidden = !group;
  $("new-chat-user").placeholder = "User ID (a, b for a group)";
});
$("new-chat-name").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); $("new-chat").requestSubmit(); } });
$("back").addEventListener("click", () => { if (history.state?.chat) history.back(); else closeChat(); });
window.addEventListener("popstate", (e) => {
  const want = e.state?.chat;
  if (!want) { if (S.current) closeChat(); return; }
  if (want !== S.current && S.chats.has(want)) openChat(want);
});
$("info-btn").addEventListener("click", () => { const c = S.chats.get(S.current); if (c) void groups.open(c); });
$("composer").addEventListener("submit", submit);
$("file").addEventListener("change", pickFile);
$("input").addEventListener("input", () => { autosize(); if (S.current && $("input").value) S.client.typing(S.current); });
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
  if (e.key === "Escape" && S.editing) stopEdit();
});
$("input").addEventListener("blur", () => { if (S.current) S.client.stopTyping(S.current); });
$("messages").addEventListener("scroll", () => {
  const box = $("messages");
  if (box.scrollTop < 80) void loadOlder();
});
// A tap on a message shows its actions on touch screens (no hover there).
$("messages").addEventListener("click", (e) => {
  const msg = e.target.closest?.(".msg");
  if (!msg || e.target.closest("button")) return;
  for (const n of $("messages").querySelectorAll(".msg.show-actions")) if (n !== msg) n.classList.remove("show-actions");
  msg.classList.toggle("show-actions");
});
document.addEventListener("visibilitychange", () => { markRead(); renderChatList(); });
window.addEventListener("focus", markRead);

const saved = sessionStorage.getItem("natter.token");
if (saved) void start(saved);
else $("signin").hidden = false;
