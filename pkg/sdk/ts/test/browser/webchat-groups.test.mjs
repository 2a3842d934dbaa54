// The web chat's groups (name, members, add, remove, rename, leave), its errors in
// words, its phone layout (list and conversation as two screens), the banner while
// the connection is lost, and media and actions that keep the conversation readable.
// Screenshots at desktop and phone width are kept in test-output/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { rest, startNatter, startProxy } from "../harness.mjs";
import { PHONE, bubble, launch, send, shot, signedIn, startChat } from "./helpers.mjs";

let natter, browser;
before(async () => {
  natter = await startNatter();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await natter?.stop();
});

const RAW_CODE = /\b(invalid_id|not_member|conflict|forbidden|bad_request|not_found|too_large|unavailable):/;

/** noRawCodes asserts no error code shows anywhere on the page. */
async function noRawCodes(page) {
  const text = await page.evaluate(() => document.body.innerText);
  assert.doesNotMatch(text, RAW_CODE, "an error code reached the page");
}

const memberNames = (page) => page.$$eval("#member-list li", (lis) => lis.map((li) => li.dataset.user));

test("groups have a name, a member list, add, remove, rename and leave; errors are in words", async (t) => {
  const erin = `erin${process.pid}`, frank = `frank${process.pid}`, grace = `grace${process.pid}`, heidi = `heidi${process.pid}`;
  const E = await signedIn(browser, natter.url, erin);
  const F = await signedIn(browser, natter.url, frank);
  const G = await signedIn(browser, natter.url, grace);
  t.after(async () => {
    await shot(E.page, "groups-erin-desktop");
    await shot(F.page, "groups-frank-desktop");
    await shot(G.page, "groups-grace-removed-desktop");
    for (const X of [E, F, G]) await X.ctx.close();
  });

  // A group without a name is called after the others, never after oneself.
  await startChat(E.page, `${erin}, ${frank}, ${grace}`);
  assert.equal(await E.page.textContent("#conv-title"), `${frank}, ${grace}`);

  // A named group.
  const chat = await startChat(E.page, `${frank}, ${grace}`, "Trip");
  assert.equal(await E.page.textContent("#conv-title"), "Trip");
  await E.page.locator(`#chat-list li[data-chat="${chat}"] .name`, { hasText: "Trip" }).waitFor();
  await E.page.waitForSelector('#conv-sub:text-is("3 members")');
  await send(E.page, "packing list?");
  await F.page.locator(`#chat-list li[data-chat="${chat}"]`, { hasText: "Trip" }).click();
  await bubble(F.page, "packing list?").waitFor();
  assert.equal(await F.page.textContent("#conv-title"), "Trip");
  await G.page.locator(`#chat-list li[data-chat="${chat}"]`, { hasText: "Trip" }).click();
  await bubble(G.page, "packing list?").waitFor();

  // The member list, with roles; the admin's controls.
  await E.page.click("#info-btn");
  await E.page.waitForSelector("#info:not([hidden])");
  await E.page.waitForFunction((n) => document.querySelectorAll("#member-list li").length === n, 3);
  assert.deepEqual(await memberNames(E.page), [erin, frank, grace]);
  assert.match(await E.page.textContent(`#member-list li[data-user="${erin}"]`), /\(you\).*admin/);
  assert.ok(await E.page.isVisible("#rename-form"));
  assert.ok(await E.page.isVisible("#add-member"));

  // Bad input gets words, not codes; nothing changes.
  await E.page.fill("#add-member-user", "not valid!");
  await E.page.press("#add-member-user", "Enter");
  assert.match(await E.page.textContent("#info-error"), /not a valid user ID: use letters, digits/);

  // Add, remove, rename: every member sees each change, in order.
  await E.page.fill("#add-member-user", heidi);
  await E.page.press("#add-member-user", "Enter");
  await E.page.locator(`#member-list li[data-user="${heidi}"]`).waitFor();
  assert.equal(await E.page.textContent("#info-error"), "");
  await bubble(F.page, `${erin} added ${heidi}`).waitFor();
  await E.page.locator(`#member-list li[data-user="${grace}"] button`, { hasText: "Remove" }).click();
  await E.page.locator(`#member-list li[data-user="${grace}"]`).waitFor({ state: "detached" });
  await bubble(F.page, `${erin} removed ${grace}`).waitFor();
  // The removed member is told so, and can no longer write there.
  await G.page.waitForSelector("#gone:not([hidden])");
  assert.equal(await G.page.textContent("#gone"), `${erin} removed you from this group.`);
  assert.equal(await G.page.isVisible("#composer"), false);
  assert.equal(await G.page.isVisible("#info-btn"), false);
  await E.page.fill("#rename-input", "Trip 2026");
  await E.page.press("#rename-input", "Enter");
  await E.page.waitForSelector('#conv-title:text-is("Trip 2026")');
  await F.page.waitForSelector('#conv-title:text-is("Trip 2026")');
  await F.page.locator(`#chat-list li[data-chat="${chat}"] .name`, { hasText: "Trip 2026" }).waitFor();
  await bubble(F.page, "renamed the group to “Trip 2026”").waitFor();
  await shot(E.page, "groups-panel-desktop");

  // The only admin may not leave while others stay: said in words.
  await E.page.click("#leave");
  await E.page.click("#leave");
  await E.page.waitForFunction(() => document.getElementById("info-error").textContent.length > 0);
  assert.match(await E.page.textContent("#info-error"), /only admin: make another member an admin/);
  await noRawCodes(E.page);

  // A member sees the list but not the admin's controls, and may leave.
  await F.page.click("#info-btn");
  await F.page.waitForFunction((n) => document.querySelectorAll("#member-list li").length === n, 3);
  assert.deepEqual(await memberNames(F.page), [erin, frank, heidi]);
  assert.equal(await F.page.isVisible("#rename-form"), false);
  assert.equal(await F.page.isVisible("#add-member"), false);
  assert.equal(await F.page.locator("#member-list button").count(), 0);
  assert.equal(await F.page.textContent("#info-name"), "Trip 2026");
  await F.page.click("#leave");
  await F.page.click("#leave");
  await F.page.locator(`#chat-list li[data-chat="${chat}"]`).waitFor({ state: "detached" });
  assert.ok(await F.page.isVisible("#empty"), "back to no open chat");
  await bubble(E.page, `${frank} left`).waitFor();
  await E.page.waitForFunction((n) => document.querySelectorAll("#member-list li").length === n, 2);

  // Starting a chat with a bad ID: words again.
  await E.page.fill("#new-chat-user", "no such!");
  await E.page.press("#new-chat-user", "Enter");
  assert.match(await E.page.textContent("#new-chat-error"), /"no such!" is not a valid user ID/);
  await noRawCodes(E.page);
  await noRawCodes(F.page);
  await noRawCodes(G.page);
  assert.equal(await G.page.isVisible("#toast"), false, "no error for the removed member");
  for (const X of [E, F, G]) {
    assert.deepEqual(X.seen.dialogs, []);
    assert.deepEqual(X.seen.errors, []);
  }
});

test("at 390 px the list and the conversation are two screens; a lost connection shows a banner", async (t) => {
  const ivy = `ivy${process.pid}`, jan = `jan${process.pid}`;
  const proxy = await startProxy(natter.port);
  const P = await signedIn(browser, proxy.url, ivy, { viewport: PHONE, mobile: true });
  t.after(async () => {
    await P.ctx.close();
    await proxy.close();
  });
  const visible = (sel) => P.page.isVisible(sel);

  // The placeholder of the new-chat field fits in it.
  const fits = await P.page.$eval("#new-chat-user", (i) => {
    const s = getComputedStyle(i);
    const ctx = document.createElement("canvas").getContext("2d");
    ctx.font = `${s.fontSize} ${s.fontFamily}`;
    return ctx.measureText(i.placeholder).width <= i.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
  });
  assert.ok(fits, "the placeholder is not cut off");

  // The list screen: no conversation beside it.
  assert.ok(await visible("#chat-list"));
  assert.equal(await visible("#conversation"), false);
  await startChat(P.page, jan);
  // The conversation screen: the list gone, a way back.
  assert.equal(await visible("#chat-list"), false);
  assert.ok(await visible("#back"));
  for (const text of ["hi jan", "are you coming on friday? the long message wraps inside its bubble without pushing the layout sideways"]) await send(P.page, text);
  const r = await rest(natter.url, "POST", `/api/v1/chats/${await P.page.evaluate(() => sessionStorage.getItem("natter.current"))}/messages`,
    natter.token(jan), { content: "yes! see you there", messageId: "jan-1" });
  assert.equal(r.status, 202);
  await bubble(P.page, "see you there").waitFor();
  const overflow = await P.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow, 0, "nothing wider than the phone");
  await shot(P.page, "phone-conversation");
  await P.page.click("#back");
  assert.ok(await visible("#chat-list"));
  assert.equal(await visible("#conversation"), false);
  await shot(P.page, "phone-list");
  // The browser's (or the phone's) back button does the same.
  await P.page.locator("#chat-list li").first().click();
  await P.page.waitForSelector("#back", { state: "visible" });
  await P.page.goBack();
  await P.page.waitForSelector("#chat-list", { state: "visible" });
  assert.equal(await visible("#conversation"), false);

  // Connection lost: a banner says so, and presence is not claimed.
  await P.page.locator("#chat-list li").first().click();
  proxy.refuse(true);
  proxy.cut();
  await P.page.waitForSelector("#banner:not([hidden])");
  assert.match(await P.page.textContent("#banner"), /Reconnecting/);
  await P.page.waitForSelector("#me-status.reconnecting", { state: "attached" });
  assert.equal(await P.page.textContent("#conv-sub"), "waiting for the connection");
  await shot(P.page, "phone-reconnecting");
  proxy.refuse(false);
  await P.page.waitForSelector("#me-status.connected", { state: "attached", timeout: 40000 });
  await P.page.waitForSelector("#banner", { state: "hidden" });

  // The group panel is a screen of its own too.
  await P.page.click("#back");
  await startChat(P.page, `${jan}, kim${process.pid}`, "Friday");
  await send(P.page, "who brings what?");
  await shot(P.page, "phone-group-conversation");
  await P.page.click("#info-btn");
  await P.page.waitForFunction(() => document.querySelectorAll("#member-list li").length === 3);
  const box = await P.page.locator("#info").boundingBox();
  assert.equal(Math.round(box.width), PHONE.width, "the panel fills the phone's width");
  await shot(P.page, "phone-group-panel");
  assert.deepEqual(P.seen.errors, []);
});

/** png returns a w×h PNG of one colour. */
function png(w, h, [r, g, b]) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: w }, () => [r, g, b]).flat())]);
  const raw = Buffer.concat(Array.from({ length: h }, () => row));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

const overlaps = (a, b) => a && b && a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

test("a received image is scrolled fully into view; the action bar covers no other message", async (t) => {
  const kai = `kai${process.pid}`, lea = `lea${process.pid}`;
  const K = await signedIn(browser, natter.url, kai);
  const L = await signedIn(browser, natter.url, lea);
  t.after(async () => {
    await shot(L.page, "image-received-desktop");
    await K.ctx.close();
    await L.ctx.close();
  });
  const chat = await startChat(K.page, lea);
  for (let i = 1; i <= 25; i++) {
    const r = await rest(natter.url, "POST", `/api/v1/chats/${chat}/messages`, natter.token(kai), { content: `line ${i}`, messageId: `line-${i}` });
    assert.equal(r.status, 202);
  }
  await L.page.locator(`#chat-list li[data-chat="${chat}"]`).click();
  await bubble(L.page, "line 25").waitFor();

  await K.page.setInputFiles("#file", { name: "photo.png", mimeType: "image/png", buffer: png(240, 220, [47, 111, 237]) });
  await K.page.waitForSelector("#preview img");
  await K.page.click("#send");
  const img = L.page.locator(".msg .media img");
  await img.waitFor();
  await L.page.waitForFunction(() => {
    const i = document.querySelector(".msg .media img");
    const box = document.getElementById("messages").getBoundingClientRect();
    const r = i?.getBoundingClientRect();
    return i?.complete && i.naturalWidth === 240 && r.height > 100 && r.bottom <= box.bottom + 1 && r.top >= box.top;
  }, null, { timeout: 10000 });

  // The action bar of a message stays clear of the messages around it.
  const msg = L.page.locator(".msg", { has: L.page.locator(".bubble", { hasText: "line 24" }) });
  await msg.hover();
  const bar = await msg.locator(".actions").boundingBox();
  const above = await L.page.locator(".msg", { has: L.page.locator(".bubble", { hasText: "line 23" }) }).boundingBox();
  const below = await L.page.locator(".msg", { has: L.page.locator(".bubble", { hasText: "line 25" }) }).boundingBox();
  assert.ok(bar && bar.height > 0, "the bar shows on hover");
  assert.ok(!overlaps(bar, above), `bar ${JSON.stringify(bar)} covers the message above ${JSON.stringify(above)}`);
  assert.ok(!overlaps(bar, below), `bar ${JSON.stringify(bar)} covers the message below ${JSON.stringify(below)}`);
  await shot(L.page, "actions-hover-desktop");
  assert.deepEqual([...K.seen.errors, ...L.seen.errors], []);
});
