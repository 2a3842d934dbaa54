import type { FetchFn, WebSocketCtor } from "./transport.js";
import type { Ack, Block, ChatCursor, ConnectionState, Frame, Invitation, Message, NatterEvents, Profile, TransportKind } from "./types.js";
/** Options of NatterClient. Durations are milliseconds. */
export interface NatterOptions {
    /** The gateway's base URL, e.g. "https://chat.example.com". Default: the page's origin. */
    url?: string;
    /** The JWT to connect with. */
    token: string;
    /** Called when the server refuses the token (expired or invalid); returns a fresh one. */
    refreshToken?: () => Promise<string> | string;
    /** "auto" (default): WebSocket, falling back to SSE+POST when it cannot connect. */
    transport?: "auto" | "websocket" | "sse";
    /** WebSocket constructor; default globalThis.WebSocket (pass `ws`'s on Node 20). */
    WebSocket?: WebSocketCtor;
    /** fetch implementation; default globalThis.fetch. */
    fetch?: FetchFn;
    /** First reconnect delay (default 500) and the cap (default 30000); jittered. */
    reconnectInitialMs?: number;
    reconnectMaxMs?: number;
    /** Send a ping after this long without any frame (default 15000)... */
    heartbeatMs?: number;
    /** ...and drop the connection if nothing arrives this long after it (default 10000). */
    heartbeatTimeoutMs?: number;
    /** Opening a connection may take this long (default 10000). */
    connectTimeoutMs?: number;
    /** Resend an unacked send (same messageId) after this long on a live connection (default 10000). */
    ackTimeoutMs?: number;
    /** Wait this long for a missing seq to arrive by itself before filling from history (default 250). */
    gapGraceMs?: number;
    /** At most one typing "start" per chat this often (default 3000). */
    typingThrottleMs?: number;
    /** Last seen seq per chat from a previous session, to resume from. */
    cursors?: Record<string, number>;
    /**
     * A chat first seen (live, or in the chat list a sync returns) at a seq no higher
     * than this is delivered from its start; above, the client starts at that point
     * (older messages are for loadHistory). Default 50.
     */
    fillFromStartMax?: number;
    /** Source of randomness for jitter (tests). */
    random?: () => number;
    /**
     * Fault injection for tests: every inbound frame passes through here; call deliver
     * (now, later, twice, or never) to hand it to the client.
     */
    inbound?: (f: Frame, deliver: (f: Frame) => void) => void;
}
type Listener<T> = (v: T) => void;
/**
 * NatterClient is a connection to a Natter gateway that stays up: it reconnects with
 * backoff, resends unacked messages with their original messageId until acked, delivers
 * each chat's messages exactly once in seq order (holding early ones, filling gaps from
 * history, resuming with sync after a reconnect), and falls back to SSE+POST when a
 * WebSocket cannot connect. Create it, subscribe with on(), then call connect().
 */
export declare class NatterClient {
    private readonly opts;
    private readonly base;
    private readonly tokenRef;
    private readonly listeners;
    private readonly chats;
    private readonly outbox;
    private readonly waiters;
    private readonly gapTimers;
    /** Chats with a gap fill in flight, to the id of its history request. */
    private readonly filling;
    /** The `after` of each chat's fill in flight. */
    private readonly fillAfter;
    private readonly typingSent;
    private readonly receipts;
    private readonly presenceSubs;
    private tr?;
    private _state;
    private _userId;
    private attempt;
    private preferred;
    private sessions;
    private reconnectTimer?;
    private heartbeatTimer?;
    private lastFrameAt;
    private pingSentAt;
    constructor(options: NatterOptions);
    /** The connection state. */
    get state(): ConnectionState;
    private isClosed;
    /** The user the token speaks for, once connected. */
    get userId(): string;
    /** The transport in use, if connected. */
    get transport(): TransportKind | undefined;
    /** The current token (after any refresh). */
    get token(): string;
    /** The base URL of the gateway. */
    get url(): string;
    /** Subscribes fn to event ev and returns the function that unsubscribes it. */
    on<K extends keyof NatterEvents>(ev: K, fn: Listener<NatterEvents[K]>): () => void;
    private emit;
    private setState;
    /** Starts connecting (and keeps reconnecting until close). */
    connect(): void;
    /** Closes for good: pending sends are rejected with code "closed". */
    close(): void;
    /** Last seq delivered per chat: what the next sync resumes from. */
    cursors(): ChatCursor[];
    /** The last seq delivered in chatId (0 if none). */
    lastSeq(chatId: string): number;
    /**
     * Starts tracking chatId from seq `after` (default: where it is, or 0): every later
     * message is delivered in order, missing ones are filled from history.
     */
    trackChat(chatId: string, after?: number): void;
    private open;
    private openOne;
    /** Gets a new token after an auth refusal; false (and closed) when there is no way to. */
    private refresh;
    private scheduleReconnect;
    private attach;
    private heartbeat;
    private onTransportClose;
    private failWaiters;
    private reqId;
    private write;
    private writeEntry;
    /** Sends f (with an id) and resolves with the frame answering it. */
    private request;
    private handle;
    private onError;
    private orderer;
    private onMessage;
    private checkGap;
    private onFill;
    private onSynced;
    private enqueue;
    /**
     * Sends a message and resolves once the server has stored it. It is kept in the
     * outbox and resent with the same messageId (which the server deduplicates) across
     * reconnects until acked; a non-retryable refusal rejects with a NatterError.
     */
    send(chatId: string, content: string, o?: {
        messageId?: string;
        messageType?: string;
        meta?: Record<string, unknown>;
        replyTo?: string;
    }): Promise<Ack>;
    /** Replaces the content of the caller's message refId (messageId: the edit's own ID, default new). */
    edit(chatId: string, refId: string, content: string, o?: {
        messageId?: string;
    }): Promise<Ack>;
    /** Deletes message refId for everyone. */
    delete(chatId: string, refId: string): Promise<Ack>;
    /** Adds (or with remove, takes back) the caller's emoji reaction to refId. */
    react(chatId: string, refId: string, emoji: string, remove?: boolean): Promise<Ack>;
    /** Says the user is typing in chatId; throttled to one frame per typingThrottleMs. */
    typing(chatId: string): void;
    /** Says the user stopped typing in chatId (only if a start was sent). */
    stopTyping(chatId: string): void;
    private stopTypingLocal;
    /** Records that messages up to seq in chatId reached this device. */
    markDelivered(chatId: string, seq: number): void;
    /** Records that the user has read chatId up to seq. */
    markRead(chatId: string, seq: number): void;
    private receipt;
    /** Asks for presence updates of userIds (kept across reconnects). */
    subscribePresence(userIds: string[]): void;
    /** One page of history over the connection: before (older, newest first) or after (newer, oldest first). */
    history(chatId: string, q?: {
        before?: number;
        after?: number;
        limit?: number;
    }): Promise<{
        messages: Message[];
        hasMore: boolean;
    }>;
    /** Round-trips a ping; resolves with the time it took in ms. */
    ping(): Promise<number>;
    /** Calls the REST API with the client's token; JSON in and out. Throws NatterError for an error answer. */
    rest<T = any>(method: string, path: string, body?: unknown): Promise<T>;
    /** Fetches path with the client's token and returns the body's bytes (media downloads). Throws NatterError for an error answer. */
    restBytes(path: string): Promise<Uint8Array>;
    /** One page of a chat's history over REST (works while disconnected). */
    loadHistory(chatId: string, q?: {
        before?: number;
        limit?: number;
    }): Promise<{
        messages: Message[];
        hasMore: boolean;
    }>;
    /** The caller's own profile, settings included. */
    profile(): Promise<Profile>;
    /** Replaces the caller's profile (absent fields are cleared). avatar: the media ID of an image the caller uploaded. */
    setProfile(p: {
        displayName?: string;
        avatar?: string;
        groupAdds?: string;
    }): Promise<Profile>;
    /** Another user's public profile; NatterError not_found unless the caller shares a chat with them. */
    userProfile(userId: string): Promise<Profile>;
    /** The profiles of every member of a chat (all pages), by user ID. */
    chatProfiles(chatId: string): Promise<Profile[]>;
    /** Blocks a user (again: no error). */
    block(userId: string): Promise<void>;
    /** Unblocks a user; NatterError not_found if not blocked. */
    unblock(userId: string): Promise<void>;
    /** The users the caller blocks. */
    blocks(): Promise<Block[]>;
    /** The caller's pending group invitations, newest first. */
    invitations(): Promise<Invitation[]>;
    /** Accepts an invitation: the caller joins the group. */
    acceptInvitation(chatId: string): Promise<void>;
    /** Declines an invitation. */
    declineInvitation(chatId: string): Promise<void>;
    /** How many sends wait for an ack. */
    get pendingSends(): number;
}
export {};
