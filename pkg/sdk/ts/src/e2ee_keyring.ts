// A device's end-to-end state (identity, own sender keys, received sender keys,
// confirmed identities) and the envelope formats: the TypeScript twin of the Go SDK's
// pkg/client/e2ee Keyring. No I/O here; EncryptedChats (e2ee_chats.ts) does the network.
import {
  E2EEError, fromB64, openBox, openMessage, randomBytes, sealBox, sealMessage, signPreKey, toB64, utf8,
  verifyPreKey, x25519Pair,
} from "./e2ee.js";
import type { Bundle, Recipient } from "./e2ee.js";

/** The content of an encrypted chat's message (JSON, opaque to the server). */
export interface Envelope {
  v: 1;
  t: "msg" | "keys";
  dev: string;
  ep: number;
  n?: number;
  ct?: string;
  sig?: string;
  ik?: string;
  boxes?: Box[];
}
/** One recipient device's copy of a sender key. */
export interface Box { u: string; dev: string; ek: string; spk: number; otk?: number; ct: string }
/** The plaintext of a "msg" envelope. */
export interface Payload { type: "text" | "file"; text?: string; file?: FileRef }
/** An encrypted attachment: where it is and its key. */
export interface FileRef { id: string; key: string; name?: string; mime?: string; size: number }
/** A public pre-key as the directory holds it. */
export interface PreKey { id: number; key: string; signature?: string }
/** The body of PUT /api/v1/keys/devices/{deviceId}. */
export interface DeviceKeys { identityKey: string; signedPreKey: PreKey; oneTimeKeys: PreKey[] }
/** One device a sender key goes to, from the directory. */
export interface RecipientDevice { user: string; device: string; keys: Recipient; spkId: number; spkSig: Uint8Array; otkId?: number }

export function parseEnvelope(content: string): Envelope {
  let e: Envelope;
  try { e = JSON.parse(content); } catch { throw new E2EEError("format", "not an envelope"); }
  if (!e || e.v !== 1 || (e.t !== "msg" && e.t !== "keys") || !e.dev) throw new E2EEError("format", "unsupported envelope");
  return e;
}

/**
 * Identity is one device's private keys. The private keys are CryptoKeys, not
 * extractable when generated here, so a browser can keep them in IndexedDB (structured
 * clone) without any script being able to read their bytes.
 */
export class Identity {
  otks = new Map<number, CryptoKey>();
  next = 1;
  private constructor(readonly userId: string, readonly deviceId: string, readonly ik: CryptoKey, readonly sk: CryptoKey,
    readonly bundle: Bundle, readonly spkId: number, readonly spk: CryptoKey, readonly spkPub: Uint8Array) {}

  static async create(userId: string, deviceId: string): Promise<Identity> {
    const ik = await x25519Pair();
    const sk = (await globalThis.crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"])) as CryptoKeyPair;
    const skPub = new Uint8Array(await globalThis.crypto.subtle.exportKey("raw", sk.publicKey));
    const spk = await x25519Pair();
    const b = new Uint8Array(64);
    b.set(ik.pub, 0);
    b.set(skPub, 32);
    return new Identity(userId, deviceId, ik.priv, sk.privateKey, b, 1, spk.priv, spk.pub);
  }

  /** The device's public keys with n new one-time keys. */
  async publish(n: number): Promise<DeviceKeys> {
    return {
      identityKey: toB64(this.bundle),
      signedPreKey: { id: this.spkId, key: toB64(this.spkPub), signature: toB64(await signPreKey(this.sk, this.spkId, this.spkPub)) },
      oneTimeKeys: await this.newOneTimeKeys(n),
    };
  }
  async newOneTimeKeys(n: number): Promise<PreKey[]> {
    const out: PreKey[] = [];
    for (let i = 0; i < n; i++) {
      const k = await x25519Pair();
      this.otks.set(this.next, k.priv);
      out.push({ id: this.next, key: toB64(k.pub) });
      this.next++;
    }
    return out;
  }

  /** A structured-cloneable copy (CryptoKeys and bytes) for IndexedDB. */
  toState(): IdentityState {
    return { userId: this.userId, deviceId: this.deviceId, ik: this.ik, sk: this.sk, bundle: this.bundle, spkId: this.spkId,
      spk: this.spk, spkPub: this.spkPub, otks: [...this.otks], next: this.next };
  }
  static fromState(s: IdentityState): Identity {
    const id = new Identity(s.userId, s.deviceId, s.ik, s.sk, s.bundle, s.spkId, s.spk, s.spkPub);
    id.otks = new Map(s.otks);
    id.next = s.next;
    return id;
  }
}
export interface IdentityState {
  userId: string; deviceId: string; ik: CryptoKey; sk: CryptoKey; bundle: Uint8Array; spkId: number; spk: CryptoKey;
  spkPub: Uint8Array; otks: [number, CryptoKey][]; next: number;
}

/** The result of Keyring.open. */
export interface Opened { envelope: Envelope; payload?: Payload; keyFrom?: boolean }
/** The directory's identity bundles of a user's devices (no one-time keys claimed). */
export type Lookup = (user: string) => Promise<Map<string, Bundle>>;

const eqBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
const pk = (user: string, dev: string) => JSON.stringify([user, dev]);
const rk = (chat: string, user: string, dev: string, ep: number) => JSON.stringify([chat, user, dev, ep]);

/** Keyring: see the Go SDK's Keyring; the same rules, the same bytes. */
export class Keyring {
  own = new Map<string, { epoch: number; chain: Uint8Array; counter: number; stale: boolean }>();
  recv = new Map<string, { chain: Uint8Array; bundle: Bundle }>();
  peers = new Map<string, Bundle>();
  revoked = new Map<string, number>();
  seen = new Map<string, string>();
  /** Serializes open and encrypt so the maps see one operation at a time. */
  private lock: Promise<unknown> = Promise.resolve();

  constructor(readonly id: Identity) {
    this.peers.set(pk(id.userId, id.deviceId), id.bundle);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.lock.then(fn, fn);
    this.lock = r.catch(() => undefined);
    return r;
  }

  needsRotation(chat: string): boolean {
    const s = this.own.get(chat);
    return !s || s.stale;
  }
  markStale(chat: string): void {
    const s = this.own.get(chat);
    if (s) s.stale = true;
  }
  forgetDevice(user: string, dev: string): void {
    if (user === this.id.userId && dev === this.id.deviceId) return;
    this.peers.delete(pk(user, dev));
  }
  revoke(user: string, dev: string, seq: number): void {
    const p = pk(user, dev);
    const old = this.revoked.get(p);
    if (old === undefined || seq < old) this.revoked.set(p, seq);
    this.peers.delete(p);
  }
  rotate(chat: string): number {
    const chain = randomBytes(32);
    const epoch = (this.own.get(chat)?.epoch ?? 0) + 1;
    this.own.set(chat, { epoch, chain, counter: 0, stale: false });
    this.recv.set(rk(chat, this.id.userId, this.id.deviceId, epoch), { chain, bundle: this.id.bundle });
    return epoch;
  }

  /** A "keys" envelope with this device's current sender key of chat for each of to. */
  async sealKeys(chat: string, to: RecipientDevice[]): Promise<string> {
    const s = this.own.get(chat);
    if (!s) throw new Error(`natter e2ee: no sender key in chat ${chat}: rotate first`);
    const env: Envelope = { v: 1, t: "keys", dev: this.id.deviceId, ep: s.epoch, ik: toB64(this.id.bundle), boxes: [] };
    for (const r of to) {
      await verifyPreKey(r.keys.bundle, r.spkId, r.keys.spk, r.spkSig);
      const ek = await x25519Pair();
      const ct = await sealBox(this.id.ik, this.id.bundle, ek.priv, r.keys, {
        chatId: chat, senderUser: this.id.userId, senderDevice: this.id.deviceId, recipientUser: r.user, recipientDevice: r.device, epoch: s.epoch,
      }, s.chain);
      const box: Box = { u: r.user, dev: r.device, ek: toB64(ek.pub), spk: r.spkId, ct: toB64(ct) };
      if (r.otkId) box.otk = r.otkId;
      env.boxes!.push(box);
    }
    return JSON.stringify(env);
  }

  /** A "msg" envelope of payload for messageId in chat under the current sender key. */
  encrypt(chat: string, messageId: string, payload: Payload): Promise<string> {
    return this.exclusive(async () => {
      const s = this.own.get(chat);
      if (!s || s.stale) throw new Error(`natter e2ee: chat ${chat} needs a new sender key`);
      s.counter++;
      const ctx = { chatId: chat, senderUser: this.id.userId, senderDevice: this.id.deviceId, messageId, epoch: s.epoch, counter: s.counter };
      const { ct, sig } = await sealMessage(s.chain, this.id.sk, ctx, utf8.encode(JSON.stringify(payload)));
      const env: Envelope = { v: 1, t: "msg", dev: this.id.deviceId, ep: s.epoch, n: s.counter, ct: toB64(ct), sig: toB64(sig) };
      return JSON.stringify(env);
    });
  }

  /** Decrypts a message of chat (see the Go Keyring.Open); throws E2EEError. */
  open(chat: string, senderUser: string, messageId: string, seq: number, content: string, lookup?: Lookup): Promise<Opened> {
    return this.exclusive(async () => {
      const env = parseEnvelope(content);
      const rs = this.revoked.get(pk(senderUser, env.dev));
      if (rs !== undefined && seq > rs) throw new E2EEError("revoked", "message from a revoked device");
      if (env.t === "keys") return this.openKeys(chat, senderUser, env, lookup);
      const key = rk(chat, senderUser, env.dev, env.ep);
      const r = this.recv.get(key);
      if (!r) throw new E2EEError("no_key", "no key for this message");
      const ctx = { chatId: chat, senderUser, senderDevice: env.dev, messageId, epoch: env.ep, counter: env.n ?? 0 };
      const pt = await openMessage(r.chain, r.bundle, ctx, fromB64(env.ct ?? ""), fromB64(env.sig ?? "", 64));
      const sk = key + "/" + (env.n ?? 0);
      const prev = this.seen.get(sk);
      if (prev !== undefined && prev !== messageId) throw new E2EEError("replay", "replayed ciphertext");
      this.seen.set(sk, messageId);
      let payload: Payload;
      try { payload = JSON.parse(utf8.decode(pt)); } catch { throw new E2EEError("format", "payload is not JSON"); }
      return { envelope: env, payload };
    });
  }

  private async openKeys(chat: string, senderUser: string, env: Envelope, lookup?: Lookup): Promise<Opened> {
    const box = env.boxes?.find((b) => b.u === this.id.userId && b.dev === this.id.deviceId);
    if (!box) return { envelope: env };
    const sender = fromB64(env.ik ?? "", 64);
    await this.confirm(senderUser, env.dev, sender, lookup);
    const key = rk(chat, senderUser, env.dev, env.ep);
    if (this.recv.has(key)) return { envelope: env, keyFrom: true };
    let otk: CryptoKey | undefined;
    if (box.otk) {
      otk = this.id.otks.get(box.otk);
      if (!otk) throw new E2EEError("no_key", `one-time key ${box.otk} is not (or no longer) held`);
    }
    if (box.spk !== this.id.spkId) throw new E2EEError("no_key", `signed pre-key ${box.spk} is not held`);
    const chain = await openBox(this.id.ik, this.id.spk, otk, this.id.bundle, sender, fromB64(box.ek, 32), {
      chatId: chat, senderUser, senderDevice: env.dev, recipientUser: this.id.userId, recipientDevice: this.id.deviceId, epoch: env.ep,
    }, fromB64(box.ct));
    if (chain.length !== 32) throw new E2EEError("decrypt", "bad sender key");
    if (box.otk) this.id.otks.delete(box.otk);
    this.recv.set(key, { chain, bundle: sender });
    return { envelope: env, keyFrom: true };
  }

  private async confirm(user: string, dev: string, bundle: Bundle, lookup?: Lookup): Promise<void> {
    const cached = this.peers.get(pk(user, dev));
    if (cached) {
      if (!eqBytes(cached, bundle)) throw new E2EEError("untrusted", "identity key differs from the confirmed one");
      return;
    }
    if (!lookup) throw new E2EEError("untrusted", "identity key not confirmed");
    const d = (await lookup(user)).get(dev);
    if (!d || !eqBytes(d, bundle)) throw new E2EEError("untrusted", "identity key not confirmed by the directory");
    this.peers.set(pk(user, dev), bundle);
  }
}
