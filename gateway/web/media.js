// Media in the web chat: images and files in messages, fetched with the user's token
// (an <img> cannot send one) and kept as blob URLs; and the attachment picked for the
// next message, previewed above the composer.
import { $, el, button, scrollToEnd, toast } from "./dom.js";
import { humanError } from "./errors.js";

/** fmtSize says n bytes as a person reads it. */
export const fmtSize = (n) => n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KB` : `${(n / (1 << 20)).toFixed(1)} MB`;

const cache = new Map(); // mediaId -> blob URL

async function mediaUrl(id, token) {
  if (cache.has(id)) return cache.get(id);
  const r = await fetch(`/api/v1/media/${encodeURIComponent(id)}`, { headers: { Authorization: `Bearer ${token()}` } });
  if (!r.ok) throw Object.assign(new Error(`HTTP ${r.status}`), { code: (await r.json().catch(() => ({})))?.error?.code });
  const u = URL.createObjectURL(await r.blob());
  cache.set(id, u);
  return u;
}

/** renderMedia fills bubble with m's image, or a link that downloads its file; token() is the current token. */
export async function renderMedia(bubble, m, token) {
  const meta = m.meta || {};
  const wrap = el("div", "media");
  bubble.append(wrap);
  if (m.content && m.content !== meta.name) bubble.append(el("div", "", m.content));
  if (m.messageType === "image") {
    const img = el("img");
    img.alt = meta.name || "image";
    // An image gets its height only when it loads. If the view was at its end before
    // (the gap below is no more than what the image added), keep the end in view.
    img.addEventListener("load", () => {
      const box = $("messages");
      const gap = box.scrollHeight - box.scrollTop - box.clientHeight;
      if (gap > 0 && gap <= img.getBoundingClientRect().height + 80) scrollToEnd();
    });
    wrap.append(img);
    if (meta.mediaId) img.src = await mediaUrl(meta.mediaId, token).catch(() => "") || "";
    if (!img.src) wrap.replaceChildren(el("span", "muted", "🖼 " + (meta.name || "image") + " (unavailable)"));
    return;
  }
  const a = el("a", "file", "📎 " + (meta.name || "file") + (meta.size ? ` (${fmtSize(meta.size)})` : ""));
  a.href = "#";
  a.addEventListener("click", async (ev) => {
    ev.preventDefault();
    try {
      const dl = el("a");
      dl.href = await mediaUrl(meta.mediaId, token);
      dl.download = meta.name || "file";
      dl.click();
    } catch (e) { toast("Download failed. " + humanError(e, "download")); }
  });
  wrap.append(a);
}

let picked = null; // the File to send with the next message

/** attachment is the file picked for the next message, or null. */
export const attachment = () => picked;

/** pickFile takes the file input's file as the attachment and previews it. */
export function pickFile() {
  const f = $("file").files[0];
  $("file").value = "";
  if (!f) return;
  clearFile();
  picked = f;
  const parts = [];
  if (f.type.startsWith("image/")) {
    const img = el("img");
    img.alt = f.name;
    img.src = URL.createObjectURL(f);
    parts.push(img);
  }
  parts.push(el("span", "", `${f.name} (${fmtSize(f.size)})`));
  const x = button("✕", "", "Remove attachment");
  x.addEventListener("click", clearFile);
  parts.push(x);
  $("preview").replaceChildren(...parts);
  $("preview").hidden = false;
}

/** clearFile drops the attachment and its preview. */
export function clearFile() {
  const img = $("preview").querySelector("img");
  if (img) URL.revokeObjectURL(img.src);
  picked = null;
  $("preview").replaceChildren();
  $("preview").hidden = true;
}

const plainCache = new Map(); // mediaId -> blob URL of the decrypted file

/**
 * renderEncryptedFile fills bubble with an end-to-end encrypted attachment: fetched,
 * decrypted in the page with the key the message carried (download(file) does both),
 * then shown (images) or saved (other files). The server only ever had ciphertext.
 */
export async function renderEncryptedFile(bubble, m, download) {
  const f = m.efile;
  const wrap = el("div", "media");
  bubble.append(wrap);
  if (m.content) bubble.append(el("div", "", m.content));
  const url = async () => {
    if (!plainCache.has(f.id)) {
      const bytes = await download(f);
      plainCache.set(f.id, URL.createObjectURL(new Blob([bytes], { type: f.mime || "application/octet-stream" })));
    }
    return plainCache.get(f.id);
  };
  if ((f.mime || "").startsWith("image/")) {
    const img = el("img");
    img.alt = f.name || "image";
    wrap.append(img);
    img.src = await url().catch(() => "") || "";
    if (!img.src) wrap.replaceChildren(el("span", "muted", "🔒 " + (f.name || "image") + " (cannot be decrypted)"));
    return;
  }
  const a = el("a", "file", "🔒📎 " + (f.name || "file") + (f.size ? ` (${fmtSize(f.size)})` : ""));
  a.href = "#";
  a.addEventListener("click", async (ev) => {
    ev.preventDefault();
    try {
      const dl = el("a");
      dl.href = await url();
      dl.download = f.name || "file";
      dl.click();
    } catch (e) { toast("Download failed. " + humanError(e, "download")); }
  });
  wrap.append(a);
}
