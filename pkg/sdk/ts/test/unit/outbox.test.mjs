import { test } from "node:test";
import assert from "node:assert/strict";
import { Outbox, NatterError, backoffDelay, newId } from "../../dist/natter.js";

const send = (id, chatId = "c") => ({ type: "send", chatId, messageId: id, content: id });

test("Outbox keeps frames in order until acked", async () => {
  const ob = new Outbox();
  const a = ob.add(send("a"));
  ob.add(send("b"));
  ob.add(send("c"));
  assert.deepEqual(ob.pending().map((e) => e.frame.messageId), ["a", "b", "c"]);
  assert.equal(ob.ack({ chatId: "c", messageId: "b", seq: 2, duplicate: false }), true);
  assert.deepEqual(ob.pending().map((e) => e.frame.messageId), ["a", "c"]);
  assert.equal(ob.ack({ chatId: "c", messageId: "b", seq: 2, duplicate: true }), false, "a second ack for the same send settles nothing");
  ob.ack({ chatId: "c", messageId: "a", seq: 1, duplicate: true });
  assert.deepEqual(await a.promise, { chatId: "c", messageId: "a", seq: 1, duplicate: true });
  assert.equal(ob.size, 1);
});

test("Outbox is idempotent per chat and messageId", () => {
  const ob = new Outbox();
  const first = ob.add(send("x"));
  const again = ob.add(send("x"));
  assert.equal(first, again, "adding the same send returns the waiting entry");
  assert.equal(ob.size, 1);
  ob.add(send("x", "other-chat"));
  assert.equal(ob.size, 2, "the same messageId in another chat is another send");
});

test("Outbox resends keep the messageId; overdue finds unacked sends", () => {
  const ob = new Outbox();
  const e = ob.add(send("r"));
  assert.deepEqual(ob.overdue(1000, 100), [], "never written: not overdue");
  e.sentAt = 1000;
  e.attempts = 1;
  assert.deepEqual(ob.overdue(1050, 100), []);
  assert.deepEqual(ob.overdue(1100, 100).map((x) => x.frame.messageId), ["r"]);
  assert.equal(ob.overdue(1100, 100)[0].frame, e.frame, "the same frame object, so the same messageId, is resent");
});

test("Outbox rejects a refused send and everything on close", async () => {
  const ob = new Outbox();
  const a = ob.add(send("a"));
  const b = ob.add(send("b"));
  assert.equal(ob.fail("c", "a", new NatterError("not_member", "no")), true);
  await assert.rejects(a.promise, (e) => e.code === "not_member" && e.retry === false);
  ob.rejectAll(new NatterError("closed", "bye", { retry: false }));
  await assert.rejects(b.promise, (e) => e.code === "closed");
  assert.equal(ob.size, 0);
});

test("backoffDelay grows exponentially, is capped, and is jittered", () => {
  const cases = [
    { attempt: 0, r: 0, want: 250 }, { attempt: 0, r: 1, want: 500 },
    { attempt: 3, r: 0, want: 2000 }, { attempt: 3, r: 1, want: 4000 },
    { attempt: 20, r: 0, want: 15000 }, { attempt: 20, r: 1, want: 30000 },
    { attempt: 1000, r: 0.5, want: 22500 },
  ];
  for (const c of cases) assert.equal(backoffDelay(c.attempt, 500, 30000, () => c.r), c.want, JSON.stringify(c));
  const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(4, 500, 30000)));
  assert.ok(spread.size > 10, "delays are spread, not equal");
});

test("newId makes valid, distinct message IDs", () => {
  const seen = new Set();
  for (let i = 0; i < 1000; i++) {
    const id = newId();
    assert.match(id, /^[A-Za-z0-9_-]{1,64}$/);
    seen.add(id);
  }
  assert.equal(seen.size, 1000);
});

test("NatterError carries the code and retryability", () => {
  const cases = [
    { code: "rate_limited", retry: true }, { code: "unavailable", retry: true },
    { code: "not_member", retry: false }, { code: "bad_request", retry: false },
  ];
  for (const c of cases) {
    const e = NatterError.fromFrame({ type: "error", code: c.code, message: "m", chatId: "x", messageId: "y" });
    assert.equal(e.code, c.code);
    assert.equal(e.retry, c.retry, c.code);
    assert.equal(e.chatId, "x");
    assert.ok(e instanceof Error);
  }
});
