// A TypeScript SDK peer driven by a Go test (pkg/e2e/e2ee_sdk_test.go) over stdin and
// stdout, one JSON object a line: the Go test sends commands, the peer answers each
// ({"id", "ok", ...} or {"id", "error"}) and reports every message its users' devices
// deliver ({"event":"message", ...}, attachments downloaded and decrypted). So the
// Go and TypeScript SDKs talk to each other through a real server.
import { createInterface } from "node:readline";
import WebSocket from "ws";
import { EncryptedChats, Identity, Keyring, NatterClient } from "../dist/natter.js";

const url = process.env.NATTER_URL;
const devices = new Map(); // name -> {client, chats}
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const b64 = (u8) => Buffer.from(u8).toString("base64");

const commands = {
  async start({ name, user, device, token }) {
    const client = new NatterClient({ url, token, WebSocket, reconnectInitialMs: 50, reconnectMaxMs: 500 });
    const chats = new EncryptedChats(client, new Keyring(await Identity.create(user, device)));
    chats.onMessage(async (m) => {
      const ev = { event: "message", name, chatId: m.chatId, seq: m.seq, messageId: m.messageId, senderId: m.senderId,
        messageType: m.messageType, refId: m.refId, meta: m.meta, payload: m.payload, error: m.error ? String(m.error.code ?? m.error.message) : undefined,
        keyChange: m.keyChange };
      if (m.payload?.file) {
        try { ev.fileData = b64(await chats.download(m.payload.file)); } catch (e) { ev.fileError = String(e); }
      }
      out(ev);
    });
    await chats.register(true);
    const connected = new Promise((r) => client.on("connected", r));
    client.connect();
    await connected;
    devices.set(name, { client, chats });
    return {};
  },
  async createChat({ name, type, members, title }) {
    return { chatId: await devices.get(name).chats.createChat(type, members, title ?? "") };
  },
  async send({ name, chat, text }) {
    return { messageId: (await devices.get(name).chats.sendText(chat, text)).messageId };
  },
  async sendFile({ name, chat, data, fileName, mime }) {
    return { messageId: (await devices.get(name).chats.sendFile(chat, Buffer.from(data, "base64"), { name: fileName, mime })).messageId };
  },
  async edit({ name, chat, refId, text }) {
    return { messageId: (await devices.get(name).chats.edit(chat, refId, text)).messageId };
  },
  async idle({ name }) { await devices.get(name).chats.idle(); return {}; },
  async stop() { for (const d of devices.values()) d.client.close(); setTimeout(() => process.exit(0), 50); return {}; },
};

createInterface({ input: process.stdin }).on("line", async (line) => {
  const cmd = JSON.parse(line);
  try {
    out({ id: cmd.id, ok: true, ...(await commands[cmd.cmd](cmd)) });
  } catch (e) {
    out({ id: cmd.id, error: String(e?.stack ?? e) });
  }
});
out({ event: "ready" });
