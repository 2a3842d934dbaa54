import type { NatterClient } from "./client.js";
import type { Ack, Message } from "./types.js";
import { E2EEError } from "./e2ee.js";
import type { Keyring, Payload, FileRef } from "./e2ee_keyring.js";
/** A message as EncryptedChats delivers it: decrypted payload, or why it did not decrypt. */
export interface DecryptedMessage extends Message {
    payload?: Payload;
    error?: E2EEError | Error;
    /** A device key event of a member (show it: the person's keys changed). */
    keyChange?: {
        event: "device_keys_changed" | "device_revoked";
        userId: string;
        deviceId: string;
    };
}
export declare class EncryptedChats {
    readonly client: NatterClient;
    readonly keyring: Keyring;
    private queue;
    private sending;
    private readonly listeners;
    /** Wraps client; call before client.connect() so no message is missed. */
    constructor(client: NatterClient, keyring: Keyring);
    /** Subscribes to every chat message in order, decrypted where encrypted. Returns an unsubscribe function. */
    onMessage(fn: (m: DecryptedMessage) => void): () => void;
    /** Publishes this device's keys (publish: a new device) or tops its one-time keys up. */
    register(publish: boolean): Promise<void>;
    /** Creates an encrypted chat ("direct" or "group") and returns its id. */
    createChat(type: "direct" | "group", members: string[], name?: string): Promise<string>;
    private lookup;
    private emit;
    private handle;
    /**
     * decrypt applies one message to the keyring (a key event, a key distribution) and
     * returns it decrypted, or null for a key distribution (nothing to show). Messages
     * delivered live go through it by themselves; call it for pages of history
     * (loadHistory) with live false: old membership and key events then change no
     * state (they were applied when they happened).
     */
    decrypt(m: Message, live?: boolean): Promise<DecryptedMessage | null>;
    /** Waits until every message received so far is processed (tests, and before a send that must see a change). */
    idle(): Promise<void>;
    private ensureKeys;
    private recipients;
    /** Encrypts and sends payload to chat. */
    send(chat: string, payload: Payload, o?: {
        messageId?: string;
    }): Promise<Ack>;
    sendText(chat: string, text: string, o?: {
        messageId?: string;
    }): Promise<Ack>;
    /** Replaces the text of this user's message refId, encrypted. */
    edit(chat: string, refId: string, text: string): Promise<Ack>;
    /** Encrypts data under a fresh key, uploads the ciphertext as opaque media and sends its reference. */
    sendFile(chat: string, data: Uint8Array, o?: {
        name?: string;
        mime?: string;
        caption?: string;
        messageId?: string;
    }): Promise<Ack>;
    /** Downloads and decrypts an attachment. */
    download(file: FileRef): Promise<Uint8Array>;
}
