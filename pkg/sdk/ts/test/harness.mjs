// Test harness: a real natter process (built once per test process from the
// repository, or NATTER_BIN), dev tokens from `natter token`, REST helpers, and a TCP
// proxy that can cut, refuse, black-hole or block WebSocket upgrades, so network
// faults are real ones between a real client and a real server.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const sdkRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const repoRoot = resolve(sdkRoot, "../../..");

let built;
/** natterBin returns the natter binary: NATTER_BIN, or one `go build` per process. */
export function natterBin() {
  if (process.env.NATTER_BIN) return process.env.NATTER_BIN;
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), "natter-bin-"));
  built = join(dir, "natter");
  const args = ["build", "-o", built];
  if (process.env.NATTER_GO_OVERLAY) args.push("-overlay", process.env.NATTER_GO_OVERLAY);
  execFileSync("go", [...args, "."], { cwd: repoRoot, stdio: "inherit" });
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return built;
}

/** waitFor polls cond every 20ms until it is truthy or timeoutMs passes (then throws msg). */
export async function waitFor(cond, msg, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting for: " + (typeof msg === "function" ? msg() : msg));
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * startNatter runs `natter serve` with every role on a fresh data directory, an
 * embedded NATS server on a random port and the gateway on a random port. Stop it with
 * stop() (also on process exit).
 */
export async function startNatter(extraArgs = []) {
  const bin = natterBin();
  const dataDir = mkdtempSync(join(tmpdir(), "natter-data-"));
  const proc = spawn(bin, ["serve", "--data-dir", dataDir, "--nats.listen", "127.0.0.1:-1",
    "--gateway.listen", "127.0.0.1:0", "--admin.listen=", "--log.level", "warn", "--nats.partitions", "4",
    // Groups of users who share no chat are made directly, as before invitations
    // existed; test/server/people.test.mjs asks for consent itself.
    "--gateway.consent-direct-adds", ...extraArgs],
    { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  proc.stderr.on("data", (d) => { err += d; if (process.env.NATTER_TEST_LOG) process.stderr.write(d); });
  const url = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error("natter did not start:\n" + out + err)), 60000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/web chat:\s+(http:\/\/[0-9.]+:\d+)\//);
      if (m) { clearTimeout(timer); res(m[1]); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); rej(new Error(`natter exited ${code}:\n${out}${err}`)); });
  });
  const kill = () => { try { proc.kill("SIGKILL"); } catch { /* gone */ } };
  process.on("exit", kill);
  return {
    url,
    port: Number(new URL(url).port),
    dataDir,
    /** A dev token for user from `natter token` (ttl like "1h" or "-1h"). */
    token(user, ttl = "1h") {
      return execFileSync(bin, ["token", "--user", user, "--data-dir", dataDir, "--ttl", ttl]).toString().trim();
    },
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        const t = setTimeout(kill, 10000);
        await exited;
        clearTimeout(t);
      }
      process.off("exit", kill);
      rmSync(dataDir, { recursive: true, force: true });
    },
    stderr: () => err,
  };
}

/** rest makes a JSON REST call and returns {status, body}. */
export async function rest(url, method, path, token, body) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: r.status, body: json };
}

/** createChat creates a chat as the token's user and returns its id. */
export async function createChat(url, token, type, members, name = "") {
  const r = await rest(url, "POST", "/api/v1/chats", token, { type, members, name });
  if (r.status !== 200 && r.status !== 201) throw new Error(`create chat: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id;
}

/**
 * startProxy forwards 127.0.0.1:<port> to targetPort. Faults: cut() drops every live
 * connection; refuse(true) drops new ones at once; blackhole(true) keeps connections
 * open but silently discards their bytes both ways; blockWebSocket drops any request
 * that asks for a WebSocket upgrade (as networks that block WebSockets do).
 */
export async function startProxy(targetPort, { blockWebSocket = false } = {}) {
  const socks = new Set();
  let refusing = false;
  let holing = false;
  let upgradesBlocked = 0;
  const server = net.createServer((client) => {
    if (refusing) { client.destroy(); return; }
    client.once("data", (first) => {
      if (blockWebSocket && /^upgrade:\s*websocket/im.test(first.toString("latin1"))) {
        upgradesBlocked++;
        client.destroy();
        return;
      }
      const upstream = net.connect(targetPort, "127.0.0.1");
      socks.add(client);
      socks.add(upstream);
      const drop = () => { client.destroy(); upstream.destroy(); socks.delete(client); socks.delete(upstream); };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
      upstream.write(first);
      client.on("data", (d) => { if (!holing) upstream.write(d); });
      upstream.on("data", (d) => { if (!holing) client.write(d); });
    });
    client.on("error", () => client.destroy());
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  return {
    url: `http://127.0.0.1:${port}`,
    cut() { for (const s of socks) s.destroy(); socks.clear(); },
    refuse(on) { refusing = on; },
    blackhole(on) { holing = on; },
    get upgradesBlocked() { return upgradesBlocked; },
    get open() { return socks.size; },
    close() { this.cut(); return new Promise((r) => server.close(r)); },
  };
}

/** collector gathers a client's message events. */
export function collector(client) {
  const messages = [];
  const counts = {};
  client.on("message", (m) => messages.push(m));
  client.on("frame", (f) => { counts[f.type] = (counts[f.type] ?? 0) + 1; });
  return { messages, counts };
}

export const haveChromium = () => existsSync(process.env.NATTER_CHROMIUM ?? "/usr/bin/chromium");
