/**
 * Outbox holds frames that change a chat (send, edit, delete, react) until the server
 * acks them, in the order they were added. Each entry keeps its messageId for life, so
 * every resend (after a reconnect, or an ack timeout) is the same request and the
 * server stores it once. Adding a frame whose chat and messageId are already waiting
 * returns the waiting promise.
 */
export class Outbox {
    entries = new Map();
    static key(chatId, messageId) {
        return chatId + "\u0000" + messageId;
    }
    /** Queues frame (which has chatId and messageId) and returns its ack promise. */
    add(frame) {
        const key = Outbox.key(frame.chatId ?? "", frame.messageId ?? "");
        const old = this.entries.get(key);
        if (old)
            return old;
        let resolve;
        let reject;
        const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
        promise.catch(() => { }); // a caller that drops the promise must not see an unhandled rejection
        const e = { key, frame, attempts: 0, sentAt: 0, promise, resolve, reject };
        this.entries.set(key, e);
        return e;
    }
    /** Settles the entry an ack answers; false if none waits (a late duplicate ack). */
    ack(a) {
        const key = Outbox.key(a.chatId, a.messageId);
        const e = this.entries.get(key);
        if (!e)
            return false;
        this.entries.delete(key);
        e.resolve(a);
        return true;
    }
    /** Rejects and drops the entry err concerns; false if none waits. */
    fail(chatId, messageId, err) {
        const key = Outbox.key(chatId, messageId);
        const e = this.entries.get(key);
        if (!e)
            return false;
        this.entries.delete(key);
        e.reject(err);
        return true;
    }
    /** The entry for chatId and messageId, if waiting. */
    get(chatId, messageId) {
        return this.entries.get(Outbox.key(chatId, messageId));
    }
    /** Every waiting entry, oldest first. */
    pending() {
        return [...this.entries.values()];
    }
    /** Entries written before now - timeoutMs and still unacked, oldest first. */
    overdue(now, timeoutMs) {
        return this.pending().filter((e) => e.sentAt > 0 && now - e.sentAt >= timeoutMs);
    }
    get size() {
        return this.entries.size;
    }
    /** Rejects every entry with err and empties the outbox. */
    rejectAll(err) {
        for (const e of this.entries.values())
            e.reject(err);
        this.entries.clear();
    }
}
/**
 * backoffDelay returns how long to wait before reconnect attempt `attempt` (0-based):
 * exponential from initialMs, capped at maxMs, with "equal jitter" (a uniform pick in
 * the upper half) so a crowd of clients dropped together does not return together.
 */
export function backoffDelay(attempt, initialMs, maxMs, random = Math.random) {
    const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
    return Math.round(base / 2 + random() * (base / 2));
}
/** newId returns a random 22-character ID valid as a Natter message ID. */
export function newId() {
    const b = new Uint8Array(16);
    globalThis.crypto.getRandomValues(b);
    let s = "";
    for (const x of b)
        s += String.fromCharCode(x);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
