// The SDK against a real `natter serve`, over both transports. For "sse" every client
// of the test connects through a proxy that drops WebSocket upgrades, so the SDK must
// fall back to SSE+POST by itself (transport "auto"), and the same guarantees must hold.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { NatterClient } from "../../dist/natter.js";
import { collector, createChat, rest, startNatter, startProxy, waitFor } from "../harness.mjs";

let natter;
before(async () => { natter = await startNatter(); });
after(async () => { await natter?.stop(); });

let userSeq = 0;
const uniq = (name) => `${name}${++userSeq}_${process.pid}`;

/** A client for user through proxy (or straight to the server), connected. */
async function connect(t, user, { via, transport = "auto", ...opts } = {}) {
  const c = new NatterClient({
    url: via ? via.url : natter.url, token: natter.token(user), WebSocket, transport,
    reconnectInitialMs: 50, reconnectMaxMs: 500, connectTimeoutMs: 3000, ...opts,
  });
  t.after(() => c.close());
  const connected = new Promise((r) => c.on("connected", r));
  c.connect();
  await connected;
  return c;
}

const ids = (ms) => ms.map((m) => m.messageId);
const seqs = (ms) => ms.map((m) => m.seq);
const range = (n) => Array.from({ length: n }, (_, i) => i + 1);

for (const mode of ["websocket", "sse"]) {
  describe(`over ${mode}`, () => {
    /** A proxy for the mode: plain for websocket, WebSocket-blocking for sse. */
    async function proxy(t) {
      const p = await startProxy(natter.port, { blockWebSocket: mode === "sse" });
      t.after(() => p.close());
      return p;
    }
    const expectTransport = (c) => assert.equal(c.transport, mode, "the transport in use");

    test("a reconnect mid-send loses and duplicates nothing", async (t) => {
      const [alice, bob] = [uniq("alice"), uniq("bob")];
      const chat = await createChat(natter.url, natter.token(alice), "direct", [bob]);
      const pa = await proxy(t);
      const pb = await proxy(t);
      const a = await connect(t, alice, { via: pa });
      const b = await connect(t, bob, { via: pb });
      expectTransport(a);
      const got = collector(b);
      const mine = collector(a);
      let reconnects = 0;
      a.on("connected", (e) => { if (e.resumed) reconnects++; });
      const N = 60;
      const sent = [];
      const acks = [];
      for (let i = 0; i < N; i++) {
        const messageId = `m${String(i).padStart(3, "0")}-${alice}`;
        sent.push(messageId);
        acks.push(a.send(chat, `message ${i}`, { messageId }));
        if (i === 20 || i === 40) {
          await acks[i - 5];
          pa.cut(); // the network drops alice's connection with sends in flight
        }
        if (i === 30) pb.cut(); // and bob's, while he is receiving
        await new Promise((r) => setTimeout(r, 5));
      }
      const results = await Promise.all(acks);
      assert.deepEqual(results.map((r) => r.messageId), sent, "every send acked");
      assert.ok(reconnects >= 2, `alice reconnected (${reconnects})`);
      await waitFor(() => got.messages.length >= N && mine.messages.length >= N,
        () => `bob has ${got.messages.length}, alice ${mine.messages.length} of ${N}`);
      await new Promise((r) => setTimeout(r, 300)); // anything extra would arrive now
      assert.deepEqual(seqs(got.messages), range(N), "bob: seq 1..N, each once");
      assert.deepEqual(seqs(mine.messages), range(N), "alice's own devices too");
      assert.deepEqual(ids(got.messages).slice().sort(), sent.slice().sort(), "exactly the sent messages");
      assert.deepEqual(ids(mine.messages), ids(got.messages), "the same order for both members");
      const h = await rest(natter.url, "GET", `/api/v1/chats/${chat}/messages?limit=100&after=0`, natter.token(bob));
      assert.equal(h.status, 200);
      assert.deepEqual(h.body.messages.map((m) => m.messageId), ids(got.messages), "history holds each message once, in the same order");
      assert.equal(a.pendingSends, 0);
    });

    test("a forced gap is detected and filled from history", async (t) => {
      const [alice, bob] = [uniq("alice"), uniq("bob")];
      const chat = await createChat(natter.url, natter.token(alice), "direct", [bob]);
      const p = await proxy(t);
      const a = await connect(t, alice, { via: p });
      const dropped = new Set();
      const b = await connect(t, bob, {
        via: p,
        gapGraceMs: 50,
        inbound(f, deliver) {
          // Live delivery loses seqs 3 and 4 (the server's path may drop; the order may not).
          if (f.type === "message" && (f.seq === 3 || f.seq === 4) && !dropped.has(f.seq)) { dropped.add(f.seq); return; }
          deliver(f);
        },
      });
      expectTransport(b);
      const got = collector(b);
      const gaps = [];
      b.on("gap", (g) => gaps.push(g));
      for (let i = 1; i <= 6; i++) await a.send(chat, `m${i}`);
      await waitFor(() => got.messages.length >= 6, () => `bob has ${got.messages.length} of 6`);
      assert.deepEqual(seqs(got.messages), range(6));
      assert.deepEqual(got.messages.map((m) => m.content), ["m1", "m2", "m3", "m4", "m5", "m6"]);
      assert.deepEqual([...dropped].sort(), [3, 4], "the live frames were really dropped");
      assert.deepEqual(gaps[0], { chatId: chat, after: 2, before: 5 });
      assert.ok(got.counts.history_result >= 1, "the fill came from a history frame");
    });

    test("seqs that expired before a gap fill are skipped, not waited for", async (t) => {
      const [alice, bob] = [uniq("alice"), uniq("bob")];
      const chat = await createChat(natter.url, natter.token(alice), "direct", [bob]);
      const a = await connect(t, alice, {});
      const dropped = new Set();
      const b = await connect(t, bob, {
        gapGraceMs: 6000, // longer than the 5 s TTL: the fill finds 3, 4 and 5 expired
        inbound(f, deliver) {
          if (f.type === "message" && (f.seq === 3 || f.seq === 4) && !dropped.has(f.seq)) { dropped.add(f.seq); return; }
          deliver(f);
        },
      });
      const got = collector(b);
      const ttl = await rest(natter.url, "PUT", `/api/v1/chats/${chat}/ttl`, natter.token(alice), { messageTtl: 5 });
      assert.equal(ttl.status, 200);
      await waitFor(() => got.messages.length >= 1, "the ttl event");
      for (let i = 2; i <= 5; i++) await a.send(chat, `x${i}`);
      await waitFor(() => got.messages.length >= 3, () => `bob has ${seqs(got.messages)}`, 20000);
      assert.deepEqual(seqs(got.messages), [1, 2, 5], "3 and 4 are gone: 5 is delivered without them");
      assert.ok(got.messages[2].expiresAt > got.messages[2].timestamp, "messages carry their expiry");
      assert.deepEqual([...dropped].sort(), [3, 4]);
    });

    test("a chat whose first message was missed recovers from seq 1", async (t) => {
      const [alice, bob] = [uniq("alice"), uniq("bob")];
      const chat = await createChat(natter.url, natter.token(alice), "direct", [bob]);
      const p = await proxy(t);
      const a = await connect(t, alice, { via: p });
      let dropped = false;
      const results = [];
      const b = await connect(t, bob, {
        via: p,
        gapGraceMs: 50,
        inbound(f, deliver) {
          if (f.type === "history_result") results.push(f);
          // Live delivery loses the chat's first message: the fill asks for after 0.
          if (f.type === "message" && f.seq === 1 && !dropped) { dropped = true; return; }
          deliver(f);
        },
      });
      const got = collector(b);
      const gaps = [];
      b.on("gap", (g) => gaps.push(g));
      for (let i = 1; i <= 3; i++) await a.send(chat, `m${i}`);
      await waitFor(() => got.messages.length >= 3, () => `bob has ${seqs(got.messages)} of 3 after ${gaps.length} gap events`);
      assert.ok(dropped, "the live frame was really dropped");
      assert.deepEqual(seqs(got.messages), range(3));
      assert.deepEqual(gaps[0], { chatId: chat, after: 0, before: 2 });
      assert.ok(gaps.length <= 2, `the gap was filled at once, not retried (${gaps.length} gap events)`);
      assert.equal(b.lastSeq(chat), 3);
      // history after 0 pages forward from seq 1; without after, back from the newest.
      assert.deepEqual(seqs((await b.history(chat, { after: 0, limit: 2 })).messages), [1, 2]);
      assert.deepEqual(seqs((await b.history(chat, { limit: 2 })).messages), [3, 2]);
      const last = await b.history(chat, { after: 3 });
      assert.deepEqual(last, { messages: [], hasMore: false });
      const wire = results.at(-1);
      assert.deepEqual([wire.messages, wire.hasMore], [[], false], "on the wire, an empty page has messages [] and hasMore false");
    });

    test("ordering holds when frames arrive out of order and twice", async (t) => {
      const [alice, bob] = [uniq("alice"), uniq("bob")];
      const chat = await createChat(natter.url, natter.token(alice), "group", [bob], "g");
      const p = await proxy(t);
      const a = await connect(t, alice, { via: p });
      let held = [];
      let delivered = 0;
      const b = await connect(t, bob, {
        via: p,
        gapGraceMs: 5000, // reordering, not loss: no fill should be needed
        inbound(f, deliver) {
          if (f.type !== "message") { deliver(f); return; }
          held.push(f);
          if (held.length === 4) {
            const batch = held.reverse();
            held = [];
            for (const x of batch) { deliver(x); delivered++; }
            deliver(batch[0]); // and one twice
          }
        },
      });
      const got = collector(b);
      for (let i = 1; i <= 12; i++) await a.send(chat, `m${i}`);
      await waitFor(() => got.messages.length >= 12, () => `bob has ${seqs(got.messages)} of 12; held ${held.map((f) => f.seq)}; passed ${delivered}; lastSeq ${b.lastSeq(chat)}`);
      assert.equal(delivered, 12, "every frame went through the reordering");
      assert.deepEqual(seqs(got.messages), range(12), "delivered in seq order, once each");
      assert.equal(got.counts.history_result ?? 0, 0, "held messages were released without a history fill");
    });

    test("resume with sync after a reconnect delivers what was missed", async (t) => {
      const [alice, bob] = [uniq("alice"), uniq("bob")];
      const chat = await createChat(natter.url, natter.token(alice), "direct", [bob]);
      const pb = await proxy(t);
      const a = await connect(t, alice);
      const b = await connect(t, bob, { via: pb });
      const got = collector(b);
      await a.send(chat, "before");
      await waitFor(() => got.messages.length === 1, "first message");
      pb.refuse(true);
      const down = new Promise((r) => b.on("disconnected", r));
      pb.cut();
      await down;
      for (let i = 1; i <= 5; i++) await a.send(chat, `while away ${i}`);
      const back = new Promise((r) => b.on("connected", r));
      pb.refuse(false);
      const ev = await back;
      assert.equal(ev.resumed, true);
      await waitFor(() => got.messages.length >= 6, () => `bob has ${got.messages.length} of 6`);
      assert.deepEqual(seqs(got.messages), range(6));
      assert.ok(got.counts.synced >= 1, "resumed through sync");
      assert.equal(b.lastSeq(chat), 6);
    });

    test("a dead connection is detected by heartbeats and replaced", async (t) => {
      const [alice, bob] = [uniq("alice"), uniq("bob")];
      const chat = await createChat(natter.url, natter.token(alice), "direct", [bob]);
      const p = await proxy(t);
      const a = await connect(t, alice);
      const b = await connect(t, bob, { via: p, heartbeatMs: 200, heartbeatTimeoutMs: 300 });
      const got = collector(b);
      const down = new Promise((r) => b.on("disconnected", r));
      p.blackhole(true); // the connection stays open but nothing gets through
      const ev = await down;
      assert.match(ev.reason, /heartbeat/);
      p.cut();
      p.blackhole(false);
      await waitFor(() => b.state === "connected", "reconnected");
      await a.send(chat, "after the outage");
      await waitFor(() => got.messages.length === 1, "message after reconnect");
    });
  });
}

test("falls back to SSE by itself when WebSockets are blocked", async (t) => {
  const p = await startProxy(natter.port, { blockWebSocket: true });
  t.after(() => p.close());
  const c = await connect(t, uniq("carol"), { via: p });
  assert.equal(c.transport, "sse");
  assert.ok(p.upgradesBlocked >= 1, "a WebSocket was tried first");
  assert.ok((await c.ping()) >= 0, "ping round-trips over POST + SSE");
});

test("an expired token is refreshed through the callback", async (t) => {
  for (const transport of ["websocket", "sse"]) {
    const user = uniq("dave");
    let refreshed = 0;
    const c = new NatterClient({ url: natter.url, token: natter.token(user, "-1h"), WebSocket, transport,
      reconnectInitialMs: 20, refreshToken: () => { refreshed++; return natter.token(user); } });
    t.after(() => c.close());
    const connected = new Promise((r) => c.on("connected", r));
    c.connect();
    const ev = await connected;
    assert.equal(ev.userId, user, transport);
    assert.equal(refreshed, 1, transport);
  }
});

test("a bad token without a refresh callback closes with an error", async (t) => {
  const c = new NatterClient({ url: natter.url, token: "not-a-jwt", WebSocket, transport: "websocket" });
  t.after(() => c.close());
  const err = new Promise((r) => c.on("error", r));
  c.connect();
  assert.equal((await err).code, "unauthorized");
  await waitFor(() => c.state === "closed", "closed");
});

test("a refused send rejects with the server's code and is not retried", async (t) => {
  const [alice, bob, eve] = [uniq("alice"), uniq("bob"), uniq("eve")];
  const chat = await createChat(natter.url, natter.token(alice), "direct", [bob]);
  const c = await connect(t, eve);
  await assert.rejects(c.send(chat, "let me in"), (e) => e.code === "not_member" && e.retry === false);
  await assert.rejects(c.send("bad.chat", "x"), (e) => e.code === "invalid_id");
  assert.equal(c.pendingSends, 0);
});

test("receipts, typing and edit/delete/react frames reach the server", async (t) => {
  const [alice, bob] = [uniq("alice"), uniq("bob")];
  const chat = await createChat(natter.url, natter.token(alice), "direct", [bob]);
  const a = await connect(t, alice);
  const b = await connect(t, bob);
  const receipts = [];
  a.on("receipt", (r) => receipts.push(r));
  const ack = await a.send(chat, "read me");
  assert.equal(ack.duplicate, false);
  assert.equal(ack.seq, 1, "the ack comes once sequenced, with the seq");
  await waitFor(() => b.lastSeq(chat) === 1, "bob got it");
  b.markDelivered(chat, 1);
  b.markRead(chat, 1);
  await waitFor(() => receipts.some((r) => r.userId === bob && r.read === 1), "alice sees bob's read receipt");
  // The server may not support these yet; each must still be a well-formed frame that
  // is answered (acked, or refused with a stable code), never left hanging.
  for (const op of [() => a.edit(chat, ack.messageId, "edited"), () => a.react(chat, ack.messageId, "👍"), () => a.delete(chat, ack.messageId)]) {
    const r = await op().then((x) => ({ ok: x }), (e) => ({ err: e }));
    if (r.err) assert.match(r.err.code, /^[a-z_]+$/);
  }
  a.typing(chat);
  a.typing(chat); // throttled: one frame
});
