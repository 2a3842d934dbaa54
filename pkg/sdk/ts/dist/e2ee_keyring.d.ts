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
export interface Box {
    u: string;
    dev: string;
    ek: string;
    spk: number;
    otk?: number;
    ct: string;
}
/** The plaintext of a "msg" envelope. */
export interface Payload {
    type: "text" | "file";
    text?: string;
    file?: FileRef;
}
/** An encrypted attachment: where it is and its key. */
export interface FileRef {
    id: string;
    key: string;
    name?: string;
    mime?: string;
    size: number;
}
/** A public pre-key as the directory holds it. */
export interface PreKey {
    id: number;
    key: string;
    signature?: string;
}
/** The body of PUT /api/v1/keys/devices/{deviceId}. */
export interface DeviceKeys {
    identityKey: string;
    signedPreKey: PreKey;
    oneTimeKeys: PreKey[];
}
/** One device a sender key goes to, from the directory. */
export interface RecipientDevice {
    user: string;
    device: string;
    keys: Recipient;
    spkId: number;
    spkSig: Uint8Array;
    otkId?: number;
}
export declare function parseEnvelope(content: string): Envelope;
/**
 * Identity is one device's private keys. The private keys are CryptoKeys, not
 * extractable when generated here, so a browser can keep them in IndexedDB (structured
 * clone) without any script being able to read their bytes.
 */
export declare class Identity {
    readonly userId: string;
    readonly deviceId: string;
    readonly ik: CryptoKey;
    readonly sk: CryptoKey;
    readonly bundle: Bundle;
    readonly spkId: number;
    readonly spk: CryptoKey;
    readonly spkPub: Uint8Array;
    otks: Map<number, CryptoKey>;
    next: number;
    private constructor();
    static create(userId: string, deviceId: string): Promise<Identity>;
    /** The device's public keys with n new one-time keys. */
    publish(n: number): Promise<DeviceKeys>;
    newOneTimeKeys(n: number): Promise<PreKey[]>;
    /** A structured-cloneable copy (CryptoKeys and bytes) for IndexedDB. */
    toState(): IdentityState;
    static fromState(s: IdentityState): Identity;
}
export interface IdentityState {
    userId: string;
    deviceId: string;
    ik: CryptoKey;
    sk: CryptoKey;
    bundle: Uint8Array;
    spkId: number;
    spk: CryptoKey;
    spkPub: Uint8Array;
    otks: [number, CryptoKey][];
    next: number;
}
/** The result of Keyring.open. */
export interface Opened {
    envelope: Envelope;
    payload?: Payload;
    keyFrom?: boolean;
}
/** The directory's identity bundles of a user's devices (no one-time keys claimed). */
export type Lookup = (user: string) => Promise<Map<string, Bundle>>;
/** Keyring: see the Go SDK's Keyring; the same rules, the same bytes. */
export declare class Keyring {
    readonly id: Identity;
    own: Map<string, {
        epoch: number;
        chain: Uint8Array;
        counter: number;
        stale: boolean;
    }>;
    recv: Map<string, {
        chain: Uint8Array;
        bundle: Bundle;
    }>;
    peers: Map<string, Bundle>;
    revoked: Map<string, number>;
    seen: Map<string, string>;
    /** Serializes open and encrypt so the maps see one operation at a time. */
    private lock;
    constructor(id: Identity);
    private exclusive;
    needsRotation(chat: string): boolean;
    markStale(chat: string): void;
    forgetDevice(user: string, dev: string): void;
    revoke(user: string, dev: string, seq: number): void;
    rotate(chat: string): number;
    /** A "keys" envelope with this device's current sender key of chat for each of to. */
    sealKeys(chat: string, to: RecipientDevice[]): Promise<string>;
    /** A "msg" envelope of payload for messageId in chat under the current sender key. */
    encrypt(chat: string, messageId: string, payload: Payload): Promise<string>;
    /** Decrypts a message of chat (see the Go Keyring.Open); throws E2EEError. */
    open(chat: string, senderUser: string, messageId: string, seq: number, content: string, lookup?: Lookup): Promise<Opened>;
    private openKeys;
    private confirm;
}
