// The web chat shows the server's state, not its own guesses: after a reload and on
// a second device, unread badges, reaction counts and read ticks are what REST says
// (GET /chats, /messages, /receipts). Real Chromium, real `natter serve`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createChat, rest, startNatter } from "../harness.mjs";
import { agreesWithRest, bubble, launch, send, shot, signedIn, startChat, uiBadges, uiMessages } from "./helpers.mjs";

let natter, browser;
before(async () => {
  natter = await startNatter();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await natter?.stop();
});

/** react hovers the message with text on page and clicks emoji, then waits for the page to show it as the user's. */
async function react(page, text, emoji) {
  const msg = page.locator(".msg", { has: page.locator(".bubble", { hasText: text }) });
  await msg.hover();
  await msg.locator(".actions button", { hasText: emoji }).click();
  await msg.locator(`.reactions span.mine[data-emoji="${emoji}"]`).waitFor();
}

const idOf = (page, text) => page.locator(".msg", { has: page.locator(".bubble", { hasText: text }) }).getAttribute("data-id");

test("after a reload and on a second device: unread badges, reaction counts and read ticks are the server's", async (t) => {
  const ann = `ann${process.pid}`, ben = `ben${process.pid}`, cat = `cat${process.pid}`;
  const A = await signedIn(browser, natter.url, ann);
  const B = await signedIn(browser, natter.url, ben);
  let B2;
  t.after(async () => {
    await shot(A.page, "state-ann-after-reload");
    await shot(B.page, "state-ben-after-reload");
    if (B2) await shot(B2.page, "state-ben-second-device");
    for (const x of [A, B, B2]) await x?.ctx.close();
  });

  const dm = await startChat(A.page, ben);
  for (const text of ["one", "two", "three"]) await send(A.page, text);
  const row = B.page.locator(`#chat-list li[data-chat="${dm}"]`);
  await row.locator(".badge").waitFor();
  await row.click();
  await bubble(B.page, "three").waitFor();
  await react(B.page, "one", "👍");
  await react(A.page, "one", "👍");
  await react(B.page, "two", "❤️");
  const one = await idOf(A.page, "one");
  await A.page.locator(`.msg[data-id="${one}"] .reactions span[data-emoji="👍"]`, { hasText: "👍 2" }).waitFor();
  await A.page.locator('.msg.mine .ticks[data-state="read"]').nth(2).waitFor();

  // A group by someone else, unread for both: its badge is the server's count.
  const group = await createChat(natter.url, natter.token(cat), "group", [ann, ben], "Book club");
  for (let i = 1; i <= 3; i++) {
    const r = await rest(natter.url, "POST", `/api/v1/chats/${group}/messages`, natter.token(cat), { content: `chapter ${i}`, messageId: `ch-${i}` });
    assert.equal(r.status, 202);
  }
  await A.page.locator(`#chat-list li[data-chat="${group}"] .badge`).waitFor();
  await agreesWithRest(natter, A, dm);
  await agreesWithRest(natter, B, dm);

  // A reload: the same state, read from the server (no phantom badges, no doubled
  // reactions, ticks still "read").
  for (const X of [A, B]) {
    await X.page.reload();
    await X.page.waitForSelector("#me-status.connected");
    await bubble(X.page, "three").waitFor();
    await agreesWithRest(natter, X, dm);
    const msgs = await uiMessages(X.page);
    assert.deepEqual(msgs[one].reactions, { "👍": 2 }, `${X.user}: 👍 counted once per person after a reload`);
    assert.equal((await uiBadges(X.page))[group] > 0, true, `${X.user}: the group is still unread`);
  }
  const ticks = Object.values(await uiMessages(A.page)).map((m) => m.ticks).filter(Boolean);
  assert.deepEqual(ticks, ["read", "read", "read"], "ann's messages stay read after her reload");

  // Ben's second device: the same, from its first paint.
  B2 = await signedIn(browser, natter.url, ben);
  await B2.page.locator(`#chat-list li[data-chat="${dm}"]`).click();
  await bubble(B2.page, "three").waitFor();
  await agreesWithRest(natter, B2, dm);

  // Reading the group on one device clears its badge on the other, live.
  await B2.page.locator(`#chat-list li[data-chat="${group}"]`).click();
  await bubble(B2.page, "chapter 3").waitFor();
  await B.page.locator(`#chat-list li[data-chat="${group}"] .badge`).waitFor({ state: "detached" });
  await agreesWithRest(natter, B, dm);

  // A reaction or an edit arriving in a chat not open is not a message to read.
  const before = (await uiBadges(B2.page))[dm];
  await react(A.page, "two", "😂");
  await A.page.locator(".msg.mine", { hasText: "three" }).hover();
  await A.page.locator(".msg.mine", { hasText: "three" }).locator(".actions button", { hasText: "Edit" }).click();
  await A.page.fill("#input", "three (edited)");
  await A.page.press("#input", "Enter");
  await bubble(B.page, "three (edited)").waitFor();
  await bubble(B2.page, "chapter 3").waitFor();
  assert.equal((await uiBadges(B2.page))[dm], before, "no badge for a reaction or an edit");
  await B2.page.locator(`#chat-list li[data-chat="${dm}"] .last`, { hasText: "three (edited)" }).waitFor();
  await agreesWithRest(natter, B2, group);
  await agreesWithRest(natter, B, dm);

  for (const X of [A, B, B2]) {
    assert.deepEqual(X.seen.dialogs, [], `no dialog on ${X.user}'s page`);
    assert.deepEqual(X.seen.errors, [], `no script errors on ${X.user}'s page`);
  }
});
