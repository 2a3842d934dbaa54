// The web chat's end-to-end encrypted chats in headless Chromium: two users in two
// browsers create an encrypted chat, exchange text and an attachment (decrypted in
// the page), one reloads and still reads the history (keys kept in IndexedDB), and
// the server holds only ciphertext: its history, the stored media and the chat list
// preview never show the plaintext.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { rest, startNatter } from "../harness.mjs";
import { bubble, launch, shot, signedIn, startChat, uiBadges } from "./helpers.mjs";

let natter, browser;
before(async () => {
  natter = await startNatter();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await natter?.stop();
});

/** sendEncrypted types text and waits until the server has it (the tick leaves "pending"). */
async function sendEncrypted(page, text) {
  await page.fill("#input", text);
  await page.press("#input", "Enter");
  await page.locator(".msg.mine", { hasText: text }).locator('.ticks:not([data-state="pending"])').waitFor();
}

test("an encrypted chat: text and an attachment both ways, history after a reload, ciphertext on the server", async (t) => {
  const ann = `ann${process.pid}`, ben = `ben${process.pid}`;
  const A = await signedIn(browser, natter.url, ann);
  const B = await signedIn(browser, natter.url, ben);
  t.after(async () => {
    await shot(A.page, "e2ee-ann-desktop");
    await shot(B.page, "e2ee-ben-desktop");
    for (const X of [A, B]) await X.ctx.close();
  });
  // Both browsers published their device keys.
  for (const u of [ann, ben]) {
    await (async () => {
      for (let i = 0; i < 100; i++) {
        const r = await rest(natter.url, "GET", `/api/v1/keys/users/${u}?claim=false`, natter.token(u));
        if (r.status === 200 && r.body.devices?.length === 1) return;
        await new Promise((res) => setTimeout(res, 50));
      }
      throw new Error(`${u}'s browser did not publish its keys`);
    })();
  }

  await A.page.check("#new-chat-e2ee");
  const chat = await startChat(A.page, ben);
  await A.page.waitForSelector('#conv-head[data-encrypted="1"]');
  assert.match(await A.page.textContent("#conv-sub"), /End-to-end encrypted/);
  const r = await rest(natter.url, "GET", `/api/v1/chats/${chat}`, natter.token(ann));
  assert.equal(r.body.encrypted, true, "the server made an encrypted chat");

  await sendEncrypted(A.page, "the treasure is under the old oak");
  await B.page.locator(`#chat-list li[data-chat="${chat}"]`).click();
  await bubble(B.page, "the treasure is under the old oak").waitFor();
  await B.page.waitForSelector('#conv-head[data-encrypted="1"]');
  await sendEncrypted(B.page, "bring a shovel and the map");
  await bubble(A.page, "bring a shovel and the map").waitFor();

  // An attachment: encrypted in ann's page, decrypted in ben's.
  const secretFile = Buffer.from("MAP-PLAINTEXT: ten paces north of the oak\n");
  await A.page.setInputFiles("#file", { name: "map.txt", mimeType: "text/plain", buffer: secretFile });
  await A.page.press("#input", "Enter");
  const link = B.page.locator(".msg .file", { hasText: "map.txt" });
  await link.waitFor();
  const [download] = await Promise.all([B.page.waitForEvent("download"), link.click()]);
  assert.deepEqual(readFileSync(await download.path()), secretFile, "ben's page decrypted ann's file");

  // The server has ciphertext only: history, media and the chat list's preview.
  const h = await rest(natter.url, "GET", `/api/v1/chats/${chat}/messages?limit=100`, natter.token(ben));
  assert.equal(h.status, 200);
  const raw = JSON.stringify(h.body);
  for (const p of ["treasure", "shovel", "MAP-PLAINTEXT", "map.txt"]) assert.ok(!raw.includes(p), `${p} is not in the server's history`);
  assert.ok(h.body.messages.filter((m) => m.messageType !== "system").every((m) => m.messageType === "encrypted" || m.messageType === "encrypted_keys"), "every user message is ciphertext");
  // Each page's sender key went out as a key distribution of its own type, which no badge counts.
  for (const u of [ann, ben]) assert.ok(h.body.messages.some((m) => m.messageType === "encrypted_keys" && m.senderId === u), `${u}'s page sent its key distribution as encrypted_keys`);
  const fileMsg = h.body.messages.find((m) => m.messageType === "encrypted" && m.senderId === ann && m.content.length > 0);
  assert.ok(fileMsg);
  const chats = await rest(natter.url, "GET", "/api/v1/chats", natter.token(ann));
  assert.ok(!JSON.stringify(chats.body).includes("treasure"));

  // ben reloads: the page reads the history again with the keys kept in IndexedDB.
  await B.page.reload();
  await B.page.waitForSelector("#me-status.connected");
  await B.page.locator(`#chat-list li[data-chat="${chat}"]`).click();
  await bubble(B.page, "the treasure is under the old oak").waitFor();
  await bubble(B.page, "bring a shovel and the map").waitFor();
  await B.page.locator(".msg .file", { hasText: "map.txt" }).waitFor();
  assert.equal(await B.page.locator(".msg .bubble", { hasText: "cannot be decrypted" }).count(), 0);
  await sendEncrypted(B.page, "after my reload: same device, same keys");
  await bubble(A.page, "after my reload: same device, same keys").waitFor();

  // A key distribution is no message to read: with the encrypted chat in the
  // background, ben's badge counts ann's two messages and not the distribution sent
  // between them (encrypted_keys), live and as the server counts after a reload.
  await startChat(B.page, ann); // their plain chat, so the encrypted one is not open
  await sendEncrypted(A.page, "first while ben looks elsewhere");
  const keys = await rest(natter.url, "POST", `/api/v1/chats/${chat}/messages`, natter.token(ann),
    { messageType: "encrypted_keys", content: JSON.stringify({ v: 1, t: "keys", dev: "nobody", ep: 1, ik: "AAAA", boxes: [] }) });
  assert.equal(keys.status, 202, JSON.stringify(keys.body));
  await sendEncrypted(A.page, "second while ben looks elsewhere");
  const badgeIs = async (n) => {
    await B.page.waitForFunction(([id, n]) => Number(document.querySelector(`#chat-list li[data-chat="${id}"] .badge`)?.textContent || 0) >= n, [chat, n]);
    return (await uiBadges(B.page))[chat];
  };
  assert.equal(await badgeIs(2), 2, "ben's badge counts the two messages, not the distribution");
  const listed = await rest(natter.url, "GET", "/api/v1/chats", natter.token(ben));
  assert.equal(listed.body.chats.find((c) => c.id === chat)?.unread, 2, "so does the server");
  await B.page.reload();
  await B.page.waitForSelector("#me-status.connected");
  assert.equal(await badgeIs(2), 2, "and the badge after a reload");
  assert.deepEqual(A.seen.errors, []);
  assert.deepEqual(B.seen.errors, []);
});
