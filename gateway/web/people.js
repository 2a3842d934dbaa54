// Display names and group invitations in the web chat (docs/protocol.md, "Profiles",
// "Invitations"). Names come from GET /api/v1/chats/{id}/profiles for the chats the
// user opens (and their own from GET /api/v1/profile); a user without a name shows
// as their ID. Invitations are listed above the chats, with Accept and Decline.
import { $, el, button, toast } from "./dom.js";
import { humanError } from "./errors.js";

const names = new Map(); // userId -> displayName
const loaded = new Set(); // chat IDs whose members' names were read

/** nameOf is what to show for userId: their display name, else the ID. */
export const nameOf = (userId) => names.get(userId) || userId;

/**
 * initPeople wires names and invitations. ctx: {S, rest(method, path, body),
 * renamed() after names changed, joined(chatId) after an invitation was accepted}.
 */
export function initPeople(ctx) {
  const { S } = ctx;

  /** loadNames reads the names of chatId's members (once per chat, again with force). */
  async function loadNames(chatId, force = false) {
    if (!force && loaded.has(chatId)) return;
    loaded.add(chatId);
    try {
      let after = "";
      for (;;) {
        const q = new URLSearchParams({ limit: "1000" });
        if (after) q.set("after", after);
        const page = await ctx.rest("GET", `/api/v1/chats/${encodeURIComponent(chatId)}/profiles?${q}`);
        for (const p of page.profiles || []) {
          if (p.displayName) names.set(p.userId, p.displayName);
          else names.delete(p.userId);
        }
        if (!page.hasMore || !page.cursor) break;
        after = page.cursor;
      }
      ctx.renamed();
    } catch { loaded.delete(chatId); /* names stay IDs; the next open retries */ }
  }

  /** loadMe reads the user's own name. */
  async function loadMe() {
    try {
      const p = await ctx.rest("GET", "/api/v1/profile");
      if (p.displayName) names.set(p.userId, p.displayName);
      ctx.renamed();
    } catch { /* shown as the ID */ }
  }

  /** editName asks for a new display name and saves it (the avatar stays). */
  async function editName() {
    const cur = names.get(S.me) || "";
    const v = prompt("Your display name (empty: show your user ID)", cur);
    if (v === null) return;
    try {
      const own = await ctx.rest("GET", "/api/v1/profile");
      const p = await ctx.rest("PUT", "/api/v1/profile", { displayName: v, avatar: own.avatar || "", groupAdds: own.groupAdds || "" });
      if (p.displayName) names.set(S.me, p.displayName);
      else names.delete(S.me);
      ctx.renamed();
    } catch (e) { toast(humanError(e, "name")); }
  }

  /** loadInvitations shows the user's pending invitations. */
  async function loadInvitations() {
    try {
      const r = await ctx.rest("GET", "/api/v1/invitations");
      renderInvitations(r.invitations || []);
    } catch { /* shown at the next connection */ }
  }

  function renderInvitations(invs) {
    const ul = $("invitations");
    ul.hidden = invs.length === 0;
    ul.replaceChildren(...invs.map((inv) => {
      const li = el("li");
      li.dataset.chat = inv.chatId;
      li.append(el("div", "mid", `${nameOf(inv.invitedBy)} invited you to ${inv.chatName ? "“" + inv.chatName + "”" : "a group"}`));
      const yes = button("Accept", "small");
      const no = button("Decline", "small link");
      yes.addEventListener("click", () => answer(inv.chatId, "accept"));
      no.addEventListener("click", () => answer(inv.chatId, "decline"));
      li.append(yes, no);
      return li;
    }));
  }

  async function answer(chatId, what) {
    try {
      await ctx.rest("POST", `/api/v1/invitations/${encodeURIComponent(chatId)}/${what}`);
      if (what === "accept") ctx.joined(chatId);
    } catch (e) { toast(humanError(e)); }
    void loadInvitations();
  }

  $("me-name").addEventListener("click", () => void editName());
  return { loadNames, loadMe, loadInvitations };
}
