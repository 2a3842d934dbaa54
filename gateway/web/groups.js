// The group panel of the web chat: the group's name (admins rename it), its members
// with their roles (admins add, remove and promote them) and leaving. Every change
// goes through the REST API (docs/protocol.md, "Chats and members"); the system
// event it sequences into the chat then updates every member's view.
import { $, el, button } from "./dom.js";
import { ID_RULE, humanError, validUserId } from "./errors.js";

/**
 * initGroups wires the panel. ctx: {S (the app state), rest(method, path, body),
 * changed(c) after a chat's name or members changed, left(c) after the user left}.
 * It returns {open(c), close(), render(c), loadMembers(c)}.
 */
export function initGroups(ctx) {
  const { S } = ctx;
  let shown = null; // the chat whose panel is open

  /** loadMembers fetches c's members into c.members ([{userId, role}]). */
  async function loadMembers(c) {
    const r = await ctx.rest("GET", `/api/v1/chats/${encodeURIComponent(c.id)}/members`);
    c.members = (r.members || []).map((m) => ({ userId: m.userId, role: m.role }));
    return c.members;
  }

  const isAdmin = (c) => c.members?.some((m) => m.userId === S.me && m.role === "admin");

  function fail(e, doing) { $("info-error").textContent = humanError(e, doing); }

  function render(c) {
    if (!shown || c.id !== shown.id) return;
    const admin = isAdmin(c);
    $("rename-form").hidden = !admin;
    if (document.activeElement !== $("rename-input")) $("rename-input").value = c.name || "";
    $("info-name").hidden = admin;
    $("info-name").textContent = c.name || "This group has no name yet.";
    $("add-member").hidden = !admin;
    const ms = c.members || [];
    $("members-title").textContent = `Members (${ms.length})`;
    $("member-list").replaceChildren(...ms.map((m) => {
      const li = el("li");
      li.dataset.user = m.userId;
      li.append(el("span", "who", m.userId === S.me ? `${m.userId} (you)` : m.userId));
      if (m.role === "admin") li.append(el("span", "role", "admin"));
      if (admin && m.userId !== S.me) {
        if (m.role !== "admin") {
          const up = button("Make admin", "link", `Make ${m.userId} an admin`);
          up.addEventListener("click", () => change("POST", "/members", { userId: m.userId, role: "admin" }, "addMember"));
          li.append(up);
        }
        const rm = button("Remove", "link danger-text", `Remove ${m.userId} from the group`);
        rm.addEventListener("click", () => change("DELETE", `/members/${encodeURIComponent(m.userId)}`, undefined, "removeMember"));
        li.append(rm);
      }
      return li;
    }));
  }

  /** change makes a REST change to the shown chat, then reloads its members. */
  async function change(method, path, body, doing) {
    const c = shown;
    if (!c) return false;
    $("info-error").textContent = "";
    try {
      const r = await ctx.rest(method, `/api/v1/chats/${encodeURIComponent(c.id)}${path}`, body);
      if (typeof r?.name === "string") c.name = r.name;
      // An add of someone who shares no chat with the user is an invitation.
      if (r?.invitation) $("info-error").textContent = "Invited: they join when they accept.";
      await loadMembers(c).catch(() => {});
      ctx.changed(c);
      return true;
    } catch (e) {
      fail(e, doing);
      return false;
    }
  }

  async function open(c) {
    shown = c;
    $("info").hidden = false;
    $("conversation").classList.add("info-open");
    $("info-error").textContent = "";
    resetLeave();
    render(c);
    try { await loadMembers(c); render(c); } catch (e) { fail(e, "members"); }
  }

  function close() {
    shown = null;
    $("info").hidden = true;
    $("conversation").classList.remove("info-open");
  }

  // Leaving asks twice (no dialog: the button itself asks).
  let leaveTimer;
  function resetLeave() {
    clearTimeout(leaveTimer);
    $("leave").textContent = "Leave group";
    delete $("leave").dataset.confirm;
  }
  $("leave").addEventListener("click", async () => {
    const c = shown;
    if (!c) return;
    if (!$("leave").dataset.confirm) {
      $("leave").dataset.confirm = "1";
      $("leave").textContent = "Click again to leave";
      leaveTimer = setTimeout(resetLeave, 5000);
      return;
    }
    resetLeave();
    $("info-error").textContent = "";
    try {
      await ctx.rest("POST", `/api/v1/chats/${encodeURIComponent(c.id)}/leave`);
      close();
      ctx.left(c);
    } catch (e) {
      fail(e, "leave");
    }
  });

  $("rename-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("rename-input").value.trim();
    if (shown && name !== (shown.name || "")) {
      if (await change("PATCH", "", { name }, "rename")) $("rename-input").blur();
    }
  });

  $("add-member").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const user = $("add-member-user").value.trim();
    if (!user) return;
    if (!validUserId(user)) { $("info-error").textContent = `"${user}" is not a valid user ID: use ${ID_RULE}.`; return; }
    if (shown?.members?.some((m) => m.userId === user)) { $("info-error").textContent = `${user} is already a member.`; return; }
    if (await change("POST", "/members", { userId: user }, "addMember")) $("add-member-user").value = "";
  });

  $("info-close").addEventListener("click", close);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && shown) close(); });

  return { open, close, render, loadMembers, get shown() { return shown; } };
}
