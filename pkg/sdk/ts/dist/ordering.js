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
export class ChatOrderer {
    chatId;
    /** The highest seq delivered with every lower one delivered too. */
    lastSeq;
    held = new Map();
    seen = new Set();
    seenOrder = [];
    seenCap;
    constructor(chatId, lastSeq = 0, seenCap = 5000) {
        this.chatId = chatId;
        this.lastSeq = lastSeq;
        this.seenCap = seenCap;
    }
    /** Offers one message; see PushResult. */
    push(m) {
        const seq = m.seq ?? 0;
        if (seq <= this.lastSeq || this.held.has(seq)) {
            return { deliver: [], duplicate: true };
        }
        // A messageId already delivered at another seq still occupies this seq in the
        // order: it is skipped when its turn comes, never shown twice.
        const duplicate = this.seen.has(m.messageId);
        if (seq !== this.lastSeq + 1) {
            this.held.set(seq, m);
            return { deliver: [], duplicate };
        }
        const deliver = [];
        for (let next = m; next; next = this.held.get(this.lastSeq + 1)) {
            this.held.delete(next.seq);
            if (this.seen.has(next.messageId))
                this.lastSeq = next.seq;
            else
                this.release(next, deliver);
        }
        return { deliver, duplicate };
    }
    release(m, out) {
        this.lastSeq = m.seq;
        this.seen.add(m.messageId);
        this.seenOrder.push(m.messageId);
        if (this.seenOrder.length > this.seenCap) {
            this.seen.delete(this.seenOrder.shift());
        }
        out.push(m);
    }
    /**
     * Marks every seq up to `through` that has not arrived as gone for good (expired,
     * erased, or below the reader's cleared history: docs/protocol.md, "Retention and
     * deletion"), so the order stops waiting for it. Returns the messages now
     * deliverable, in seq order: those held at or below `through`, then the ones that
     * follow without a gap. A `through` at or below lastSeq changes nothing.
     */
    skip(through) {
        if (through <= this.lastSeq)
            return [];
        const deliver = [];
        const below = [...this.held.keys()].filter((s) => s <= through).sort((a, b) => a - b);
        const take = (m) => {
            this.held.delete(m.seq);
            if (this.seen.has(m.messageId))
                this.lastSeq = m.seq;
            else
                this.release(m, deliver);
        };
        for (const s of below)
            take(this.held.get(s));
        this.lastSeq = through;
        for (let next = this.held.get(this.lastSeq + 1); next; next = this.held.get(this.lastSeq + 1))
            take(next);
        return deliver;
    }
    /** The first missing range, or undefined when nothing is held back. */
    gap() {
        if (this.held.size === 0)
            return undefined;
        let min = Infinity;
        for (const s of this.held.keys())
            min = Math.min(min, s);
        return { after: this.lastSeq, before: min };
    }
    /** How many messages wait for a lower seq. */
    get heldCount() {
        return this.held.size;
    }
    /** The highest seq known (delivered or held). */
    get highestSeq() {
        let hi = this.lastSeq;
        for (const s of this.held.keys())
            hi = Math.max(hi, s);
        return hi;
    }
}
