import type { Message } from "./types.js";
/** What pushing one message into a ChatOrderer produced. */
export interface PushResult {
    /** Messages now deliverable, in seq order (empty when held or a duplicate). */
    deliver: Message[];
    /** True when the message was already delivered or is already held. */
    duplicate: boolean;
}
/** The missing range of a chat: seqs after `after` and before `before` (both exclusive). */
export interface Gap {
    after: number;
    before: number;
}
/**
 * ChatOrderer turns one chat's messages, arriving in any order and possibly twice,
 * into the chat's sequence delivered exactly once with no gaps: a message is released
 * only when every lower seq has been. It never loses a message; a gap stays open
 * until the missing seqs are pushed (the client fills them from history).
 *
 * Duplicates are recognised by seq (at or below the delivered watermark, or already
 * held) and by messageId (the last `seenCap` delivered IDs), so a resend that was
 * given a new seq by a misbehaving server is still shown once.
 */
export declare class ChatOrderer {
    readonly chatId: string;
    /** The highest seq delivered with every lower one delivered too. */
    lastSeq: number;
    private readonly held;
    private readonly seen;
    private readonly seenOrder;
    private readonly seenCap;
    constructor(chatId: string, lastSeq?: number, seenCap?: number);
    /** Offers one message; see PushResult. */
    push(m: Message): PushResult;
    private release;
    /**
     * Marks every seq up to `through` that has not arrived as gone for good (expired,
     * erased, or below the reader's cleared history: docs/protocol.md, "Retention and
     * deletion"), so the order stops waiting for it. Returns the messages now
     * deliverable, in seq order: those held at or below `through`, then the ones that
     * follow without a gap. A `through` at or below lastSeq changes nothing.
     */
    skip(through: number): Message[];
    /** The first missing range, or undefined when nothing is held back. */
    gap(): Gap | undefined;
    /** How many messages wait for a lower seq. */
    get heldCount(): number;
    /** The highest seq known (delivered or held). */
    get highestSeq(): number;
}
