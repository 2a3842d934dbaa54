import type { Frame, TransportKind } from "./types.js";
/** How a transport ended. `opened` is false when it never reached `connected`. */
export interface CloseInfo {
    code: number;
    reason: string;
    opened: boolean;
}
/**
 * Transport is one connection to the gateway carrying protocol frames: a WebSocket,
 * or the HTTP fallback (an SSE stream for server frames, POSTs for client frames).
 * Frames sent are written in order. onclose fires once.
 */
export interface Transport {
    readonly kind: TransportKind;
    /** The server's connected frame. */
    readonly connected: Frame;
    send(f: Frame): void;
    close(code?: number, reason?: string): void;
    onframe: (f: Frame) => void;
    onclose: (c: CloseInfo) => void;
}
/**
 * Minimal WebSocket surface the SDK uses: the browser's, or the `ws` package's. The
 * handler parameters are `any` on purpose: each implementation declares its own event
 * classes (ws's MessageEvent is not the DOM's), and under strictFunctionTypes a
 * narrower parameter here would refuse them. The SDK reads only `data`, `code` and
 * `reason` from them.
 */
export interface WebSocketLike {
    readonly readyState: number;
    onopen: ((ev: any) => void) | null;
    onmessage: ((ev: any) => void) | null;
    onclose: ((ev: any) => void) | null;
    onerror: ((ev: any) => void) | null;
    send(data: string): void;
    close(code?: number, reason?: string): void;
}
/** A WebSocket class: `globalThis.WebSocket` in browsers, `import WebSocket from "ws"` on Node 20. */
export type WebSocketCtor = new (url: string) => WebSocketLike;
export type FetchFn = typeof fetch;
/** An error opening a transport, with the close code that ended it. */
export declare class OpenError extends Error {
    readonly code: number;
    readonly reason: string;
    /** The server refused the token (4001/4002 or HTTP 401). */
    readonly auth: boolean;
    constructor(code: number, reason: string);
}
/**
 * openWebSocket connects to `${wsBase}/ws`, authenticates with a connect frame (so the
 * token never appears in a URL) and resolves once the connected frame arrives. With
 * resume, the server holds live frames until the client's first sync is answered.
 */
export declare function openWebSocket(wsBase: string, token: string, Ctor: WebSocketCtor, timeoutMs: number, resume?: boolean): Promise<Transport>;
/**
 * openSSE connects through the HTTP fallback: a streamed GET of `${base}/api/v1/events`
 * for server frames, and one POST per client frame to `${base}/api/v1/frames`, sent one
 * at a time in order. It resolves once the connected frame arrives. With resume, the
 * server holds live frames until the client's first sync is answered.
 */
export declare function openSSE(base: string, tokenRef: {
    token: string;
}, fetchFn: FetchFn, timeoutMs: number, resume?: boolean): Promise<Transport>;
