// Shared pieces of the web chat's browser tests: Debian's Chromium driven by
// playwright-core, signed-in pages, screenshots kept under test-output/, and reads
// of the REST state the page must agree with.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { rest, sdkRoot, waitFor } from "../harness.mjs";

export const CHROMIUM = process.env.NATTER_CHROMIUM ?? "/usr/bin/chromium";
/** OUT keeps the screenshots (git-ignored): how a person checks the layout. */
export const OUT = join(sdkRoot, "test-output");
export const DESKTOP = { width: 1100, height: 720 };
export const PHONE = { width: 390, height: 844 };

/** launch starts a headless Chromium (a fresh temporary profile per launch). */
export async function launch() {
  mkdirSync(OUT, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

/**
 * signedIn opens url (the web chat) in a new isolated context as user, recording
 * dialogs and page errors. isMobile pages get touch and a phone viewport.
 */
export async function signedIn(browser, url, user, { viewport = DESKTOP, mobile = false } = {}) {
  const ctx = await browser.newContext({ viewport, isMobile: mobile, hasTouch: mobile });
  const page = await ctx.newPage();
  const seen = { dialogs: [], errors: [] };
  page.on("dialog", (d) => { seen.dialogs.push(d.message()); void d.dismiss(); });
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  await page.goto(url + "/");
  await page.fill("#signin-user", user);
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector(`#me-name:text-is("${user}")`);
  await page.waitForSelector("#me-status.connected");
  return { page, seen, ctx, user };
}

/** shot saves a screenshot of page as test-output/<name>.png. */
export const shot = (page, name) => page.screenshot({ path: join(OUT, name + ".png") }).catch(() => {});

export const bubble = (page, text) => page.locator(".msg .bubble", { hasText: text });

/** startChat types ids (and a group name) into the new-chat form and waits for the conversation. */
export async function startChat(page, ids, name = "") {
  const prev = await page.evaluate(() => sessionStorage.getItem("natter.current"));
  await page.fill("#new-chat-user", ids);
  if (name) await page.fill("#new-chat-name", name);
  await page.press(name ? "#new-chat-name" : "#new-chat-user", "Enter");
  // The new chat is open once it is the current one (not the chat open before).
  const h = await page.waitForFunction((p) => {
    const c = sessionStorage.getItem("natter.current");
    return c && c !== p && !document.getElementById("conv-head").hidden && c;
  }, prev);
  return h.jsonValue();
}

/** send types text into the composer and waits until the server has it (no clock). */
export async function send(page, text) {
  await page.fill("#input", text);
  await page.press("#input", "Enter");
  await page.locator(".msg.mine", { hasText: text }).locator('.ticks:not([data-state="pending"])').waitFor();
}

/** restChats returns GET /api/v1/chats as user: chatId -> summary. */
export async function restChats(natter, user) {
  const r = await rest(natter.url, "GET", "/api/v1/chats?limit=200", natter.token(user));
  if (r.status !== 200) throw new Error(`GET /chats: ${r.status} ${JSON.stringify(r.body)}`);
  return new Map(r.body.chats.map((c) => [c.id, c]));
}

/** restHistory returns every message of chat as user sees it: messageId -> message. */
export async function restHistory(natter, user, chat) {
  const r = await rest(natter.url, "GET", `/api/v1/chats/${chat}/messages?limit=500`, natter.token(user));
  if (r.status !== 200) throw new Error(`GET messages: ${r.status} ${JSON.stringify(r.body)}`);
  return new Map(r.body.messages.map((m) => [m.messageId, m]));
}

/** restReceipts returns chat's watermarks: userId -> {delivered, read}. */
export async function restReceipts(natter, user, chat) {
  const r = await rest(natter.url, "GET", `/api/v1/chats/${chat}/receipts`, natter.token(user));
  if (r.status !== 200) throw new Error(`GET receipts: ${r.status} ${JSON.stringify(r.body)}`);
  return new Map(r.body.receipts.map((x) => [x.userId, x]));
}

/** uiBadges returns the chat list's unread badges: chatId -> count (0 without a badge). */
export const uiBadges = (page) => page.$$eval("#chat-list li", (lis) =>
  Object.fromEntries(lis.map((li) => [li.dataset.chat, Number(li.querySelector(".badge")?.textContent || 0)])));

/** uiMessages returns the open conversation's messages: messageId -> {seq, reactions, ticks}. */
export const uiMessages = (page) => page.$$eval(".msg[data-id]", (ns) => Object.fromEntries(ns.map((n) => [n.dataset.id, {
  seq: Number(n.dataset.seq),
  reactions: Object.fromEntries([...n.querySelectorAll(".reactions span")].map((s) => [s.dataset.emoji, Number(s.textContent.split(" ").pop())])),
  ticks: n.querySelector(".ticks")?.dataset.state || "",
}])));

/**
 * agreesWithRest waits until the page shows what REST says for user: every chat's
 * unread badge (the open chat none), and in the open chat every message's reaction
 * counts and the read ticks of user's own messages. It throws with both sides when
 * they still differ after the timeout.
 */
export async function agreesWithRest(natter, A, chat) {
  let last = "";
  await waitFor(async () => {
    const [chats, hist, rcpt, badges, msgs] = await Promise.all([restChats(natter, A.user), restHistory(natter, A.user, chat),
      restReceipts(natter, A.user, chat), uiBadges(A.page), uiMessages(A.page)]);
    const want = { badges: {}, msgs: {} };
    for (const [id, c] of chats) want.badges[id] = id === chat ? 0 : c.unread;
    for (const id of Object.keys(msgs)) {
      const m = hist.get(id);
      if (!m) continue;
      let ticks = "";
      if (m.senderId === A.user && m.messageType !== "system") {
        ticks = "sent";
        for (const [u, r] of rcpt) {
          if (u === A.user) continue;
          if (r.read >= m.seq) ticks = "read";
          else if (r.delivered >= m.seq && ticks !== "read") ticks = "delivered";
        }
      }
      want.msgs[id] = { seq: m.seq, reactions: Object.fromEntries((m.reactions || []).map((r) => [r.emoji, r.count])), ticks };
    }
    const got = { badges, msgs: Object.fromEntries(Object.entries(msgs).filter(([id]) => hist.has(id))) };
    last = `page ${JSON.stringify(got)}\nREST ${JSON.stringify(want)}`;
    return JSON.stringify(sortKeys(got)) === JSON.stringify(sortKeys(want)) && Object.keys(got.msgs).length > 0;
  }, () => `${A.user}'s page to agree with REST:\n${last}`, 15000);
}

function sortKeys(v) {
  if (Array.isArray(v) || v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
}
