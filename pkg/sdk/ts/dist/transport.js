import { CloseCodes } from "./types.js";
/** An error opening a transport, with the close code that ended it. */
export class OpenError extends Error {
    code;
    reason;
    /** The server refused the token (4001/4002 or HTTP 401). */
    auth;
    constructor(code, reason) {
        super(`connection failed: ${code} ${reason}`);
        this.code = code;
        this.reason = reason;
        this.auth = code === CloseCodes.Unauthorized || code === CloseCodes.TokenExpired;
    }
}
function parse(data) {
    if (typeof data !== "string")
        return undefined;
    try {
        const f = JSON.parse(data);
        return f && typeof f === "object" && typeof f.type === "string" ? f : undefined;
    }
    catch {
        return undefined;
    }
}
/**
 * openWebSocket connects to `${wsBase}/ws`, authenticates with a connect frame (so the
 * token never appears in a URL) and resolves once the connected frame arrives. With
 * resume, the server holds live frames until the client's first sync is answered.
 */
export function openWebSocket(wsBase, token, Ctor, timeoutMs, resume = false) {
    return new Promise((resolve, reject) => {
        let ws;
        try {
            ws = new Ctor(wsBase + "/ws");
        }
        catch (e) {
            reject(new OpenError(1006, String(e)));
            return;
        }
        const timer = setTimeout(() => fail(1006, "connect timeout"), timeoutMs);
        const fail = (code, reason) => {
            clearTimeout(timer);
            ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
            try {
                ws.close();
            }
            catch { /* already closing */ }
            reject(new OpenError(code, reason));
        };
        ws.onopen = () => ws.send(JSON.stringify(resume ? { type: "connect", token, resume: true } : { type: "connect", token }));
        ws.onerror = () => { };
        ws.onclose = (ev) => fail(ev.code || 1006, ev.reason || "closed");
        ws.onmessage = (ev) => {
            const f = parse(ev.data);
            if (!f || f.type !== "connected")
                return;
            clearTimeout(timer);
            const tr = {
                kind: "websocket",
                connected: f,
                opened: true,
                ended: false,
                onframe: (_f) => { },
                onclose: (_c) => { },
                send(fr) {
                    if (ws.readyState === 1)
                        ws.send(JSON.stringify(fr));
                },
                close(code = 1000, reason = "") {
                    end(code === 1000 ? 1000 : 1006, reason || "closed by client");
                    try {
                        ws.close(code === 1000 ? 1000 : 4000, reason.slice(0, 120));
                    }
                    catch { /* closing */ }
                },
            };
            const end = (code, reason) => {
                if (tr.ended)
                    return;
                tr.ended = true;
                ws.onmessage = ws.onclose = ws.onerror = null;
                tr.onclose({ code, reason, opened: true });
            };
            ws.onmessage = (e) => {
                const fr = parse(e.data);
                if (fr)
                    tr.onframe(fr);
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
export function openSSE(base, tokenRef, fetchFn, timeoutMs, resume = false) {
    return new Promise((resolve, reject) => {
        const abort = new AbortController();
        let opened = false;
        let ended = false;
        let tr;
        const timer = setTimeout(() => { abort.abort(); if (!opened)
            reject(new OpenError(1006, "connect timeout")); }, timeoutMs);
        const end = (code, reason) => {
            if (ended)
                return;
            ended = true;
            clearTimeout(timer);
            abort.abort();
            if (!opened)
                reject(new OpenError(code, reason));
            else
                tr.onclose({ code, reason, opened: true });
        };
        const queue = [];
        let posting = false;
        const pump = async () => {
            if (posting || !tr)
                return;
            posting = true;
            while (queue.length > 0 && !ended) {
                const f = queue[0];
                let resp;
                try {
                    resp = await fetchFn(`${base}/api/v1/frames?connId=${encodeURIComponent(tr.connected.connId ?? "")}`, {
                        method: "POST",
                        headers: { "Content-Type": "application/json", Authorization: `Bearer ${tokenRef.token}` },
                        body: JSON.stringify(f),
                        signal: abort.signal,
                    });
                }
                catch (e) {
                    end(1006, "POST failed: " + String(e));
                    break;
                }
                queue.shift();
                if (resp.status === 202) {
                    await resp.body?.cancel().catch(() => { });
                    continue;
                }
                const body = await resp.json().catch(() => ({}));
                const code = body?.error?.code ?? "internal";
                const message = body?.error?.message ?? `HTTP ${resp.status}`;
                if (resp.status === 401) {
                    end(code === "token_expired" ? CloseCodes.TokenExpired : CloseCodes.Unauthorized, code + ": " + message);
                    break;
                }
                if (resp.status === 404) {
                    end(1006, code + ": " + message);
                    break;
                }
                // The frame itself was refused (e.g. 413): answer as the server would on a WebSocket.
                tr.onframe({ type: "error", code, message, retry: !!body?.error?.retry, chatId: f.chatId, messageId: f.messageId, id: f.id });
            }
            posting = false;
        };
        const onEvent = (event, data) => {
            if (event === "close") {
                let c = { code: 1006, reason: "closed" };
                try {
                    c = JSON.parse(data);
                }
                catch { /* keep the default */ }
                end(c.code, c.reason);
                return;
            }
            const f = parse(data);
            if (!f)
                return;
            if (!opened) {
                if (f.type !== "connected")
                    return;
                opened = true;
                clearTimeout(timer);
                tr = {
                    kind: "sse",
                    connected: f,
                    onframe: () => { },
                    onclose: () => { },
                    send(fr) { if (!ended) {
                        queue.push(fr);
                        void pump();
                    } },
                    close(code = 1000, reason = "closed by client") { end(code === 1000 ? 1000 : 1006, reason); },
                };
                resolve(tr);
                return;
            }
            tr.onframe(f);
        };
        (async () => {
            let resp;
            try {
                resp = await fetchFn(`${base}/api/v1/events${resume ? "?resume=1" : ""}`, {
                    headers: { Accept: "text/event-stream", Authorization: `Bearer ${tokenRef.token}` },
                    signal: abort.signal,
                    cache: "no-store",
                });
            }
            catch (e) {
                end(1006, "event stream failed: " + String(e));
                return;
            }
            if (!resp.ok || !resp.body) {
                const body = await resp.json().catch(() => ({}));
                const code = body?.error?.code ?? "";
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
                    if (done)
                        break;
                    buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
                    let i;
                    while ((i = buf.indexOf("\n\n")) >= 0) {
                        const block = buf.slice(0, i);
                        buf = buf.slice(i + 2);
                        let event = "message";
                        const data = [];
                        for (const line of block.split("\n")) {
                            if (line === "" || line.startsWith(":"))
                                continue;
                            const c = line.indexOf(":");
                            const field = c < 0 ? line : line.slice(0, c);
                            let val = c < 0 ? "" : line.slice(c + 1);
                            if (val.startsWith(" "))
                                val = val.slice(1);
                            if (field === "event")
                                event = val;
                            else if (field === "data")
                                data.push(val);
                        }
                        if (data.length > 0)
                            onEvent(event, data.join("\n"));
                        if (ended)
                            return;
                    }
                }
                end(1006, "event stream ended");
            }
            catch (e) {
                end(1006, "event stream broke: " + String(e));
            }
        })();
    });
}
