// The TypeScript SDK's end-to-end crypto against the vectors the Go SDK's tests also
// check (pkg/client/e2ee/testdata/vectors.json): the same bytes, both ways.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { e2ee, Identity, Keyring, E2EEError } from "../../dist/natter.js";
import { repoRoot } from "../harness.mjs";

const v = JSON.parse(readFileSync(`${repoRoot}/pkg/client/e2ee/testdata/vectors.json`, "utf8"));
const { fromHex, fromB64, toB64 } = e2ee;
const boxCtx = (c) => ({ chatId: c.ChatID, senderUser: c.SenderUser, senderDevice: c.SenderDevice, recipientUser: c.RecipientUser, recipientDevice: c.RecipientDv, epoch: c.Epoch });
const msgCtx = (c) => ({ chatId: c.ChatID, senderUser: c.SenderUser, senderDevice: c.SenderDevice, messageId: c.MessageID, epoch: c.Epoch, counter: c.Counter });

async function keys() {
  const x = (h) => e2ee.importX25519(fromHex(h), true);
  const k = {
    sIK: await x(v.keys.SenderIK), rIK: await x(v.keys.RecipientIK), spk: await x(v.keys.RecipientSPK),
    otk: await x(v.keys.RecipientOTK), ek: await x(v.keys.EK),
    sSK: await e2ee.importEd25519(fromHex(v.keys.SenderSK), true), rSK: await e2ee.importEd25519(fromHex(v.keys.RecipientSK), true),
  };
  const bundle = async (ik, sk) => new Uint8Array([...(await e2ee.x25519Public(ik)), ...(await e2ee.ed25519Public(sk))]);
  k.sb = await bundle(k.sIK, k.sSK);
  k.rb = await bundle(k.rIK, k.rSK);
  return k;
}

test("the shared vectors: the same bytes as the Go SDK", async () => {
  const k = await keys();
  assert.equal(toB64(k.sb), v.senderBundle);
  assert.equal(toB64(k.rb), v.recipientBundle);
  assert.equal(await e2ee.fingerprint(k.sb), v.fingerprint);
  const spkPub = await e2ee.x25519Public(k.spk);
  assert.equal(toB64(await e2ee.signPreKey(k.rSK, v.spkId, spkPub)), v.spkSignature);
  await e2ee.verifyPreKey(k.rb, v.spkId, spkPub, fromB64(v.spkSignature));
  const chain = fromHex(v.chainKey);
  const to = { bundle: k.rb, spk: spkPub, otk: await e2ee.x25519Public(k.otk) };
  assert.equal(toB64(await e2ee.sealBox(k.sIK, k.sb, k.ek, to, boxCtx(v.boxContext), chain)), v.boxWithOneTimeKey);
  assert.equal(toB64(await e2ee.sealBox(k.sIK, k.sb, k.ek, { ...to, otk: undefined }, boxCtx(v.boxContext), chain)), v.boxWithoutOneTimeKey);
  const m = await e2ee.sealMessage(chain, k.sSK, msgCtx(v.messageContext), e2ee.utf8.encode(v.payload));
  assert.equal(toB64(m.ct), v.messageCiphertext);
  assert.equal(toB64(m.sig), v.messageSignature);
  assert.equal(toB64(await e2ee.sealFile(fromHex(v.fileKey), e2ee.utf8.encode(v.fileData))), v.fileCiphertext);
});

test("the shared vectors open, and are bound to their context", async () => {
  const k = await keys();
  const ekPub = await e2ee.x25519Public(k.ek);
  for (const [ct, otk] of [[v.boxWithOneTimeKey, k.otk], [v.boxWithoutOneTimeKey, undefined]]) {
    const pt = await e2ee.openBox(k.rIK, k.spk, otk, k.rb, k.sb, ekPub, boxCtx(v.boxContext), fromB64(ct));
    assert.equal(Buffer.from(pt).toString("hex"), v.chainKey);
    await assert.rejects(e2ee.openBox(k.rIK, k.spk, otk, k.rb, k.sb, ekPub, { ...boxCtx(v.boxContext), chatId: "chat_2" }, fromB64(ct)),
      (e) => e instanceof E2EEError && e.code === "decrypt");
  }
  const chain = fromHex(v.chainKey);
  const pt = await e2ee.openMessage(chain, k.sb, msgCtx(v.messageContext), fromB64(v.messageCiphertext), fromB64(v.messageSignature));
  assert.equal(e2ee.utf8.decode(pt), v.payload);
  await assert.rejects(e2ee.openMessage(chain, k.sb, { ...msgCtx(v.messageContext), messageId: "msg-0002" }, fromB64(v.messageCiphertext), fromB64(v.messageSignature)),
    (e) => e instanceof E2EEError && e.code === "signature");
  const file = await e2ee.openFile(fromHex(v.fileKey), fromB64(v.fileCiphertext));
  assert.equal(e2ee.utf8.decode(file), v.fileData);
});

test("keyrings: a sender key reaches each device, a rotation leaves out who is gone", async () => {
  const alice = new Keyring(await Identity.create("alice", "a1"));
  const bob = new Keyring(await Identity.create("bob", "b1"));
  const carol = new Keyring(await Identity.create("carol", "c1"));
  const dir = new Map();
  const devices = [];
  for (const k of [alice, bob, carol]) {
    dir.set(k.id.userId, new Map([[k.id.deviceId, k.id.bundle]]));
    const pub = await k.id.publish(2);
    devices.push({ user: k.id.userId, device: k.id.deviceId, spkId: pub.signedPreKey.id, spkSig: fromB64(pub.signedPreKey.signature),
      otkId: pub.oneTimeKeys[0].id, keys: { bundle: k.id.bundle, spk: fromB64(pub.signedPreKey.key), otk: fromB64(pub.oneTimeKeys[0].key) } });
  }
  const lookup = async (u) => dir.get(u) ?? new Map();
  alice.rotate("c");
  const dist = await alice.sealKeys("c", devices.slice(1));
  for (const k of [bob, carol]) assert.equal((await k.open("c", "alice", "k1", 1, dist, lookup)).keyFrom, true);
  const m1 = await alice.encrypt("c", "m1", { type: "text", text: "hi all" });
  for (const k of [alice, bob, carol]) assert.equal((await k.open("c", "alice", "m1", 2, m1, lookup)).payload.text, "hi all");
  // carol leaves: a new epoch goes to bob only.
  alice.markStale("c");
  assert.ok(alice.needsRotation("c"));
  alice.rotate("c");
  const bobAgain = { ...devices[1], otkId: undefined, keys: { ...devices[1].keys, otk: undefined } };
  const dist2 = await alice.sealKeys("c", [bobAgain]);
  await bob.open("c", "alice", "k2", 3, dist2, lookup);
  assert.equal((await carol.open("c", "alice", "k2", 3, dist2, lookup)).keyFrom, undefined);
  const m2 = await alice.encrypt("c", "m2", { type: "text", text: "carol is gone" });
  assert.equal((await bob.open("c", "alice", "m2", 4, m2, lookup)).payload.text, "carol is gone");
  await assert.rejects(carol.open("c", "alice", "m2", 4, m2, lookup), (e) => e.code === "no_key");
  // A forged identity is refused.
  const mallory = new Keyring(await Identity.create("alice", "a1"));
  mallory.rotate("c");
  const forged = await mallory.sealKeys("c", [bobAgain]);
  const fresh = new Keyring(bob.id);
  await assert.rejects(fresh.open("c", "alice", "k3", 5, forged, lookup), (e) => e.code === "untrusted");
});
