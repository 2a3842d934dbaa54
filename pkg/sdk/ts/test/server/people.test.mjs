// Profiles, blocks and invitations through the SDK against a real `natter serve`
// that asks for consent to group adds.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { NatterClient, NatterError, displayName } from "../../dist/natter.js";
import { createChat, startNatter } from "../harness.mjs";

let natter;
before(async () => { natter = await startNatter(["--gateway.consent-direct-adds=false"]); });
after(async () => { await natter?.stop(); });

async function connect(t, user) {
  const c = new NatterClient({ url: natter.url, token: natter.token(user), WebSocket, connectTimeoutMs: 3000 });
  t.after(() => c.close());
  const connected = new Promise((r) => c.on("connected", r));
  c.connect();
  await connected;
  return c;
}

test("profiles, invitations and blocks", async (t) => {
  const alice = await connect(t, "alice");
  const bob = await connect(t, "bob");
  const me = await alice.setProfile({ displayName: "  Alice  " });
  assert.equal(me.displayName, "Alice");
  assert.equal(displayName(me, "alice"), "Alice");
  await assert.rejects(alice.setProfile({ displayName: "x\u202Ey" }), (e) => e instanceof NatterError && e.code === "bad_request");
  await assert.rejects(bob.userProfile("alice"), (e) => e instanceof NatterError && e.code === "not_found");

  // alice and bob share no chat: alice's add is an invitation, live to bob.
  const invited = new Promise((r) => bob.on("invitation", r));
  const chat = await createChat(natter.url, natter.token("alice"), "group", ["bob"], "club");
  const ev = await invited;
  assert.equal(ev.chatId, chat);
  assert.equal(ev.invitedBy, "alice");
  assert.equal(ev.state, "pending");
  const invs = await bob.invitations();
  assert.deepEqual(invs.map((i) => [i.chatId, i.chatName]), [[chat, "club"]]);
  await bob.acceptInvitation(chat);
  const profiles = await bob.chatProfiles(chat);
  assert.deepEqual(profiles.map((p) => displayName(p, p.userId)), ["Alice", "bob"]);

  await bob.block("alice");
  assert.deepEqual((await bob.blocks()).map((b) => b.userId), ["alice"]);
  await assert.rejects(alice.rest("POST", "/api/v1/chats", { type: "direct", members: ["bob"] }),
    (e) => e instanceof NatterError && e.code === "blocked" && e.retry === false);
  await bob.unblock("alice");
  await assert.rejects(bob.unblock("alice"), (e) => e instanceof NatterError && e.code === "not_found");
});
