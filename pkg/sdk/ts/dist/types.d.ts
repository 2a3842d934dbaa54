/** Stable error codes. Never renamed: new ones are added. */
export type ErrorCode = "bad_request" | "unknown_type" | "invalid_id" | "too_large" | "unauthorized" | "token_expired" | "forbidden" | "not_member" | "not_found" | "conflict" | "rate_limited" | "slow_consumer" | "unavailable" | "internal" | "shutting_down" | "storage_full" | "token_expiring" | "bad_host" | "quota_exceeded" | "blocked" | "group_full";
/** Codes for which the same request may succeed if retried unchanged later. */
export declare const RETRYABLE_CODES: ReadonlySet<string>;
/** WebSocket close codes Natter uses beside the standard ones. */
export declare const CloseCodes: {
    readonly Unauthorized: 4001;
    readonly TokenExpired: 4002;
    readonly SlowConsumer: 4008;
    readonly RateLimited: 4029;
};
/** One chat message as sequenced and delivered. */
export interface Message {
    chatId: string;
    /** The chat's sequence number: 1, 2, 3... with no gaps. */
    seq: number;
    /** Client-generated ID; the server deduplicates sends by it. */
    messageId: string;
    senderId: string;
    content: string;
    /** "text", "image", "file", "system", "edit", "delete", "react", or an app type. */
    messageType: string;
    /** Sequencing time, milliseconds since the Unix epoch. */
    timestamp?: number;
    replyTo?: string;
    /** The messageId an edit, delete or react event applies to. */
    refId?: string;
    meta?: Record<string, unknown>;
    /**
     * When the message disappears (ms since the epoch; the chat's message TTL or the
     * server's retention). Absent: never. Hide it from then on.
     */
    expiresAt?: number;
}
/** A per-chat position: the last sequence number seen. */
export interface ChatCursor {
    chatId: string;
    seq: number;
    /** synced only: every seq below it is gone for this user (cleared history). */
    retainedFrom?: number;
}
/** Every frame of the protocol, both directions. */
export interface Frame {
    type: string;
    id?: string;
    token?: string;
    chatId?: string;
    seq?: number;
    messageId?: string;
    senderId?: string;
    content?: string;
    messageType?: string;
    timestamp?: number;
    replyTo?: string;
    refId?: string;
    meta?: Record<string, unknown>;
    emoji?: string;
    remove?: boolean;
    duplicate?: boolean;
    before?: number;
    after?: number;
    limit?: number;
    messages?: Message[];
    hasMore?: boolean;
    /** history_result: every seq below it is gone for the reader and never comes back. */
    retainedFrom?: number;
    expiresAt?: number;
    chats?: ChatCursor[];
    state?: string;
    userId?: string;
    delivered?: number;
    read?: number;
    userIds?: string[];
    status?: string;
    lastSeen?: number;
    devices?: number;
    connId?: string;
    serverTime?: number;
    heartbeatMs?: number;
    afterMs?: number;
    /** invitation: who invited, with what role. */
    invitedBy?: string;
    role?: string;
    code?: string;
    message?: string;
    retry?: boolean;
}
/** An error from the server (an error frame or a refused request), or the SDK. */
export declare class NatterError extends Error {
    readonly code: string;
    /** Whether retrying the same request later may succeed. */
    readonly retry: boolean;
    readonly chatId?: string;
    readonly messageId?: string;
    constructor(code: string, message: string, opts?: {
        retry?: boolean;
        chatId?: string;
        messageId?: string;
    });
    /** The NatterError an error frame describes. */
    static fromFrame(f: Frame): NatterError;
}
/** The answer to a send, edit, delete or react: the server has stored it. */
export interface Ack {
    chatId: string;
    messageId: string;
    /**
     * The message's seq in the chat: the ack comes once it is sequenced. For a duplicate,
     * the seq of the copy sequenced first. 0 only for an edit, delete or react that
     * changed nothing (nothing was sequenced).
     */
    seq: number;
    /** True when the chat already held this messageId (a resend, however late): nothing new was sequenced. */
    duplicate: boolean;
}
export interface ReceiptEvent {
    chatId: string;
    userId: string;
    delivered: number;
    read: number;
}
export interface TypingEvent {
    chatId: string;
    userId: string;
    state: "start" | "stop" | string;
}
export interface PresenceEvent {
    userId: string;
    status: string;
    lastSeen?: number;
    devices?: number;
}
export interface GapEvent {
    chatId: string;
    after: number;
    before: number;
}
/** A group invitation of the user (live): pending, or answered on another device. */
export interface InvitationEvent {
    chatId: string;
    invitedBy: string;
    role: string;
    state: "pending" | "accepted" | "declined" | string;
    timestamp: number;
}
/** A user's profile (docs/protocol.md, "Profiles"). groupAdds and directAddsDefault are only in one's own. */
export interface Profile {
    userId: string;
    displayName?: string;
    /** Media ID of the avatar image: download it with restBytes(`/api/v1/media/${avatar}`). */
    avatar?: string;
    /** "everyone", "contacts" or "" (the server's default). */
    groupAdds?: string;
    directAddsDefault?: boolean;
    updatedAt?: string;
}
/** A pending group invitation of the user. */
export interface Invitation {
    chatId: string;
    chatName?: string;
    invitedBy: string;
    role: string;
    createdAt: string;
}
/** A user the caller blocks. */
export interface Block {
    userId: string;
    createdAt: string;
}
/** What to show for a user: the display name, else the user ID. */
export declare function displayName(p: Profile | undefined, userId: string): string;
export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";
export type TransportKind = "websocket" | "sse";
export interface ConnectedEvent {
    userId: string;
    connId: string;
    transport: TransportKind;
    resumed: boolean;
}
export interface DisconnectedEvent {
    code: number;
    reason: string;
    transport: TransportKind;
}
/** Typed events of NatterClient. */
export interface NatterEvents {
    /** A message, in seq order per chat, exactly once (live, resumed, or gap-filled). */
    message: Message;
    ack: Ack;
    receipt: ReceiptEvent;
    typing: TypingEvent;
    presence: PresenceEvent;
    /** A group invitation arrived (state "pending") or was answered on another device. */
    invitation: InvitationEvent;
    /** A gap was seen in a chat; a fill from history follows. */
    gap: GapEvent;
    state: ConnectionState;
    connected: ConnectedEvent;
    disconnected: DisconnectedEvent;
    /** Errors not tied to a promise the caller holds (e.g. an unsolicited error frame). */
    error: NatterError;
    /** Every frame received, before the SDK handles it (for debugging and tools). */
    frame: Frame;
}
