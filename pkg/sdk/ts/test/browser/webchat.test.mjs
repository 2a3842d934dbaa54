// The web chat in a real headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core) against a real `natter serve`: two users in two browser contexts.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { rest, startNatter } from "../harness.mjs";
import { OUT, launch } from "./helpers.mjs";

const XSS = "<img src=x onerror=alert(1)>";

let natter, browser;
before(async () => {
  natter = await startNatter();
  // playwright-core gives every launch a fresh temporary --user-data-dir of its own
  // (it refuses one in args); each user gets an isolated context within it.
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await natter?.stop();
});

/** A signed-in page for user, recording dialogs and page errors. */
async function signedIn(user) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await ctx.newPage();
  const seen = { dialogs: [], errors: [] };
  page.on("dialog", (d) => { seen.dialogs.push(d.message()); void d.dismiss(); });
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  await page.goto(natter.url + "/");
  await page.fill("#signin-user", user);
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector(`#me-name:text-is("${user}")`);
  await page.waitForSelector("#me-status.connected");
  return { page, seen, ctx };
}

const bubble = (page, text) => page.locator(".msg .bubble", { hasText: text });

test("two users chat in the browser: messages, typing, read ticks, history after reload, text stays text", async (t) => {
  const alice = `alice${process.pid}`;
  const bob = `bob${process.pid}`;
  const A = await signedIn(alice);
  const B = await signedIn(bob);
  t.after(async () => {
    // Kept whatever happened: the screenshots are how a person checks the UI.
    await A.page.screenshot({ path: join(OUT, "webchat-alice.png") }).catch(() => {});
    await B.page.screenshot({ path: join(OUT, "webchat-bob.png") }).catch(() => {});
    await A.ctx.close();
    await B.ctx.close();
  });

  // Alice starts a chat with Bob by typing his ID.
  await A.page.fill("#new-chat-user", bob);
  await A.page.press("#new-chat-user", "Enter");
  await A.page.waitForSelector(`#conv-title:text-is("${bob}")`);

  await A.page.fill("#input", "hello bob");
  await A.page.press("#input", "Enter");
  await bubble(A.page, "hello bob").waitFor();

  // Bob's list shows the chat with an unread badge; opening it shows the message.
  const bobsChat = B.page.locator("#chat-list li", { hasText: "hello bob" });
  await bobsChat.waitFor();
  assert.equal(await bobsChat.locator(".badge").textContent(), "1", "unread badge");
  await bobsChat.click();
  await bubble(B.page, "hello bob").waitFor();
  assert.equal(await bobsChat.locator(".badge").count(), 0, "badge cleared on open");

  // Bob has read it: Alice's message gets read ticks.
  await A.page.waitForSelector('.msg.mine .ticks[data-state="read"]');

  // Typing: shown to Alice while Bob types.
  await B.page.type("#input", "typing something", { delay: 20 });
  await A.page.waitForSelector(`#typing:text-is("${bob} is typing…")`, { timeout: 10000 });
  await B.page.fill("#input", "");

  // Bob answers; the hostile text arrives as text.
  await B.page.fill("#input", "hi alice");
  await B.page.press("#input", "Enter");
  await bubble(A.page, "hi alice").waitFor();
  await A.page.fill("#input", XSS);
  await A.page.press("#input", "Enter");
  const xss = bubble(B.page, XSS);
  await xss.waitFor();
  assert.equal(await xss.textContent(), XSS, "shown exactly as typed");
  assert.ok(await xss.isVisible(), "and visible");
  assert.equal(await B.page.locator(".messages img[src='x']").count(), 0, "no element was made from it");

  // Enough history for more than one page, then Bob reloads.
  const chatId = await A.page.evaluate(() => sessionStorage.getItem("natter.current"));
  const tok = natter.token(alice);
  for (let i = 1; i <= 40; i++) {
    const r = await rest(natter.url, "POST", `/api/v1/chats/${chatId}/messages`, tok, { content: `filler ${i}`, messageId: `filler-${i}` });
    assert.equal(r.status, 202);
  }
  await bubble(B.page, "filler 40").waitFor();
  await B.page.reload();
  await B.page.waitForSelector("#me-status.connected");
  await bubble(B.page, "filler 40").waitFor();
  // Infinite scroll: scrolling to the top loads older pages back to the first message.
  for (let i = 0; i < 10 && (await bubble(B.page, "hello bob").count()) === 0; i++) {
    await B.page.evaluate(() => { document.getElementById("messages").scrollTop = 0; });
    await B.page.waitForTimeout(200);
  }
  await bubble(B.page, "hello bob").waitFor();
  await bubble(B.page, "hi alice").waitFor();
  assert.equal(await bubble(B.page, XSS).textContent(), XSS, "after reload too");
  const seqs = await B.page.$$eval(".msg[data-seq]", (ns) => ns.map((n) => Number(n.dataset.seq)));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "history in seq order");
  assert.equal(new Set(seqs).size, seqs.length, "no message twice");

  assert.deepEqual(A.seen.dialogs, [], "no dialog fired on alice's page");
  assert.deepEqual(B.seen.dialogs, [], "no dialog fired on bob's page");
  assert.deepEqual([...A.seen.errors, ...B.seen.errors], [], "no script errors");

  await A.page.evaluate(() => { document.getElementById("messages").scrollTop = 1e9; });
});

// A 1x1 PNG.
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==", "base64");

test("attachments and message actions work, or say plainly the server lacks them", async (t) => {
  const carol = `carol${process.pid}`;
  const dan = `dan${process.pid}`;
  const C = await signedIn(carol);
  t.after(async () => {
    await C.page.screenshot({ path: join(OUT, "webchat-actions.png") }).catch(() => {});
    await C.ctx.close();
  });
  await C.page.fill("#new-chat-user", dan);
  await C.page.press("#new-chat-user", "Enter");
  await C.page.waitForSelector(`#conv-title:text-is("${dan}")`);
  await C.page.fill("#input", "react to me");
  await C.page.press("#input", "Enter");
  const msg = C.page.locator(".msg.mine", { hasText: "react to me" });
  await msg.locator('.ticks[data-state="sent"]').waitFor();

  // A reaction: shown on the message, or a plain notice that the server cannot yet.
  await msg.hover();
  await msg.locator(".actions button", { hasText: "👍" }).click();
  await C.page.waitForFunction(() => {
    const toast = document.getElementById("toast");
    return document.querySelector(".msg.mine .reactions") || (!toast.hidden && toast.textContent.length > 0);
  });
  const reacted = await msg.locator(".reactions").count();
  if (reacted === 0) assert.match(await C.page.textContent("#toast"), /does not support that yet/);

  // An image: previewed before sending; then sent, or refused with a plain notice.
  await C.page.setInputFiles("#file", { name: "dot.png", mimeType: "image/png", buffer: PNG });
  await C.page.waitForSelector("#preview img");
  assert.match(await C.page.textContent("#preview"), /dot\.png/);
  await C.page.click("#send");
  await C.page.waitForFunction(() => {
    const toast = document.getElementById("toast");
    return document.querySelector(".msg.mine .media") || (!toast.hidden && /Upload/.test(toast.textContent));
  });
  if ((await C.page.locator(".msg.mine .media").count()) === 0) {
    assert.match(await C.page.textContent("#toast"), /Uploads are not available|Upload failed/);
  }
  assert.deepEqual(C.seen.errors, [], "no script errors");
  assert.deepEqual(C.seen.dialogs, []);
});

test("the web chat is served with a strict CSP and the dev sign-in", async () => {
  const r = await fetch(natter.url + "/");
  assert.equal(r.status, 200);
  const csp = r.headers.get("content-security-policy");
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(r.headers.get("x-content-type-options"), "nosniff");
  const sdk = await fetch(natter.url + "/sdk/natter.js");
  assert.equal(sdk.status, 200);
  assert.match(sdk.headers.get("content-type"), /javascript/);
});

test("display names show instead of IDs, as text; an invitation is accepted from the list", async (t) => {
  const alice = `alice_n${process.pid}`;
  const bob = `bob_n${process.pid}`;
  const carol = `carol_n${process.pid}`;
  const B = await signedIn(bob);
  const A = await signedIn(alice);
  t.after(async () => {
    await B.page.screenshot({ path: join(OUT, "webchat-names-bob.png") }).catch(() => {});
    await A.ctx.close();
    await B.ctx.close();
  });
  // bob names himself (hostile markup stays text) and asks strangers to invite him.
  const name = "Bobby " + XSS;
  let r = await rest(natter.url, "PUT", "/api/v1/profile", natter.token(bob), { displayName: name, groupAdds: "contacts" });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r = await rest(natter.url, "PUT", "/api/v1/profile", natter.token(carol), { displayName: "Carol C" });
  assert.equal(r.status, 200, JSON.stringify(r.body));

  // carol, a stranger, adds bob to a group: bob sees an invitation and accepts it.
  r = await rest(natter.url, "POST", "/api/v1/chats", natter.token(carol), { type: "group", members: [bob], name: "book club" });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.deepEqual(r.body.invited, [bob]);
  const inv = B.page.locator("#invitations li", { hasText: "book club" });
  await inv.waitFor();
  // carol is a stranger to bob: her profile is not his to read, so her ID shows.
  assert.match(await inv.textContent(), new RegExp(`${carol} invited you`));
  await inv.locator("button", { hasText: "Accept" }).click();
  await B.page.waitForSelector('#conv-title:text-is("book club")');
  await bubble(B.page, "You joined").waitFor();
  await B.page.locator("#invitations li").waitFor({ state: "detached" });

  // alice opens a direct chat with bob: his name is the title, as text.
  await A.page.fill("#new-chat-user", bob);
  await A.page.press("#new-chat-user", "Enter");
  await A.page.waitForSelector(`#conv-title:text-is("${name}")`);
  await B.page.waitForSelector(`#me-name:text-is("${name}")`);
  assert.deepEqual([...A.seen.dialogs, ...B.seen.dialogs], [], "no script ran");
  assert.deepEqual([...A.seen.errors, ...B.seen.errors], []);
});
