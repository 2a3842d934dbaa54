// Natter's TypeScript SDK: an ES module with no runtime dependencies, for browsers and
// Node 20+ (pass the `ws` package's WebSocket there). Protocol: docs/protocol.md.
export { NatterClient } from "./client.js";
export { ChatOrderer } from "./ordering.js";
export { Outbox, backoffDelay, newId } from "./outbox.js";
export { OpenError, openSSE, openWebSocket } from "./transport.js";
export { CloseCodes, NatterError, RETRYABLE_CODES, displayName } from "./types.js";
export * as e2ee from "./e2ee.js";
export { E2EEError, E2EE_KEYS_MESSAGE_TYPE, E2EE_MESSAGE_TYPE } from "./e2ee.js";
export { Identity, Keyring, parseEnvelope } from "./e2ee_keyring.js";
export { EncryptedChats } from "./e2ee_chats.js";
