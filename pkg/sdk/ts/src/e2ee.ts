// End-to-end encryption, client side: the protocol of docs/e2ee.md with WebCrypto
// only (X25519, Ed25519, HKDF-SHA256, AES-256-GCM; no primitive is written here).
// The Go SDK (pkg/client/e2ee) is the same protocol; pkg/client/e2ee/testdata/vectors.json
// pins both byte for byte.

const subtle = (): SubtleCrypto => {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new Error("natter e2ee: WebCrypto (crypto.subtle) is not available (a secure context is required in browsers)");
  return s;
};

const enc = new TextEncoder();
const dec = new TextDecoder();
const LABEL_BOX = "natter-e2ee-v1/box";
const LABEL_MSG = "natter-e2ee-v1/msg";
const LABEL_SPK = "natter-e2ee-v1/spk";
const LABEL_FILE = "natter-e2ee-v1/file";
/** The messageType of every user message in an encrypted chat. */
export const E2EE_MESSAGE_TYPE = "encrypted";
/**
 * The messageType of a key distribution ("keys" envelope): stored and delivered like
 * any message, never counted as unread or pushed. Distributions sent as
 * E2EE_MESSAGE_TYPE (before this type existed) are still taken; a "msg" envelope sent
 * as this type is refused.
 */
export const E2EE_KEYS_MESSAGE_TYPE = "encrypted_keys";

/** E2EEError codes: no_key (the sender key never reached this device), decrypt, signature, untrusted, revoked, replay, format. */
export class E2EEError extends Error {
  constructor(readonly code: "no_key" | "decrypt" | "signature" | "untrusted" | "revoked" | "replay" | "format", message: string) {
    super(message);
    this.name = "E2EEError";
  }
}

export function toB64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}
export function fromB64(s: string, n = 0): Uint8Array {
  let raw: string;
  try { raw = atob(s); } catch { throw new E2EEError("format", "bad base64"); }
  const b = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) b[i] = raw.charCodeAt(i);
  if (n && b.length !== n) throw new E2EEError("format", `want ${n} bytes, got ${b.length}`);
  return b;
}
export function fromHex(s: string): Uint8Array {
  const b = new Uint8Array(s.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return b;
}
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
/** frame: each field preceded by its length as a big-endian uint16 (as the Go side). */
function frame(...fields: Uint8Array[]): Uint8Array {
  return concat(...fields.flatMap((f) => [new Uint8Array([f.length >> 8, f.length & 0xff]), f]));
}
const be32 = (v: number) => new Uint8Array([(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
const u = (s: string) => enc.encode(s);
/**
 * buf copies b into an ArrayBuffer of exactly its bytes. Not b.buffer or b.slice().buffer:
 * a Node Buffer's slice is a view of a shared pool, whose .buffer holds other data too.
 */
export function buf(b: Uint8Array): ArrayBuffer {
  const c = new Uint8Array(b.length);
  c.set(b);
  return c.buffer;
}

// PKCS#8 prefixes that wrap a raw 32-byte X25519 private key or Ed25519 seed (RFC 8410).
const PKCS8_X25519 = fromHex("302e020100300506032b656e04220420");
const PKCS8_ED25519 = fromHex("302e020100300506032b657004220420");

/** importX25519 imports a raw private key (tests and vectors). */
export function importX25519(raw: Uint8Array, extractable = false): Promise<CryptoKey> {
  return subtle().importKey("pkcs8", buf(concat(PKCS8_X25519, raw)), { name: "X25519" }, extractable, ["deriveBits"]);
}
/** importEd25519 imports a seed as a signing key (tests and vectors). */
export function importEd25519(seed: Uint8Array, extractable = false): Promise<CryptoKey> {
  return subtle().importKey("pkcs8", buf(concat(PKCS8_ED25519, seed)), { name: "Ed25519" }, extractable, ["sign"]);
}
export interface KeyPair { priv: CryptoKey; pub: Uint8Array }
/** x25519Pair makes a key pair; its private half is not extractable unless asked. */
export async function x25519Pair(extractable = false): Promise<KeyPair> {
  const k = (await subtle().generateKey({ name: "X25519" }, extractable, ["deriveBits"])) as CryptoKeyPair;
  return { priv: k.privateKey, pub: new Uint8Array(await subtle().exportKey("raw", k.publicKey)) };
}
async function ed25519Pair(): Promise<KeyPair> {
  const k = (await subtle().generateKey({ name: "Ed25519" }, false, ["sign", "verify"])) as CryptoKeyPair;
  return { priv: k.privateKey, pub: new Uint8Array(await subtle().exportKey("raw", k.publicKey)) };
}
/** publicOf returns the raw public key of an extractable private key (pkcs8 tail for imports). */
export async function x25519Public(priv: CryptoKey): Promise<Uint8Array> {
  const jwk = await subtle().exportKey("jwk", priv);
  return fromB64url(jwk.x!);
}
export async function ed25519Public(priv: CryptoKey): Promise<Uint8Array> {
  const jwk = await subtle().exportKey("jwk", priv);
  return fromB64url(jwk.x!);
}
function fromB64url(s: string): Uint8Array {
  return fromB64(s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4));
}

async function x25519(priv: CryptoKey, pub: Uint8Array): Promise<Uint8Array> {
  if (pub.length !== 32) throw new E2EEError("format", "X25519 public key must be 32 bytes");
  const p = await subtle().importKey("raw", buf(pub), { name: "X25519" }, true, []);
  try {
    return new Uint8Array(await subtle().deriveBits({ name: "X25519", public: p } as any, priv, 256));
  } catch (e) {
    throw new E2EEError("format", "x25519: " + String(e));
  }
}
async function kdf(secret: Uint8Array, salt: Uint8Array, info: Uint8Array): Promise<{ key: CryptoKey; nonce: Uint8Array }> {
  const ikm = await subtle().importKey("raw", buf(secret), "HKDF", false, ["deriveBits"]);
  const okm = new Uint8Array(await subtle().deriveBits({ name: "HKDF", hash: "SHA-256", salt: buf(salt), info: buf(info) }, ikm, 44 * 8));
  const key = await subtle().importKey("raw", buf(okm.subarray(0, 32)), "AES-GCM", false, ["encrypt", "decrypt"]);
  return { key, nonce: okm.slice(32) };
}
async function seal(key: CryptoKey, nonce: Uint8Array, pt: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle().encrypt({ name: "AES-GCM", iv: buf(nonce), additionalData: buf(aad) }, key, buf(pt)));
}
async function open(key: CryptoKey, nonce: Uint8Array, ct: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  try {
    return new Uint8Array(await subtle().decrypt({ name: "AES-GCM", iv: buf(nonce), additionalData: buf(aad) }, key, buf(ct)));
  } catch {
    throw new E2EEError("decrypt", "cannot decrypt");
  }
}
async function sign(sk: CryptoKey, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle().sign({ name: "Ed25519" }, sk, buf(data)));
}
async function verify(pub: Uint8Array, sig: Uint8Array, data: Uint8Array): Promise<boolean> {
  const k = await subtle().importKey("raw", buf(pub), { name: "Ed25519" }, true, ["verify"]);
  return subtle().verify({ name: "Ed25519" }, k, buf(sig), buf(data));
}

/** A device's public identity: X25519 public (32) || Ed25519 public (32), base64 as identityKey. */
export type Bundle = Uint8Array;
export async function fingerprint(b: Bundle): Promise<string> {
  const s = hex(new Uint8Array(await subtle().digest("SHA-256", buf(b)))).slice(0, 32);
  return s.match(/.{4}/g)!.join(" ");
}

const spkMessage = (id: number, pub: Uint8Array) => frame(u(LABEL_SPK), be32(id), pub);
export const signPreKey = (sk: CryptoKey, id: number, pub: Uint8Array) => sign(sk, spkMessage(id, pub));
export async function verifyPreKey(owner: Bundle, id: number, pub: Uint8Array, sig: Uint8Array): Promise<void> {
  if (pub.length !== 32 || !(await verify(owner.subarray(32), sig, spkMessage(id, pub)))) throw new E2EEError("signature", "bad signed pre-key signature");
}

export interface BoxContext { chatId: string; senderUser: string; senderDevice: string; recipientUser: string; recipientDevice: string; epoch: number }
const boxAad = (c: BoxContext) => frame(u(LABEL_BOX), u(c.chatId), u(c.senderUser), u(c.senderDevice), u(c.recipientUser), u(c.recipientDevice), be32(c.epoch));
const boxInfo = (s: Bundle, r: Bundle) => concat(u(LABEL_BOX), s, r);
const x3dhIkm = (dhs: Uint8Array[]) => concat(new Uint8Array(32).fill(0xff), ...dhs);

export interface Recipient { bundle: Bundle; spk: Uint8Array; otk?: Uint8Array }

/** sealBox: X3DH-style box of a sender key for one device (see the Go SealBox). */
export async function sealBox(ik: CryptoKey, sender: Bundle, ek: CryptoKey, to: Recipient, ctx: BoxContext, pt: Uint8Array): Promise<Uint8Array> {
  const dhs = [await x25519(ik, to.spk), await x25519(ek, to.bundle.subarray(0, 32)), await x25519(ek, to.spk)];
  if (to.otk) dhs.push(await x25519(ek, to.otk));
  const { key, nonce } = await kdf(x3dhIkm(dhs), new Uint8Array(32), boxInfo(sender, to.bundle));
  return seal(key, nonce, pt, boxAad(ctx));
}
export async function openBox(ik: CryptoKey, spk: CryptoKey, otk: CryptoKey | undefined, self: Bundle, sender: Bundle, ekPub: Uint8Array, ctx: BoxContext, ct: Uint8Array): Promise<Uint8Array> {
  const dhs = [await x25519(spk, sender.subarray(0, 32)), await x25519(ik, ekPub), await x25519(spk, ekPub)];
  if (otk) dhs.push(await x25519(otk, ekPub));
  const { key, nonce } = await kdf(x3dhIkm(dhs), new Uint8Array(32), boxInfo(sender, self));
  return open(key, nonce, ct, boxAad(ctx));
}

export interface MsgContext { chatId: string; senderUser: string; senderDevice: string; messageId: string; epoch: number; counter: number }
const msgAad = (c: MsgContext) => frame(u(LABEL_MSG), u(c.chatId), u(c.senderUser), u(c.senderDevice), u(c.messageId), be32(c.epoch), be32(c.counter));
const messageKey = (chain: Uint8Array, epoch: number, n: number) => kdf(chain, new Uint8Array(0), concat(u(LABEL_MSG), be32(epoch), be32(n)));

export async function sealMessage(chain: Uint8Array, sk: CryptoKey, ctx: MsgContext, payload: Uint8Array): Promise<{ ct: Uint8Array; sig: Uint8Array }> {
  const { key, nonce } = await messageKey(chain, ctx.epoch, ctx.counter);
  const aad = msgAad(ctx);
  const ct = await seal(key, nonce, payload, aad);
  return { ct, sig: await sign(sk, concat(aad, ct)) };
}
export async function openMessage(chain: Uint8Array, sender: Bundle, ctx: MsgContext, ct: Uint8Array, sig: Uint8Array): Promise<Uint8Array> {
  const aad = msgAad(ctx);
  if (!(await verify(sender.subarray(32), sig, concat(aad, ct)))) throw new E2EEError("signature", "bad message signature");
  const { key, nonce } = await messageKey(chain, ctx.epoch, ctx.counter);
  return open(key, nonce, ct, aad);
}

async function fileKey(raw: Uint8Array) {
  return subtle().importKey("raw", buf(raw), "AES-GCM", false, ["encrypt", "decrypt"]);
}
/** sealFile encrypts an attachment under its own fresh 32-byte key (zero nonce: the key is used once). */
export async function sealFile(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  return seal(await fileKey(key), new Uint8Array(12), data, u(LABEL_FILE));
}
export async function openFile(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  return open(await fileKey(key), new Uint8Array(12), data, u(LABEL_FILE));
}
export const randomBytes = (n: number) => globalThis.crypto.getRandomValues(new Uint8Array(n));
export const utf8 = { encode: (s: string) => enc.encode(s), decode: (b: Uint8Array) => dec.decode(b) };
