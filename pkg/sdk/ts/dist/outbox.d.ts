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
export declare class Outbox {
    private readonly entries;
    static key(chatId: string, messageId: string): string;
    /** Queues frame (which has chatId and messageId) and returns its ack promise. */
    add(frame: Frame): OutboxEntry;
    /** Settles the entry an ack answers; false if none waits (a late duplicate ack). */
    ack(a: Ack): boolean;
    /** Rejects and drops the entry err concerns; false if none waits. */
    fail(chatId: string, messageId: string, err: NatterError): boolean;
    /** The entry for chatId and messageId, if waiting. */
    get(chatId: string, messageId: string): OutboxEntry | undefined;
    /** Every waiting entry, oldest first. */
    pending(): OutboxEntry[];
    /** Entries written before now - timeoutMs and still unacked, oldest first. */
    overdue(now: number, timeoutMs: number): OutboxEntry[];
    get size(): number;
    /** Rejects every entry with err and empties the outbox. */
    rejectAll(err: NatterError): void;
}
/**
 * backoffDelay returns how long to wait before reconnect attempt `attempt` (0-based):
 * exponential from initialMs, capped at maxMs, with "equal jitter" (a uniform pick in
 * the upper half) so a crowd of clients dropped together does not return together.
 */
export declare function backoffDelay(attempt: number, initialMs: number, maxMs: number, random?: () => number): number;
/** newId returns a random 22-character ID valid as a Natter message ID. */
export declare function newId(): string;
