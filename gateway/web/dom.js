// DOM helpers of the web chat. Text goes in with textContent only, never as HTML.

/** $ returns the element with id. */
export const $ = (id) => document.getElementById(id);

/** el makes a tag with class cls and, if given, text as its text content. */
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** button makes a type=button button with text and an optional title. */
export function button(text, cls, title) {
  const b = el("button", cls, text);
  b.type = "button";
  if (title) b.title = title;
  return b;
}

let toastTimer;
/** toast shows text for a few seconds over the conversation. */
export function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
}

/** scrollToEnd shows the newest message of the conversation. */
export function scrollToEnd() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}
