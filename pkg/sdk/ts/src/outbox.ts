import type { Ack, Frame } from "./types.js";
import { NatterError } from "./types.js";

/** One frame waiting for its ack. */
export interface OutboxEntry {
  readonly key: string;
  readonly frame: Frame;
  /** Times it was written to a connection. */
  attempts: number;
  /** When it was last written (ms), 0 if never. */
  sentAt: number;
  readonly promise: Promise<Ack>;
  resolve(a: Ack): void;
  reject(e: NatterError): void;
}

/**
 * Outbox holds frames that change a chat (send, edit, delete, react) until the server
 * acks them, in the order they were added. Each entry keeps its messageId for life, so
 * every resend (after a reconnect, or an ack timeout) is the same request and the
 * server stores it once. Adding a frame whose chat and messageId are already waiting
 * returns the waiting promise.
 */
export class Outbox {
  private readonly entries = new Map<string, OutboxEntry>();

  static key(chatId: string, messageId: string): string {
    return chatId + "\u0000" + messageId;
  }

  /** Queues frame (which has chatId and messageId) and returns its ack promise. */
  add(frame: Frame): OutboxEntry {
    const key = Outbox.key(frame.chatId ?? "", frame.messageId ?? "");
    const old = this.entries.get(key);
    if (old) return old;
    let resolve!: (a: Ack) => void;
    let reject!: (e: NatterError) => void;
    const promise = new Promise<Ack>((res, rej) => { resolve = res; reject = rej; });
    promise.catch(() => {}); // a caller that drops the promise must not see an unhandled rejection
    const e: OutboxEntry = { key, frame, attempts: 0, sentAt: 0, promise, resolve, reject };
    this.entries.set(key, e);
    return e;
  }

  /** Settles the entry an ack answers; false if none waits (a late duplicate ack). */
  ack(a: Ack): boolean {
    const key = Outbox.key(a.chatId, a.messageId);
    const e = this.entries.get(key);
    if (!e) return false;
    this.entries.delete(key);
    e.resolve(a);
    return true;
  }

  /** Rejects and drops the entry err concerns; false if none waits. */
  fail(chatId: string, messageId: string, err: NatterError): boolean {
    const key = Outbox.key(chatId, messageId);
    const e = this.entries.get(key);
    if (!e) return false;
    this.entries.delete(key);
    e.reject(err);
    return true;
  }

  /** The entry for chatId and messageId, if waiting. */
  get(chatId: string, messageId: string): OutboxEntry | undefined {
    return this.entries.get(Outbox.key(chatId, messageId));
  }

  /** Every waiting entry, oldest first. */
  pending(): OutboxEntry[] {
    return [...this.entries.values()];
  }

  /** Entries written before now - timeoutMs and still unacked, oldest first. */
  overdue(now: number, timeoutMs: number): OutboxEntry[] {
    return this.pending().filter((e) => e.sentAt > 0 && now - e.sentAt >= timeoutMs);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Rejects every entry with err and empties the outbox. */
  rejectAll(err: NatterError): void {
    for (const e of this.entries.values()) e.reject(err);
    this.entries.clear();
  }
}

/**
 * backoffDelay returns how long to wait before reconnect attempt `attempt` (0-based):
 * exponential from initialMs, capped at maxMs, with "equal jitter" (a uniform pick in
 * the upper half) so a crowd of clients dropped together does not return together.
 */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + random() * (base / 2));
}

/** newId returns a random 22-character ID valid as a Natter message ID. */
export function newId(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
