// Human messages for the server's stable error codes (docs/protocol.md, "Error
// codes"). The web chat never shows a raw code or the server's technical message:
// it says what happened in words a user knows and, where there is one, what to do.

/** ID_RULE is the rule every user and chat ID follows, as a user reads it. */
export const ID_RULE = "letters, digits, - and _ (at most 64)";

const VALID_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** validUserId reports whether s can be a user ID. */
export const validUserId = (s) => VALID_ID.test(s);

// By code, then by what the user was doing ("*" for anything else).
const MESSAGES = {
  invalid_id: {
    "*": `That is not a valid user ID: use ${ID_RULE}.`,
  },
  not_member: {
    "*": "You are not a member of this chat (any more).",
    newChat: "You cannot start that chat.",
  },
  forbidden: {
    "*": "Only an admin of this group can do that.",
    signin: "This page may not sign in here (a foreign origin).",
  },
  conflict: {
    "*": "That is not possible in this chat.",
    leave: "You are the only admin: make another member an admin before you leave.",
    removeMember: "That would leave the group without an admin: make someone else an admin first.",
    addMember: "This group has reached its member limit.",
    rename: "A direct chat has no name to change.",
  },
  not_found: {
    "*": "That no longer exists.",
    removeMember: "That person is not a member of this group.",
    upload: "This server does not accept uploads.",
    react: "That message no longer exists.",
  },
  too_large: {
    "*": "That is too long.",
    newChat: "That is too many people for one group.",
    rename: "That name is too long (at most 128 bytes).",
    name: "That name is too long (at most 64 characters).",
    send: "That message is too long (at most 16 KB of text).",
    upload: "That file is too large.",
  },
  bad_request: {
    "*": "The server could not accept that.",
    rename: "A name cannot contain control characters.",
    name: "A display name cannot contain control or invisible characters.",
    upload: "That kind of file cannot be shared (images, PDFs, text, audio, video and ZIP can).",
    react: "That message cannot be reacted to or changed.",
  },
  blocked: {
    "*": "That person does not accept this from you.",
    send: "Not sent: this person does not accept your messages.",
    newChat: "You cannot start a chat with that person.",
    addMember: "You cannot add that person.",
  },
  rate_limited: { "*": "You are going too fast: wait a moment, then try again." },
  unauthorized: { "*": "Your session is no longer valid: sign in again." },
  token_expired: { "*": "Your session has expired: sign in again." },
  unavailable: { "*": "The server is not answering right now: try again in a moment." },
  shutting_down: { "*": "The server is restarting: try again in a moment." },
  quota_exceeded: { "*": "You have used all your upload space: files you uploaded but never sent expire and free it." },
  storage_full: { "*": "The server is out of storage right now: try again later." },
  bad_host: { "*": "A development server answers only at localhost or 127.0.0.1: open the chat at one of those." },
  internal: { "*": "Something went wrong on the server: try again." },
  closed: { "*": "Not sent: you signed out before it was delivered." },
  unknown_type: { "*": "This server does not support that yet." },
};

/**
 * humanError returns what to tell the user about e (a NatterError, a REST error
 * with a code, or a network failure) while they were doing `doing` (newChat,
 * addMember, removeMember, rename, leave, send, upload, react, history, chats,
 * signin).
 */
export function humanError(e, doing = "*") {
  const code = e?.code;
  const byCode = code && MESSAGES[code];
  if (byCode) return byCode[doing] || byCode["*"];
  if (e instanceof TypeError) return "Cannot reach the server: check your connection.";
  return "Something went wrong: try again.";
}
