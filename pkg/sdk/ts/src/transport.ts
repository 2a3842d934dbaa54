import type { Frame, TransportKind } from "./types.js";
import { CloseCodes } from "./types.js";

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
export class OpenError extends Error {
  readonly code: number;
  readonly reason: string;
  /** The server refused the token (4001/4002 or HTTP 401). */
  readonly auth: boolean;
  constructor(code: number, reason: string) {
    super(`connection failed: ${code} ${reason}`);
    this.code = code;
    this.reason = reason;
    this.auth = code === CloseCodes.Unauthorized || code === CloseCodes.TokenExpired;
  }
}

function parse(data: unknown): Frame | undefined {
  if (typeof data !== "string") return undefined;
  try {
    const f = JSON.parse(data);
    return f && typeof f === "object" && typeof f.type === "string" ? (f as Frame) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * openWebSocket connects to `${wsBase}/ws`, authenticates with a connect frame (so the
 * token never appears in a URL) and resolves once the connected frame arrives. With
 * resume, the server holds live frames until the client's first sync is answered.
 */
export function openWebSocket(wsBase: string, token: string, Ctor: WebSocketCtor, timeoutMs: number, resume = false): Promise<Transport> {
  return new Promise((resolve, reject) => {
    let ws: WebSocketLike;
    try {
      ws = new Ctor(wsBase + "/ws");
    } catch (e) {
      reject(new OpenError(1006, String(e)));
      return;
    }
    const timer = setTimeout(() => fail(1006, "connect timeout"), timeoutMs);
    const fail = (code: number, reason: string) => {
      clearTimeout(timer);
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(); } catch { /* already closing */ }
      reject(new OpenError(code, reason));
    };
    ws.onopen = () => ws.send(JSON.stringify(resume ? { type: "connect", token, resume: true } : { type: "connect", token }));
    ws.onerror = () => { /* onclose follows with the code */ };
    ws.onclose = (ev) => fail(ev.code || 1006, ev.reason || "closed");
    ws.onmessage = (ev) => {
      const f = parse(ev.data);
      if (!f || f.type !== "connected") return;
      clearTimeout(timer);
      const tr = {
        kind: "websocket" as const,
        connected: f,
        opened: true,
        ended: false,
        onframe: (_f: Frame) => {},
        onclose: (_c: CloseInfo) => {},
        send(fr: Frame) {
          if (ws.readyState === 1) ws.send(JSON.stringify(fr));
        },
        close(code = 1000, reason = "") {
          end(code === 1000 ? 1000 : 1006, reason || "closed by client");
          try { ws.close(code === 1000 ? 1000 : 4000, reason.slice(0, 120)); } catch { /* closing */ }
        },
      };
      const end = (code: number, reason: string) => {
        if (tr.ended) return;
        tr.ended = true;
        ws.onmessage = ws.onclose = ws.onerror = null;
        tr.onclose({ code, reason, opened: true });
      };
      ws.onmessage = (e) => {
        const fr = parse(e.data);
        if (fr) tr.onframe(fr);
      };
      ws.onclose = (e) => end(e.code || 1006, e.reason || "");
      resolve(tr);
    };
  });
}

/**
 * openSSE connects through the HTTP fallback: a streamed GET of `${base}/api/v1/events`
 * for server frames, and one POST per client frame to `${base}/api/v1/frames`, sent one
 * at a time in order. It resolves once the connected frame arrives. With resume, the
 * server holds live frames until the client's first sync is answered.
 */
export function openSSE(base: string, tokenRef: { token: string }, fetchFn: FetchFn, timeoutMs: number, resume = false): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const abort = new AbortController();
    let opened = false;
    let ended = false;
    let tr: Transport | undefined;
    const timer = setTimeout(() => { abort.abort(); if (!opened) reject(new OpenError(1006, "connect timeout")); }, timeoutMs);
    const end = (code: number, reason: string) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      abort.abort();
      if (!opened) reject(new OpenError(code, reason));
      else tr!.onclose({ code, reason, opened: true });
    };
    const queue: Frame[] = [];
    let posting = false;
    const pump = async () => {
      if (posting || !tr) return;
      posting = true;
      while (queue.length > 0 && !ended) {
        const f = queue[0];
        let resp: Response;
        try {
          resp = await fetchFn(`${base}/api/v1/frames?connId=${encodeURIComponent(tr.connected.connId ?? "")}`, {
            method: "POST",
            headers: { "Content-Type": "application/json", Authorization: `Bearer ${tokenRef.token}` },
            body: JSON.stringify(f),
            signal: abort.signal,
          });
        } catch (e) {
          end(1006, "POST failed: " + String(e));
          break;
        }
        queue.shift();
        if (resp.status === 202) {
          await resp.body?.cancel().catch(() => {});
          continue;
        }
        const body = await resp.json().catch(() => ({} as any));
        const code: string = body?.error?.code ?? "internal";
        const message: string = body?.error?.message ?? `HTTP ${resp.status}`;
        if (resp.status === 401) { end(code === "token_expired" ? CloseCodes.TokenExpired : CloseCodes.Unauthorized, code + ": " + message); break; }
        if (resp.status === 404) { end(1006, code + ": " + message); break; }
        // The frame itself was refused (e.g. 413): answer as the server would on a WebSocket.
        tr.onframe({ type: "error", code, message, retry: !!body?.error?.retry, chatId: f.chatId, messageId: f.messageId, id: f.id });
      }
      posting = false;
    };
    const onEvent = (event: string, data: string) => {
      if (event === "close") {
        let c = { code: 1006, reason: "closed" };
        try { c = JSON.parse(data); } catch { /* keep the default */ }
        end(c.code, c.reason);
        return;
      }
      const f = parse(data);
      if (!f) return;
      if (!opened) {
        if (f.type !== "connected") return;
        opened = true;
        clearTimeout(timer);
        tr = {
          kind: "sse",
          connected: f,
          onframe: () => {},
          onclose: () => {},
          send(fr: Frame) { if (!ended) { queue.push(fr); void pump(); } },
          close(code = 1000, reason = "closed by client") { end(code === 1000 ? 1000 : 1006, reason); },
        };
        resolve(tr);
        return;
      }
      tr!.onframe(f);
    };
    (async () => {
      let resp: Response;
      try {
        resp = await fetchFn(`${base}/api/v1/events${resume ? "?resume=1" : ""}`, {
          headers: { Accept: "text/event-stream", Authorization: `Bearer ${tokenRef.token}` },
          signal: abort.signal,
          cache: "no-store",
        });
      } catch (e) {
        end(1006, "event stream failed: " + String(e));
        return;
      }
      if (!resp.ok || !resp.body) {
        const body = await resp.json().catch(() => ({} as any));
        const code: string = body?.error?.code ?? "";
        const status = resp.status === 401 ? (code === "token_expired" ? CloseCodes.TokenExpired : CloseCodes.Unauthorized) : 1006;
        end(status, `${code || "http"}: HTTP ${resp.status}`);
        return;
      }
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
          let i: number;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let event = "message";
            const data: string[] = [];
            for (const line of block.split("\n")) {
              if (line === "" || line.startsWith(":")) continue;
              const c = line.indexOf(":");
              const field = c < 0 ? line : line.slice(0, c);
              let val = c < 0 ? "" : line.slice(c + 1);
              if (val.startsWith(" ")) val = val.slice(1);
              if (field === "event") event = val;
              else if (field === "data") data.push(val);
            }
            if (data.length > 0) onEvent(event, data.join("\n"));
            if (ended) return;
          }
        }
        end(1006, "event stream ended");
      } catch (e) {
        end(1006, "event stream broke: " + String(e));
      }
    })();
  });
}
