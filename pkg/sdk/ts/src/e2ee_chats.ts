// EncryptedChats: end-to-end encryption over a NatterClient, the TypeScript twin of
// the Go SDK's e2ee.Session (docs/e2ee.md). It decrypts the client's messages in
// order, and before this device's first message in a chat (and again after every
// membership or device change) sends its sender key to every member device, the
// user's other devices included.
import type { NatterClient } from "./client.js";
import { newId } from "./outbox.js";
import type { Ack, Message } from "./types.js";
import { E2EEError, E2EE_KEYS_MESSAGE_TYPE, E2EE_MESSAGE_TYPE, buf, fromB64, openFile, randomBytes, sealFile, toB64, verifyPreKey } from "./e2ee.js";
import type { Bundle } from "./e2ee.js";
import type { Keyring, Payload, PreKey, RecipientDevice, FileRef } from "./e2ee_keyring.js";

/** A message as EncryptedChats delivers it: decrypted payload, or why it did not decrypt. */
export interface DecryptedMessage extends Message {
  payload?: Payload;
  error?: E2EEError | Error;
  /** A device key event of a member (show it: the person's keys changed). */
  keyChange?: { event: "device_keys_changed" | "device_revoked"; userId: string; deviceId: string };
}

interface DirectoryDevice { deviceId: string; identityKey: string; signedPreKey: PreKey; oneTimeKey: PreKey | null }

const MAX_BOXES = 48;

export class EncryptedChats {
  private queue: Promise<void> = Promise.resolve();
  private sending = new Map<string, Promise<void>>();
  private readonly listeners = new Set<(m: DecryptedMessage) => void>();

  /** Wraps client; call before client.connect() so no message is missed. */
  constructor(readonly client: NatterClient, readonly keyring: Keyring) {
    client.on("message", (m) => {
      this.queue = this.queue.then(() => this.handle(m)).catch(() => undefined);
    });
  }

  /** Subscribes to every chat message in order, decrypted where encrypted. Returns an unsubscribe function. */
  onMessage(fn: (m: DecryptedMessage) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Publishes this device's keys (publish: a new device) or tops its one-time keys up. */
  async register(publish: boolean): Promise<void> {
    const id = this.keyring.id;
    const path = `/api/v1/keys/devices/${encodeURIComponent(id.deviceId)}`;
    if (publish) {
      await this.client.rest("PUT", path, await id.publish(25));
      return;
    }
    const r = await this.client.rest<{ oneTimeKeys: number }>("POST", path + "/one-time-keys", { oneTimeKeys: [] });
    if (r.oneTimeKeys < 10) await this.client.rest("POST", path + "/one-time-keys", { oneTimeKeys: await id.newOneTimeKeys(25 - r.oneTimeKeys) });
  }

  /** Creates an encrypted chat ("direct" or "group") and returns its id. */
  async createChat(type: "direct" | "group", members: string[], name = ""): Promise<string> {
    const r = await this.client.rest<{ id: string }>("POST", "/api/v1/chats", { type, members, name, encrypted: true });
    return r.id;
  }

  private lookup = async (user: string): Promise<Map<string, Bundle>> => {
    const r = await this.client.rest<{ devices: DirectoryDevice[] }>("GET", `/api/v1/keys/users/${encodeURIComponent(user)}?claim=false`);
    const out = new Map<string, Bundle>();
    for (const d of r.devices ?? []) {
      try { out.set(d.deviceId, fromB64(d.identityKey, 64)); } catch { /* malformed: not confirmed */ }
    }
    return out;
  };

  private emit(m: DecryptedMessage) {
    for (const fn of this.listeners) fn(m);
  }

  private async handle(m: Message): Promise<void> {
    const out = await this.decrypt(m);
    if (out) this.emit(out);
  }

  /**
   * decrypt applies one message to the keyring (a key event, a key distribution) and
   * returns it decrypted, or null for a key distribution (nothing to show). Messages
   * delivered live go through it by themselves; call it for pages of history
   * (loadHistory) with live false: old membership and key events then change no
   * state (they were applied when they happened).
   */
  async decrypt(m: Message, live = true): Promise<DecryptedMessage | null> {
    const out: DecryptedMessage = { ...m };
    if (m.messageType === "system" && live) {
      const ev = (m.meta ?? {}) as { event?: string; userId?: string; deviceId?: string };
      switch (ev.event) {
        case "member_added": case "member_removed": case "member_left": case "members_added": case "members_removed":
          this.keyring.markStale(m.chatId);
          break;
        case "device_keys_changed":
          this.keyring.forgetDevice(ev.userId ?? "", ev.deviceId ?? "");
          this.keyring.markStale(m.chatId);
          out.keyChange = { event: ev.event, userId: ev.userId ?? "", deviceId: ev.deviceId ?? "" };
          break;
        case "device_revoked":
          this.keyring.revoke(ev.userId ?? "", ev.deviceId ?? "", m.seq);
          this.keyring.markStale(m.chatId);
          out.keyChange = { event: ev.event, userId: ev.userId ?? "", deviceId: ev.deviceId ?? "" };
          break;
      }
    } else if (m.messageType === E2EE_KEYS_MESSAGE_TYPE) {
      // A distribution is never shown; one that is not a "keys" envelope or fails to
      // open is dropped (a message hidden as a distribution would escape the badge).
      try {
        if (JSON.parse(m.content)?.t === "keys") await this.keyring.open(m.chatId, m.senderId, m.messageId, m.seq, m.content, this.lookup);
      } catch { /* refused: nothing to show */ }
      return null;
    } else if (m.messageType === E2EE_MESSAGE_TYPE || (m.messageType === "edit" && m.content)) {
      try {
        const o = await this.keyring.open(m.chatId, m.senderId, m.messageType === "edit" ? m.refId ?? "" : m.messageId, m.seq, m.content, this.lookup);
        if (o.envelope.t === "keys") return null;
        out.payload = o.payload;
      } catch (e) {
        if (e instanceof E2EEError && e.code === "format") { out.error = e; }
        else {
          // A key distribution that failed is not shown; a message that failed is, with why.
          try { if (JSON.parse(m.content)?.t === "keys") return null; } catch { /* shown below */ }
          out.error = e as Error;
        }
      }
    }
    return out;
  }

  /** Waits until every message received so far is processed (tests, and before a send that must see a change). */
  idle(): Promise<void> { return this.queue; }

  private ensureKeys(chat: string): Promise<void> {
    const prev = this.sending.get(chat) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(async () => {
      if (!this.keyring.needsRotation(chat)) return;
      const to = await this.recipients(chat);
      this.keyring.rotate(chat);
      try {
        for (let i = 0; i < to.length; i += MAX_BOXES) {
          const env = await this.keyring.sealKeys(chat, to.slice(i, i + MAX_BOXES));
          await this.client.send(chat, env, { messageType: E2EE_KEYS_MESSAGE_TYPE });
        }
      } catch (e) {
        this.keyring.markStale(chat);
        throw e;
      }
    });
    this.sending.set(chat, next);
    return next;
  }

  private async recipients(chat: string): Promise<RecipientDevice[]> {
    const { members } = await this.client.rest<{ members: { userId: string }[] }>("GET", `/api/v1/chats/${encodeURIComponent(chat)}/members`);
    const me = this.keyring.id;
    const to: RecipientDevice[] = [];
    for (const { userId } of members) {
      let devices: DirectoryDevice[];
      try {
        devices = (await this.client.rest<{ devices: DirectoryDevice[] }>("GET", `/api/v1/keys/users/${encodeURIComponent(userId)}`)).devices ?? [];
      } catch (e: any) {
        if (e?.code === "not_found") continue;
        throw e;
      }
      for (const d of devices) {
        if (userId === me.userId && d.deviceId === me.deviceId) continue;
        try {
          const bundle = fromB64(d.identityKey, 64);
          const spk = fromB64(d.signedPreKey.key, 32);
          const spkSig = fromB64(d.signedPreKey.signature ?? "", 64);
          await verifyPreKey(bundle, d.signedPreKey.id, spk, spkSig);
          const r: RecipientDevice = { user: userId, device: d.deviceId, keys: { bundle, spk }, spkId: d.signedPreKey.id, spkSig };
          if (d.oneTimeKey) { r.keys.otk = fromB64(d.oneTimeKey.key, 32); r.otkId = d.oneTimeKey.id; }
          to.push(r);
        } catch {
          // A device whose keys do not verify is left out of the distribution.
        }
      }
    }
    return to;
  }

  /** Encrypts and sends payload to chat. */
  async send(chat: string, payload: Payload, o: { messageId?: string } = {}): Promise<Ack> {
    await this.ensureKeys(chat);
    const messageId = o.messageId ?? newId();
    const content = await this.keyring.encrypt(chat, messageId, payload);
    return this.client.send(chat, content, { messageId, messageType: E2EE_MESSAGE_TYPE });
  }
  sendText(chat: string, text: string, o: { messageId?: string } = {}): Promise<Ack> { return this.send(chat, { type: "text", text }, o); }

  /** Replaces the text of this user's message refId, encrypted. */
  async edit(chat: string, refId: string, text: string): Promise<Ack> {
    await this.ensureKeys(chat);
    // Bound to the edited message's ID: history shows an edited message as the original
    // (its ID) with the edit's content, which must open too.
    const content = await this.keyring.encrypt(chat, refId, { type: "text", text });
    return this.client.edit(chat, refId, content);
  }

  /** Encrypts data under a fresh key, uploads the ciphertext as opaque media and sends its reference. */
  async sendFile(chat: string, data: Uint8Array, o: { name?: string; mime?: string; caption?: string; messageId?: string } = {}): Promise<Ack> {
    const key = randomBytes(32);
    const ct = await sealFile(key, data);
    const form = new FormData();
    form.append("file", new Blob([buf(ct)], { type: "application/octet-stream" }), "encrypted.bin");
    const up = await this.client.rest<{ id: string }>("POST", `/api/v1/media?chatId=${encodeURIComponent(chat)}`, form);
    const file: FileRef = { id: up.id, key: toB64(key), size: data.length };
    if (o.name) file.name = o.name;
    if (o.mime) file.mime = o.mime;
    const p: Payload = { type: "file", file };
    if (o.caption) p.text = o.caption;
    return this.send(chat, p, { messageId: o.messageId });
  }

  /** Downloads and decrypts an attachment. */
  async download(file: FileRef): Promise<Uint8Array> {
    const ct = await this.client.restBytes(`/api/v1/media/${encodeURIComponent(file.id)}`);
    return openFile(fromB64(file.key, 32), ct);
  }
}
