import { test } from "node:test";
import assert from "node:assert/strict";
import { ChatOrderer } from "../../dist/natter.js";

const msg = (seq, id = `m${seq}`) => ({ chatId: "c", seq, messageId: id, senderId: "a", content: `t${seq}`, messageType: "text" });
const seqs = (ms) => ms.map((m) => m.seq);

/** Pushes seqs in the given order; returns every delivered seq, in delivery order. */
function run(order, start = 0) {
  const o = new ChatOrderer("c", start);
  const out = [];
  for (const s of order) out.push(...seqs(o.push(typeof s === "number" ? msg(s) : s).deliver));
  return { o, out };
}

test("ChatOrderer delivers in seq order whatever the arrival order", () => {
  const cases = [
    { name: "in order", order: [1, 2, 3, 4, 5] },
    { name: "reversed", order: [5, 4, 3, 2, 1] },
    { name: "interleaved", order: [2, 1, 4, 3, 5] },
    { name: "one late", order: [2, 3, 4, 5, 1] },
    { name: "shuffled", order: [3, 5, 1, 4, 2] },
  ];
  for (const c of cases) {
    const { o, out } = run(c.order);
    assert.deepEqual(out, [1, 2, 3, 4, 5], c.name);
    assert.equal(o.lastSeq, 5, c.name);
    assert.equal(o.gap(), undefined, c.name);
  }
});

test("ChatOrderer detects a gap and holds what is after it", () => {
  const o = new ChatOrderer("c", 0);
  assert.deepEqual(seqs(o.push(msg(1)).deliver), [1]);
  assert.deepEqual(seqs(o.push(msg(4)).deliver), [], "4 waits for 2 and 3");
  assert.deepEqual(seqs(o.push(msg(6)).deliver), []);
  assert.deepEqual(o.gap(), { after: 1, before: 4 });
  assert.equal(o.heldCount, 2);
  assert.equal(o.highestSeq, 6);
  assert.deepEqual(seqs(o.push(msg(2)).deliver), [2]);
  assert.deepEqual(o.gap(), { after: 2, before: 4 });
  assert.deepEqual(seqs(o.push(msg(3)).deliver), [3, 4], "filling the gap releases what waited");
  assert.deepEqual(o.gap(), { after: 4, before: 6 });
  assert.deepEqual(seqs(o.push(msg(5)).deliver), [5, 6]);
  assert.equal(o.gap(), undefined);
});

test("ChatOrderer drops duplicates by seq and by messageId", () => {
  const cases = [
    { name: "same message twice", order: [1, 1, 2], want: [1, 2] },
    { name: "old seq after the watermark", order: [1, 2, 3, 2, 1], want: [1, 2, 3] },
    { name: "held message twice", order: [3, 3, 1, 2], want: [1, 2, 3] },
    { name: "same messageId at a new seq", order: [msg(1, "x"), msg(2, "x"), msg(3, "y")], want: [1, 3] },
    { name: "same messageId held then released", order: [msg(3, "x"), msg(1, "x"), msg(2, "z")], want: [1, 2] },
  ];
  for (const c of cases) assert.deepEqual(run(c.order).out, c.want, c.name);
  const o = new ChatOrderer("c", 0);
  o.push(msg(1));
  assert.equal(o.push(msg(1)).duplicate, true);
  assert.equal(o.push(msg(5)).duplicate, false);
  assert.equal(o.push(msg(5)).duplicate, true);
});

test("ChatOrderer resumes from a cursor", () => {
  const { out, o } = run([11, 12, 10, 9], 10);
  assert.deepEqual(out, [11, 12], "seqs at or below the cursor were seen in an earlier session");
  assert.equal(o.lastSeq, 12);
});

test("ChatOrderer bounds its messageId memory", () => {
  const o = new ChatOrderer("c", 0, 3);
  for (let i = 1; i <= 10; i++) o.push(msg(i));
  assert.equal(o.lastSeq, 10);
  // m1 fell out of the ID memory but its seq is below the watermark: still a duplicate.
  assert.equal(o.push(msg(1)).duplicate, true);
});

test("ChatOrderer.skip advances past seqs that are gone and releases what waited for them", () => {
  const { o } = run([1, 4, 5, 8]);
  assert.deepEqual(o.skip(1), [], "at or below lastSeq: nothing");
  assert.deepEqual(seqs(o.skip(3)), [4, 5], "2 and 3 gone: 4 and 5 follow");
  assert.equal(o.lastSeq, 5);
  assert.deepEqual(seqs(o.skip(9)), [8], "6, 7 and 9 gone; 8 was held below it");
  assert.equal(o.lastSeq, 9);
  assert.equal(o.gap(), undefined);
  const late = o.push(msg(7));
  assert.ok(late.duplicate, "a skipped seq arriving late is below the order");
  assert.deepEqual(late.deliver, []);
});
