// Wire types of Natter's client protocol (docs/protocol.md). Field names match the
// JSON on the wire exactly; every field but `type` is optional because one flat
// object carries every frame type.
/** Codes for which the same request may succeed if retried unchanged later. */
export const RETRYABLE_CODES = new Set([
    "rate_limited", "unavailable", "internal", "shutting_down", "slow_consumer", "token_expired",
    "storage_full",
]);
/** WebSocket close codes Natter uses beside the standard ones. */
export const CloseCodes = {
    Unauthorized: 4001,
    TokenExpired: 4002,
    SlowConsumer: 4008,
    RateLimited: 4029,
};
/** An error from the server (an error frame or a refused request), or the SDK. */
export class NatterError extends Error {
    code;
    /** Whether retrying the same request later may succeed. */
    retry;
    chatId;
    messageId;
    constructor(code, message, opts = {}) {
        super(`${code}: ${message}`);
        this.name = "NatterError";
        this.code = code;
        this.retry = opts.retry ?? RETRYABLE_CODES.has(code);
        this.chatId = opts.chatId;
        this.messageId = opts.messageId;
    }
    /** The NatterError an error frame describes. */
    static fromFrame(f) {
        return new NatterError(f.code ?? "internal", f.message ?? "", {
            retry: f.retry ?? RETRYABLE_CODES.has(f.code ?? ""), chatId: f.chatId, messageId: f.messageId,
        });
    }
}
/** What to show for a user: the display name, else the user ID. */
export function displayName(p, userId) {
    return p?.displayName || userId;
}
