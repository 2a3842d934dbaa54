// The SDK as a user gets it: `npm pack`, installed from the tarball into a scratch
// project beside `ws` and `@types/ws`, and every TypeScript example of README.md
// compiled there with strict tsc (module resolution as Node's, through "exports").
// Packed with --ignore-scripts: dist/ is built and checked fresh before the tests
// (scripts/check-dist.mjs), and prepack's output would mix with npm's JSON.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const sdkDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const pkg = JSON.parse(readFileSync(join(sdkDir, "package.json"), "utf8"));

function run(cmd, args, cwd) {
  try {
    return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(" ")} failed in ${cwd}:\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

/** The ```ts blocks of the README, in order. */
export function tsExamples(md) {
  return [...md.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
}

test("package.json is publishable", () => {
  assert.equal(pkg.private, undefined, "a private package cannot be published");
  assert.match(pkg.name, /^@?[a-z0-9-]+(\/[a-z0-9-]+)?$/);
  assert.match(pkg.version, /^\d+\.\d+\.\d+/);
  assert.equal(pkg.exports["."].types, "./dist/natter.d.ts");
  assert.equal(pkg.exports["."].import, "./dist/natter.js");
  assert.deepEqual(pkg.dependencies ?? {}, {}, "the SDK has no runtime dependencies");
});

test("the packed SDK installs and the README's examples compile with strict tsc against ws", { timeout: 240_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), "natter-sdk-pack-"));
  try {
    const out = JSON.parse(run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], sdkDir));
    const files = out[0].files.map((f) => f.path).sort();
    for (const want of ["README.md", "package.json", "dist/natter.js", "dist/natter.d.ts", "dist/client.js", "dist/client.d.ts"]) {
      assert.ok(files.includes(want), `tarball lacks ${want}: ${files.join(", ")}`);
    }
    for (const f of files) assert.ok(!f.startsWith("src/") && !f.startsWith("test/") && !f.startsWith("node_modules/"), `tarball carries ${f}`);

    const proj = join(work, "app");
    mkdirSync(join(proj, "examples"), { recursive: true });
    writeFileSync(join(proj, "package.json"), JSON.stringify({
      name: "scratch", private: true, type: "module",
      dependencies: { [pkg.name]: `file:${join(work, out[0].filename)}`, ws: pkg.devDependencies.ws },
      devDependencies: { "@types/ws": pkg.devDependencies["@types/ws"], typescript: pkg.devDependencies.typescript },
    }, null, 2));
    writeFileSync(join(proj, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true,
        noEmit: true, lib: ["ES2022", "DOM"], types: ["node"], skipLibCheck: false,
      },
      include: ["examples/*.ts"],
    }, null, 2));
    const examples = tsExamples(readFileSync(join(sdkDir, "README.md"), "utf8"));
    assert.ok(examples.length >= 3, `README has ${examples.length} ts examples`);
    // Each example is a module of its own (export {}), as a user would paste it.
    examples.forEach((src, i) => writeFileSync(join(proj, "examples", `example${i + 1}.ts`), src + "\nexport {};\n"));

    run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], proj);
    run(join(proj, "node_modules", ".bin", "tsc"), ["-p", "."], proj);

    // And the installed module loads and exports the client.
    const kind = run("node", ["--input-type=module", "-e", `import("${pkg.name}").then((m) => console.log(typeof m.NatterClient, typeof m.NatterError))`], proj);
    assert.equal(kind.trim(), "function function");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test("strict tsc refuses a wrong call, so the compile check above can fail", { timeout: 120_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), "natter-sdk-neg-"));
  try {
    writeFileSync(join(work, "bad.ts"), `import { NatterClient } from "${join(sdkDir, "dist", "natter.js")}";\nnew NatterClient({ token: 42 });\n`);
    assert.throws(() => run(join(sdkDir, "node_modules", ".bin", "tsc"),
      ["--strict", "--noEmit", "--target", "ES2022", "--module", "NodeNext", "--moduleResolution", "NodeNext", join(work, "bad.ts")], work), /TS2322/);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
