// End-to-end encrypted chats in the web chat (docs/e2ee.md). This browser is one
// device of the user: its identity keys are WebCrypto keys made here, not extractable,
// kept in IndexedDB with the sender keys it received, so a reload still reads the
// chat. Caveat (docs/e2ee.md, "Key storage"): the received sender keys are stored as
// bytes, readable by script on this origin and by whoever has this browser profile;
// clearing the site's data loses this device's keys (a new device is made next time,
// and history from before it cannot be read).
import { EncryptedChats, Identity, Keyring, NatterError } from "/sdk/natter.js";

const DB = "natter-e2ee";
const STORE = "devices";

function idb() {
  return new Promise((res, rej) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE);
    r.onsuccess = () => res(r.result);
    r.onerror = () => rej(r.error);
  });
}
function tx(db, mode, fn) {
  return new Promise((res, rej) => {
    const t = db.transaction(STORE, mode);
    const req = fn(t.objectStore(STORE));
    t.oncomplete = () => res(req?.result);
    t.onerror = () => rej(t.error);
  });
}

/** userOf returns a JWT's subject (the user ID), read without verifying: the server verifies. */
export function userOf(token) {
  try {
    const p = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(p + "=".repeat((4 - (p.length % 4)) % 4))).sub || "";
  } catch {
    return "";
  }
}

const keyringState = (k) => ({ own: [...k.own], recv: [...k.recv], peers: [...k.peers], revoked: [...k.revoked] });

/**
 * openE2EE returns this browser's EncryptedChats for user over client (create it
 * before client.connect()): the device saved in IndexedDB, or a new one published to
 * the key directory. It throws when the browser has no WebCrypto (an insecure context).
 */
export async function openE2EE(client, user) {
  if (!globalThis.crypto?.subtle) throw new Error("end-to-end encryption needs a secure context (https or localhost)");
  const db = await idb();
  const saved = await tx(db, "readonly", (s) => s.get(user));
  let identity, fresh = false;
  if (saved) identity = Identity.fromState(saved.identity);
  else {
    identity = await Identity.create(user, "web-" + crypto.randomUUID().slice(0, 8));
    fresh = true;
  }
  const keyring = new Keyring(identity);
  if (saved?.keyring) {
    keyring.own = new Map(saved.keyring.own);
    keyring.recv = new Map(saved.keyring.recv);
    keyring.peers = new Map(saved.keyring.peers);
    keyring.revoked = new Map(saved.keyring.revoked);
  }
  const chats = new EncryptedChats(client, keyring);
  let timer;
  const save = () => tx(db, "readwrite", (s) => s.put({ identity: identity.toState(), keyring: keyringState(keyring) }, user));
  /**
   * persist saves the keyring soon (after each message handled), or at once with now
   * (after a send: the sender key it may have made must survive a reload that comes
   * right after, or this device could not read its own message again).
   */
  const persist = (now = false) => {
    clearTimeout(timer);
    if (now) return save().catch(() => {});
    timer = setTimeout(() => void save().catch(() => {}), 200);
    return Promise.resolve();
  };
  chats.onMessage(persist);
  const ready = (async () => {
    if (fresh) await chats.register(true);
    else {
      try { await chats.register(false); } catch (e) {
        // The directory no longer has this device (revoked, or a fresh server): publish it again.
        if (e instanceof NatterError && e.code === "not_found") await chats.register(true); else throw e;
      }
    }
    await save();
  })();
  return { chats, keyring, deviceId: identity.deviceId, ready, persist };
}

/**
 * shown turns a decrypted message into what the page shows: an encrypted message
 * becomes a text or an "efile" message with its payload; one that did not decrypt
 * says so. Other messages are returned as they are.
 */
export function shown(m) {
  if (m.messageType !== "encrypted" && !(m.messageType === "edit" && m.content)) return m;
  const locked = "🔒 This message cannot be decrypted on this device.";
  if (m.messageType === "edit") return { ...m, content: m.payload?.text ?? locked };
  if (!m.payload) return { ...m, messageType: "text", content: locked, locked: true, e2ee: true };
  if (m.payload.type === "file" && m.payload.file) return { ...m, messageType: "efile", content: m.payload.text || "", efile: m.payload.file, e2ee: true };
  return { ...m, messageType: "text", content: m.payload.text ?? "", e2ee: true };
}
