import { ChatOrderer } from "./ordering.js";
import { Outbox, backoffDelay, newId } from "./outbox.js";
import { OpenError, openSSE, openWebSocket } from "./transport.js";
import { CloseCodes, NatterError } from "./types.js";
/**
 * NatterClient is a connection to a Natter gateway that stays up: it reconnects with
 * backoff, resends unacked messages with their original messageId until acked, delivers
 * each chat's messages exactly once in seq order (holding early ones, filling gaps from
 * history, resuming with sync after a reconnect), and falls back to SSE+POST when a
 * WebSocket cannot connect. Create it, subscribe with on(), then call connect().
 */
export class NatterClient {
    opts;
    base;
    tokenRef;
    listeners = new Map();
    chats = new Map();
    outbox = new Outbox();
    waiters = new Map();
    gapTimers = new Map();
    /** Chats with a gap fill in flight, to the id of its history request. */
    filling = new Map();
    /** The `after` of each chat's fill in flight. */
    fillAfter = new Map();
    typingSent = new Map();
    receipts = new Map();
    presenceSubs = new Set();
    tr;
    _state = "idle";
    _userId = "";
    attempt = 0;
    preferred = "websocket";
    sessions = 0;
    reconnectTimer;
    heartbeatTimer;
    lastFrameAt = 0;
    pingSentAt = 0;
    constructor(options) {
        this.opts = {
            transport: "auto", fetch: globalThis.fetch?.bind(globalThis), reconnectInitialMs: 500, reconnectMaxMs: 30000,
            heartbeatMs: 15000, heartbeatTimeoutMs: 10000, connectTimeoutMs: 10000, ackTimeoutMs: 10000,
            gapGraceMs: 250, typingThrottleMs: 3000, fillFromStartMax: 50, random: Math.random,
            ...options,
        };
        const loc = globalThis.location;
        this.base = (options.url ?? (loc ? loc.origin : "")).replace(/\/+$/, "");
        if (!this.base)
            throw new Error("natter: url is required outside a browser");
        this.tokenRef = { token: options.token };
        for (const [chatId, seq] of Object.entries(options.cursors ?? {}))
            this.chats.set(chatId, new ChatOrderer(chatId, seq));
    }
    /** The connection state. */
    get state() { return this._state; }
    isClosed() { return this._state === "closed"; }
    /** The user the token speaks for, once connected. */
    get userId() { return this._userId; }
    /** The transport in use, if connected. */
    get transport() { return this.tr?.kind; }
    /** The current token (after any refresh). */
    get token() { return this.tokenRef.token; }
    /** The base URL of the gateway. */
    get url() { return this.base; }
    /** Subscribes fn to event ev and returns the function that unsubscribes it. */
    on(ev, fn) {
        let s = this.listeners.get(ev);
        if (!s)
            this.listeners.set(ev, (s = new Set()));
        s.add(fn);
        return () => s.delete(fn);
    }
    emit(ev, v) {
        for (const fn of this.listeners.get(ev) ?? []) {
            try {
                fn(v);
            }
            catch (e) {
                setTimeout(() => { throw e; });
            }
        }
    }
    setState(s) {
        if (this._state === s)
            return;
        this._state = s;
        this.emit("state", s);
    }
    /** Starts connecting (and keeps reconnecting until close). */
    connect() {
        if (this._state !== "idle" && this._state !== "closed")
            return;
        this.setState("connecting");
        void this.open();
    }
    /** Closes for good: pending sends are rejected with code "closed". */
    close() {
        this.setState("closed");
        clearTimeout(this.reconnectTimer);
        clearInterval(this.heartbeatTimer);
        for (const t of this.gapTimers.values())
            clearTimeout(t);
        this.gapTimers.clear();
        const tr = this.tr;
        this.tr = undefined;
        tr?.close(1000, "client closed");
        this.failWaiters(new NatterError("closed", "client closed", { retry: false }));
        this.outbox.rejectAll(new NatterError("closed", "client closed before the ack", { retry: false }));
    }
    /** Last seq delivered per chat: what the next sync resumes from. */
    cursors() {
        return [...this.chats.values()].map((o) => ({ chatId: o.chatId, seq: o.lastSeq }));
    }
    /** The last seq delivered in chatId (0 if none). */
    lastSeq(chatId) { return this.chats.get(chatId)?.lastSeq ?? 0; }
    /**
     * Starts tracking chatId from seq `after` (default: where it is, or 0): every later
     * message is delivered in order, missing ones are filled from history.
     */
    trackChat(chatId, after) {
        if (!this.chats.has(chatId)) {
            this.chats.set(chatId, new ChatOrderer(chatId, after ?? 0));
            if (this._state === "connected")
                this.write({ type: "sync", id: this.reqId(), chats: [{ chatId, seq: after ?? 0 }] });
        }
    }
    // ---- connection lifecycle ----
    async open() {
        const order = this.opts.transport === "websocket" ? ["websocket"]
            : this.opts.transport === "sse" ? ["sse"]
                : this.preferred === "sse" ? ["sse", "websocket"] : ["websocket", "sse"];
        let lastErr;
        for (const kind of order) {
            if (this._state === "closed")
                return;
            try {
                const tr = await this.openOne(kind);
                if (this.isClosed()) {
                    tr.close();
                    return;
                }
                this.preferred = kind;
                this.attach(tr);
                return;
            }
            catch (e) {
                lastErr = e;
                if (e instanceof OpenError && e.auth)
                    break; // the token is the problem, not the transport
            }
        }
        if (lastErr instanceof OpenError && lastErr.auth) {
            if (!(await this.refresh(lastErr)))
                return;
        }
        this.scheduleReconnect();
    }
    openOne(kind) {
        // Known chats mean a sync follows at once: the server holds live frames until it is
        // answered, so the resumed messages and the live ones meet without a seam.
        const resume = this.chats.size > 0;
        if (kind === "sse")
            return openSSE(this.base, this.tokenRef, this.opts.fetch, this.opts.connectTimeoutMs, resume);
        const Ctor = this.opts.WebSocket ?? globalThis.WebSocket;
        if (!Ctor)
            return Promise.reject(new OpenError(1006, "no WebSocket implementation"));
        const wsBase = this.base.replace(/^http/, "ws");
        return openWebSocket(wsBase, this.tokenRef.token, Ctor, this.opts.connectTimeoutMs, resume);
    }
    /** Gets a new token after an auth refusal; false (and closed) when there is no way to. */
    async refresh(e) {
        if (!this.opts.refreshToken) {
            this.emit("error", new NatterError(e.code === CloseCodes.TokenExpired ? "token_expired" : "unauthorized", e.reason, { retry: false }));
            this.close();
            return false;
        }
        try {
            this.tokenRef.token = await this.opts.refreshToken();
        }
        catch (err) {
            this.emit("error", new NatterError("unauthorized", "token refresh failed: " + String(err), { retry: true }));
        }
        return this._state !== "closed";
    }
    scheduleReconnect(delay) {
        if (this._state === "closed")
            return;
        this.setState("reconnecting");
        const d = delay ?? backoffDelay(this.attempt++, this.opts.reconnectInitialMs, this.opts.reconnectMaxMs, this.opts.random);
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = setTimeout(() => void this.open(), d);
    }
    attach(tr) {
        this.tr = tr;
        this.attempt = 0;
        const resumed = this.sessions++ > 0;
        this._userId = tr.connected.userId ?? "";
        this.lastFrameAt = Date.now();
        this.pingSentAt = 0;
        tr.onframe = (f) => {
            this.lastFrameAt = Date.now();
            if (this.opts.inbound)
                this.opts.inbound(f, (g) => { if (this.tr === tr)
                    this.handle(g); });
            else
                this.handle(f);
        };
        tr.onclose = (c) => this.onTransportClose(tr, c);
        this.setState("connected");
        this.emit("connected", { userId: this._userId, connId: tr.connected.connId ?? "", transport: tr.kind, resumed });
        // Resume: what was missed in known chats, then learn every chat's position.
        const known = this.cursors();
        if (known.length > 0)
            this.write({ type: "sync", id: this.reqId(), chats: known });
        this.write({ type: "sync", id: this.reqId() });
        for (const e of this.outbox.pending())
            this.writeEntry(e);
        for (const [chatId, r] of this.receipts) {
            if (r.delivered)
                this.write({ type: "delivered", chatId, seq: r.delivered });
            if (r.read)
                this.write({ type: "read", chatId, seq: r.read });
        }
        this.receipts.clear();
        if (this.presenceSubs.size > 0)
            this.write({ type: "presence_sub", userIds: [...this.presenceSubs] });
        clearInterval(this.heartbeatTimer);
        const tick = Math.max(50, Math.min(this.opts.heartbeatMs, this.opts.heartbeatTimeoutMs, this.opts.ackTimeoutMs) / 2);
        this.heartbeatTimer = setInterval(() => this.heartbeat(tr), tick);
    }
    heartbeat(tr) {
        if (this.tr !== tr)
            return;
        const now = Date.now();
        if (this.pingSentAt > 0 && this.lastFrameAt < this.pingSentAt && now - this.pingSentAt >= this.opts.heartbeatTimeoutMs) {
            tr.close(4000, "heartbeat timeout"); // dead: reconnect
            return;
        }
        if (now - this.lastFrameAt >= this.opts.heartbeatMs && (this.pingSentAt === 0 || this.lastFrameAt >= this.pingSentAt)) {
            this.pingSentAt = now;
            tr.send({ type: "ping", id: this.reqId() });
        }
        for (const e of this.outbox.overdue(now, this.opts.ackTimeoutMs))
            this.writeEntry(e);
    }
    onTransportClose(tr, c) {
        if (this.tr !== tr)
            return;
        this.tr = undefined;
        clearInterval(this.heartbeatTimer);
        for (const t of this.gapTimers.values())
            clearTimeout(t);
        this.gapTimers.clear();
        this.filling.clear();
        this.fillAfter.clear();
        this.typingSent.clear();
        this.failWaiters(new NatterError("unavailable", "connection lost", { retry: true }));
        for (const e of this.outbox.pending())
            e.sentAt = 0;
        this.emit("disconnected", { code: c.code, reason: c.reason, transport: tr.kind });
        if (this._state === "closed")
            return;
        if (c.code === CloseCodes.Unauthorized || c.code === CloseCodes.TokenExpired) {
            this.setState("reconnecting");
            void this.refresh(new OpenError(c.code, c.reason)).then((ok) => { if (ok)
                this.scheduleReconnect(0); });
            return;
        }
        this.scheduleReconnect(c.code === CloseCodes.SlowConsumer ? 0 : undefined);
    }
    failWaiters(err) {
        for (const w of this.waiters.values()) {
            clearTimeout(w.timer);
            w.reject(err);
        }
        this.waiters.clear();
    }
    reqId() { return newId(); }
    write(f) {
        if (!this.tr)
            return false;
        this.tr.send(f);
        return true;
    }
    writeEntry(e) {
        if (!this.tr)
            return;
        e.attempts++;
        e.sentAt = Date.now();
        this.tr.send(e.frame);
    }
    /** Sends f (with an id) and resolves with the frame answering it. */
    request(f, timeoutMs = 15000) {
        return new Promise((resolve, reject) => {
            if (!this.tr) {
                reject(new NatterError("unavailable", "not connected", { retry: true }));
                return;
            }
            const id = (f.id ??= this.reqId());
            const timer = setTimeout(() => { this.waiters.delete(id); reject(new NatterError("unavailable", "request timed out", { retry: true })); }, timeoutMs);
            this.waiters.set(id, { resolve, reject, timer });
            this.write(f);
        });
    }
    // ---- inbound ----
    handle(f) {
        this.emit("frame", f);
        let answered = false; // f answers a request whose promise the caller holds
        if (f.id) {
            const w = this.waiters.get(f.id);
            if (w) {
                answered = true;
                this.waiters.delete(f.id);
                clearTimeout(w.timer);
                if (f.type === "error")
                    w.reject(NatterError.fromFrame(f));
                else
                    w.resolve(f);
            }
        }
        switch (f.type) {
            case "message":
                this.onMessage(f);
                break;
            case "ack": {
                const a = { chatId: f.chatId ?? "", messageId: f.messageId ?? "", seq: f.seq ?? 0, duplicate: !!f.duplicate };
                if (this.outbox.ack(a))
                    this.emit("ack", a);
                break;
            }
            case "error":
                this.onError(f, answered);
                break;
            case "synced":
                this.onSynced(f);
                break;
            case "history_result":
                if (f.chatId && f.id && this.filling.get(f.chatId) === f.id)
                    this.onFill(f);
                break;
            case "receipt":
                this.emit("receipt", { chatId: f.chatId ?? "", userId: f.userId ?? "", delivered: f.delivered ?? 0, read: f.read ?? 0 });
                break;
            case "typing_indicator":
                this.emit("typing", { chatId: f.chatId ?? "", userId: f.userId ?? "", state: f.state ?? "start" });
                break;
            case "invitation":
                this.emit("invitation", { chatId: f.chatId ?? "", invitedBy: f.invitedBy ?? "", role: f.role ?? "member", state: f.state ?? "pending", timestamp: f.timestamp ?? 0 });
                break;
            case "presence_update":
                this.emit("presence", { userId: f.userId ?? "", status: f.status ?? "offline", lastSeen: f.lastSeen, devices: f.devices });
                break;
            case "reconnect":
                // Drain hint: go elsewhere after the suggested pause, spread by jitter.
                this.tr?.close(4000, "server asked to reconnect");
                this.scheduleReconnect(Math.round((f.afterMs ?? 0) * (0.5 + this.opts.random())));
                break;
        }
    }
    onError(f, answered) {
        const err = NatterError.fromFrame(f);
        if (f.chatId && f.messageId && this.outbox.get(f.chatId, f.messageId)) {
            const e = this.outbox.get(f.chatId, f.messageId);
            if (err.retry) {
                e.sentAt = Date.now() - this.opts.ackTimeoutMs + Math.min(5000, 200 * 2 ** Math.min(e.attempts, 5)); // resend soon, same id
                return;
            }
            this.outbox.fail(f.chatId, f.messageId, err);
            return;
        }
        if (f.id && f.chatId && this.filling.get(f.chatId) === f.id)
            this.filling.delete(f.chatId);
        if (!answered)
            this.emit("error", err);
    }
    orderer(chatId, seq) {
        let o = this.chats.get(chatId);
        if (!o) {
            o = new ChatOrderer(chatId, seq <= this.opts.fillFromStartMax ? 0 : seq - 1);
            this.chats.set(chatId, o);
        }
        return o;
    }
    onMessage(m) {
        if (!m.chatId || !m.seq)
            return;
        const o = this.orderer(m.chatId, m.seq);
        const r = o.push(m);
        for (const d of r.deliver)
            this.emit("message", d);
        this.checkGap(o);
    }
    checkGap(o, known = 0) {
        const g = o.gap() ?? (known > o.lastSeq ? { after: o.lastSeq, before: known + 1 } : undefined);
        if (!g)
            return;
        if (this.gapTimers.has(o.chatId) || this.filling.has(o.chatId))
            return;
        this.emit("gap", { chatId: o.chatId, after: g.after, before: g.before });
        this.gapTimers.set(o.chatId, setTimeout(() => {
            this.gapTimers.delete(o.chatId);
            const now = o.gap() ?? (known > o.lastSeq ? { after: o.lastSeq, before: known + 1 } : undefined);
            if (!now || !this.tr)
                return;
            const id = this.reqId();
            this.filling.set(o.chatId, id);
            this.fillAfter.set(o.chatId, now.after);
            this.write({ type: "history", id, chatId: o.chatId, after: now.after, limit: Math.min(100, Math.max(1, now.before - now.after - 1)) });
        }, this.opts.gapGraceMs));
    }
    onFill(f) {
        const chatId = f.chatId;
        this.filling.delete(chatId);
        const o = this.chats.get(chatId);
        if (!o)
            return;
        let after = this.fillAfter.get(chatId) ?? o.lastSeq;
        this.fillAfter.delete(chatId);
        // A seq the answer skips is gone for good, and so is everything below
        // retainedFrom (docs/protocol.md, "Retention and deletion"): advance past them
        // instead of asking again.
        const emit = (ms) => { for (const d of ms)
            this.emit("message", d); };
        if ((f.retainedFrom ?? 0) > 1)
            emit(o.skip(f.retainedFrom - 1));
        const msgs = [...(f.messages ?? [])].sort((a, b) => a.seq - b.seq);
        for (const m of msgs) {
            if (m.seq > after + 1)
                emit(o.skip(m.seq - 1));
            emit(o.push(m).deliver);
            after = Math.max(after, m.seq);
        }
        const g = o.gap();
        if (!f.hasMore && g)
            emit(o.skip(g.before - 1)); // nothing more exists: what is held waits for gone seqs
        this.checkGap(o);
    }
    onSynced(f) {
        for (const c of f.chats ?? []) {
            let o = this.chats.get(c.chatId);
            if (!o) {
                // A chat new to us follows the same rule as one first seen live: a short one is
                // delivered from its start, a long one from now (older pages: loadHistory).
                o = new ChatOrderer(c.chatId, c.seq <= this.opts.fillFromStartMax ? 0 : c.seq);
                this.chats.set(c.chatId, o);
            }
            if ((c.retainedFrom ?? 0) > 1)
                for (const d of o.skip(c.retainedFrom - 1))
                    this.emit("message", d);
            this.checkGap(o, c.seq); // the server has more than we delivered: fill
        }
    }
    // ---- outbound ----
    enqueue(f) {
        const e = this.outbox.add(f);
        if (e.attempts === 0)
            this.writeEntry(e);
        return e.promise;
    }
    /**
     * Sends a message and resolves once the server has stored it. It is kept in the
     * outbox and resent with the same messageId (which the server deduplicates) across
     * reconnects until acked; a non-retryable refusal rejects with a NatterError.
     */
    send(chatId, content, o = {}) {
        const f = { type: "send", chatId, messageId: o.messageId ?? newId(), content };
        if (o.messageType)
            f.messageType = o.messageType;
        if (o.meta)
            f.meta = o.meta;
        if (o.replyTo)
            f.replyTo = o.replyTo;
        this.stopTypingLocal(chatId);
        return this.enqueue(f);
    }
    /** Replaces the content of the caller's message refId (messageId: the edit's own ID, default new). */
    edit(chatId, refId, content, o = {}) {
        return this.enqueue({ type: "edit", chatId, messageId: o.messageId ?? newId(), refId, content });
    }
    /** Deletes message refId for everyone. */
    delete(chatId, refId) {
        return this.enqueue({ type: "delete", chatId, messageId: newId(), refId });
    }
    /** Adds (or with remove, takes back) the caller's emoji reaction to refId. */
    react(chatId, refId, emoji, remove = false) {
        const f = { type: "react", chatId, messageId: newId(), refId, emoji };
        if (remove)
            f.remove = true;
        return this.enqueue(f);
    }
    /** Says the user is typing in chatId; throttled to one frame per typingThrottleMs. */
    typing(chatId) {
        const now = Date.now();
        if (now - (this.typingSent.get(chatId) ?? 0) < this.opts.typingThrottleMs)
            return;
        if (this.write({ type: "typing", chatId, state: "start" }))
            this.typingSent.set(chatId, now);
    }
    /** Says the user stopped typing in chatId (only if a start was sent). */
    stopTyping(chatId) {
        if (this.typingSent.has(chatId))
            this.write({ type: "typing", chatId, state: "stop" });
        this.typingSent.delete(chatId);
    }
    stopTypingLocal(chatId) { this.typingSent.delete(chatId); }
    /** Records that messages up to seq in chatId reached this device. */
    markDelivered(chatId, seq) { this.receipt("delivered", chatId, seq); }
    /** Records that the user has read chatId up to seq. */
    markRead(chatId, seq) { this.receipt("read", chatId, seq); }
    receipt(kind, chatId, seq) {
        if (!(seq > 0))
            return;
        if (this.write({ type: kind, chatId, seq }))
            return;
        const r = this.receipts.get(chatId) ?? { delivered: 0, read: 0 };
        r[kind] = Math.max(r[kind], seq);
        this.receipts.set(chatId, r);
    }
    /** Asks for presence updates of userIds (kept across reconnects). */
    subscribePresence(userIds) {
        const fresh = userIds.filter((u) => !this.presenceSubs.has(u));
        for (const u of fresh)
            this.presenceSubs.add(u);
        if (fresh.length > 0)
            this.write({ type: "presence_sub", userIds: [...this.presenceSubs] });
    }
    /** One page of history over the connection: before (older, newest first) or after (newer, oldest first). */
    async history(chatId, q = {}) {
        const r = await this.request({ type: "history", chatId, ...q });
        return { messages: r.messages ?? [], hasMore: !!r.hasMore };
    }
    /** Round-trips a ping; resolves with the time it took in ms. */
    async ping() {
        const t = Date.now();
        await this.request({ type: "ping" });
        return Date.now() - t;
    }
    /** Calls the REST API with the client's token; JSON in and out. Throws NatterError for an error answer. */
    async rest(method, path, body) {
        const headers = { Authorization: `Bearer ${this.tokenRef.token}` };
        let payload;
        if (body instanceof FormData)
            payload = body;
        else if (body !== undefined) {
            headers["Content-Type"] = "application/json";
            payload = JSON.stringify(body);
        }
        const resp = await this.opts.fetch(this.base + path, { method, headers, body: payload });
        const data = await resp.json().catch(() => ({}));
        if (!resp.ok) {
            const e = data?.error ?? {};
            throw new NatterError(e.code ?? (resp.status === 404 ? "not_found" : "internal"), e.message ?? `HTTP ${resp.status}`, { retry: e.retry });
        }
        return data;
    }
    /** Fetches path with the client's token and returns the body's bytes (media downloads). Throws NatterError for an error answer. */
    async restBytes(path) {
        const resp = await this.opts.fetch(this.base + path, { method: "GET", headers: { Authorization: `Bearer ${this.tokenRef.token}` } });
        if (!resp.ok) {
            const e = (await resp.json().catch(() => ({})))?.error ?? {};
            throw new NatterError(e.code ?? (resp.status === 404 ? "not_found" : "internal"), e.message ?? `HTTP ${resp.status}`, { retry: e.retry });
        }
        return new Uint8Array(await resp.arrayBuffer());
    }
    /** One page of a chat's history over REST (works while disconnected). */
    loadHistory(chatId, q = {}) {
        const p = new URLSearchParams();
        if (q.before)
            p.set("before", String(q.before));
        if (q.limit)
            p.set("limit", String(q.limit));
        return this.rest("GET", `/api/v1/chats/${encodeURIComponent(chatId)}/messages?${p}`);
    }
    /** The caller's own profile, settings included. */
    profile() { return this.rest("GET", "/api/v1/profile"); }
    /** Replaces the caller's profile (absent fields are cleared). avatar: the media ID of an image the caller uploaded. */
    setProfile(p) {
        return this.rest("PUT", "/api/v1/profile", p);
    }
    /** Another user's public profile; NatterError not_found unless the caller shares a chat with them. */
    userProfile(userId) {
        return this.rest("GET", `/api/v1/users/${encodeURIComponent(userId)}/profile`);
    }
    /** The profiles of every member of a chat (all pages), by user ID. */
    async chatProfiles(chatId) {
        const out = [];
        let after = "";
        for (;;) {
            const q = new URLSearchParams({ limit: "1000" });
            if (after)
                q.set("after", after);
            const page = await this.rest("GET", `/api/v1/chats/${encodeURIComponent(chatId)}/profiles?${q}`);
            out.push(...page.profiles);
            if (!page.hasMore || !page.cursor)
                return out;
            after = page.cursor;
        }
    }
    /** Blocks a user (again: no error). */
    async block(userId) { await this.rest("POST", `/api/v1/blocks/${encodeURIComponent(userId)}`); }
    /** Unblocks a user; NatterError not_found if not blocked. */
    async unblock(userId) { await this.rest("DELETE", `/api/v1/blocks/${encodeURIComponent(userId)}`); }
    /** The users the caller blocks. */
    async blocks() { return (await this.rest("GET", "/api/v1/blocks")).blocks; }
    /** The caller's pending group invitations, newest first. */
    async invitations() {
        return (await this.rest("GET", "/api/v1/invitations")).invitations;
    }
    /** Accepts an invitation: the caller joins the group. */
    async acceptInvitation(chatId) {
        await this.rest("POST", `/api/v1/invitations/${encodeURIComponent(chatId)}/accept`);
    }
    /** Declines an invitation. */
    async declineInvitation(chatId) {
        await this.rest("POST", `/api/v1/invitations/${encodeURIComponent(chatId)}/decline`);
    }
    /** How many sends wait for an ack. */
    get pendingSends() { return this.outbox.size; }
}
