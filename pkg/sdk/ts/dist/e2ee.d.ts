/** The messageType of every user message in an encrypted chat. */
export declare const E2EE_MESSAGE_TYPE = "encrypted";
/**
 * The messageType of a key distribution ("keys" envelope): stored and delivered like
 * any message, never counted as unread or pushed. Distributions sent as
 * E2EE_MESSAGE_TYPE (before this type existed) are still taken; a "msg" envelope sent
 * as this type is refused.
 */
export declare const E2EE_KEYS_MESSAGE_TYPE = "encrypted_keys";
/** E2EEError codes: no_key (the sender key never reached this device), decrypt, signature, untrusted, revoked, replay, format. */
export declare class E2EEError extends Error {
    readonly code: "no_key" | "decrypt" | "signature" | "untrusted" | "revoked" | "replay" | "format";
    constructor(code: "no_key" | "decrypt" | "signature" | "untrusted" | "revoked" | "replay" | "format", message: string);
}
export declare function toB64(b: Uint8Array): string;
export declare function fromB64(s: string, n?: number): Uint8Array;
export declare function fromHex(s: string): Uint8Array;
/**
 * buf copies b into an ArrayBuffer of exactly its bytes. Not b.buffer or b.slice().buffer:
 * a Node Buffer's slice is a view of a shared pool, whose .buffer holds other data too.
 */
export declare function buf(b: Uint8Array): ArrayBuffer;
/** importX25519 imports a raw private key (tests and vectors). */
export declare function importX25519(raw: Uint8Array, extractable?: boolean): Promise<CryptoKey>;
/** importEd25519 imports a seed as a signing key (tests and vectors). */
export declare function importEd25519(seed: Uint8Array, extractable?: boolean): Promise<CryptoKey>;
export interface KeyPair {
    priv: CryptoKey;
    pub: Uint8Array;
}
/** x25519Pair makes a key pair; its private half is not extractable unless asked. */
export declare function x25519Pair(extractable?: boolean): Promise<KeyPair>;
/** publicOf returns the raw public key of an extractable private key (pkcs8 tail for imports). */
export declare function x25519Public(priv: CryptoKey): Promise<Uint8Array>;
export declare function ed25519Public(priv: CryptoKey): Promise<Uint8Array>;
/** A device's public identity: X25519 public (32) || Ed25519 public (32), base64 as identityKey. */
export type Bundle = Uint8Array;
export declare function fingerprint(b: Bundle): Promise<string>;
export declare const signPreKey: (sk: CryptoKey, id: number, pub: Uint8Array) => Promise<Uint8Array<ArrayBufferLike>>;
export declare function verifyPreKey(owner: Bundle, id: number, pub: Uint8Array, sig: Uint8Array): Promise<void>;
export interface BoxContext {
    chatId: string;
    senderUser: string;
    senderDevice: string;
    recipientUser: string;
    recipientDevice: string;
    epoch: number;
}
export interface Recipient {
    bundle: Bundle;
    spk: Uint8Array;
    otk?: Uint8Array;
}
/** sealBox: X3DH-style box of a sender key for one device (see the Go SealBox). */
export declare function sealBox(ik: CryptoKey, sender: Bundle, ek: CryptoKey, to: Recipient, ctx: BoxContext, pt: Uint8Array): Promise<Uint8Array>;
export declare function openBox(ik: CryptoKey, spk: CryptoKey, otk: CryptoKey | undefined, self: Bundle, sender: Bundle, ekPub: Uint8Array, ctx: BoxContext, ct: Uint8Array): Promise<Uint8Array>;
export interface MsgContext {
    chatId: string;
    senderUser: string;
    senderDevice: string;
    messageId: string;
    epoch: number;
    counter: number;
}
export declare function sealMessage(chain: Uint8Array, sk: CryptoKey, ctx: MsgContext, payload: Uint8Array): Promise<{
    ct: Uint8Array;
    sig: Uint8Array;
}>;
export declare function openMessage(chain: Uint8Array, sender: Bundle, ctx: MsgContext, ct: Uint8Array, sig: Uint8Array): Promise<Uint8Array>;
/** sealFile encrypts an attachment under its own fresh 32-byte key (zero nonce: the key is used once). */
export declare function sealFile(key: Uint8Array, data: Uint8Array): Promise<Uint8Array>;
export declare function openFile(key: Uint8Array, data: Uint8Array): Promise<Uint8Array>;
export declare const randomBytes: (n: number) => Uint8Array<ArrayBuffer>;
export declare const utf8: {
    encode: (s: string) => Uint8Array<ArrayBuffer>;
    decode: (b: Uint8Array) => string;
};
