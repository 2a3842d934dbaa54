// Checks that the committed dist/ is what tsc builds from src/ now: it builds into a
// temporary directory and compares every file both ways. Exit 1 with the differing
// files named, so a stale build never lands (the web chat and `go run . serve` use
// dist/ as committed, with no npm step).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = mkdtempSync(join(tmpdir(), "natter-sdk-dist-"));
try {
  execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.json"), "--outDir", out], { stdio: "inherit" });
  const want = readdirSync(out).sort();
  const have = readdirSync(join(root, "dist")).sort();
  const bad = [];
  for (const f of new Set([...want, ...have])) {
    if (!want.includes(f)) bad.push(`${f}: in dist/ but not built from src/ (delete it)`);
    else if (!have.includes(f)) bad.push(`${f}: built but missing from dist/`);
    else if (!readFileSync(join(out, f)).equals(readFileSync(join(root, "dist", f)))) bad.push(`${f}: differs from a fresh build`);
  }
  if (bad.length > 0) {
    console.error("pkg/sdk/ts/dist is stale; run `npm run build` in pkg/sdk/ts and commit dist/:\n  " + bad.join("\n  "));
    process.exit(1);
  }
  console.log(`dist/ is up to date (${want.length} files)`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
