// `npm test`: every suite, then one closing line "N passed, N failed" summing them all.
//   1. generated code is current (protobuf static code, wrangler types)
//   2. TypeScript strict typecheck
//   3. unit and integration tests inside workerd (vitest-pool-workers; the projects of
//      vitest.config.ts: `unit` alone is `npm run test:unit`, the fast inner loop)
//   4. end-to-end tests against a real `wrangler dev` (Node clients, real WebSockets)
//   5. browser tests in Chromium, when test/browser exists and Chromium is installed
// Each step counts its own tests and says how long it took; a step that crashes counts as one
// failure. `npm test -- unit integration e2e` runs some steps (unit and integration together
// are one vitest run).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const bin = (name) => join(root, "node_modules", ".bin", name);
const only = process.argv.slice(2); // e.g. `npm test -- unit e2e`
let passed = 0;
let failed = 0;
let skipped = 0;

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env: { ...process.env, ...env } });
  return r.status === 0;
}

function check(name, ok) {
  console.log(`${ok ? "ok" : "FAILED"}: ${name}`);
  ok ? passed++ : failed++;
}

function vitest(name, config, extraArgs = [], extraEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), "edgechat-test-"));
  const out = join(dir, "results.json");
  const started = Date.now();
  const ok = run(bin("vitest"), ["run", "--config", config, ...extraArgs, "--reporter=default", "--reporter=json", `--outputFile.json=${out}`], extraEnv);
  const took = `${Math.round((Date.now() - started) / 1000)} s`;
  if (existsSync(out)) {
    const r = JSON.parse(readFileSync(out, "utf8"));
    passed += r.numPassedTests;
    failed += r.numFailedTests;
    skipped += r.numPendingTests + r.numTodoTests;
    // Files that failed to load report no tests: count each as a failure.
    const brokenFiles = r.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
    failed += brokenFiles;
    if (!ok && r.numFailedTests === 0 && brokenFiles === 0) failed++;
    console.log(`${name}: ${r.numPassedTests} passed, ${r.numFailedTests + brokenFiles} failed (${took})`);
  } else {
    console.log(`${name}: did not run (${took})`);
    failed++;
  }
  rmSync(dir, { recursive: true, force: true });
}

const t0 = Date.now();
const want = (step) => only.length === 0 || only.includes(step);

if (want("generated")) {
  const dir = mkdtempSync(join(tmpdir(), "edgechat-types-"));
  // Regenerate and compare the content. (`wrangler types --check` compares a hash that also
  // covers a local .dev.vars, so it disagrees between a fresh clone and a dev machine.)
  const typesPath = join(root, "worker-configuration.d.ts");
  const committed = readFileSync(typesPath, "utf8");
  run(bin("wrangler"), ["types", "worker-configuration.d.ts", "--strict-vars=false", "--env-file", ".dev.vars.example"], { WRANGLER_SEND_METRICS: "false" });
  const withoutHash = (t) => t.replace(/\(hash: [0-9a-f]+\)/, "");
  check("worker-configuration.d.ts matches wrangler.toml (npm run cf-typegen)", withoutHash(readFileSync(typesPath, "utf8")) === withoutHash(committed));
  writeFileSync(typesPath, committed);
  const before = readFileSync(join(root, "protocol/generated/chat.js"), "utf8");
  run("node", ["scripts/gen-proto.mjs"]);
  check("protocol/generated matches protocol/chat.proto (npm run proto)", before === readFileSync(join(root, "protocol/generated/chat.js"), "utf8"));
  rmSync(dir, { recursive: true, force: true });
}
if (want("typecheck")) {
  check("typecheck: Worker, objects, SDK, in-workerd tests (tsc --noEmit, strict)", run(bin("tsc"), ["-p", "tsconfig.json", "--noEmit"]));
  check("typecheck: Node-side e2e tests and tooling", run(bin("tsc"), ["-p", "test/e2e/tsconfig.json", "--noEmit"]));
  check("typecheck: web app (DOM)", run(bin("tsc"), ["-p", "web/tsconfig.json", "--noEmit"]));
}
if (want("unit") && want("integration")) vitest("workerd unit + integration", "vitest.config.ts");
else if (want("unit")) vitest("workerd unit", "vitest.config.ts", ["--project", "unit"]);
else if (want("integration")) vitest("workerd integration", "vitest.config.ts", ["--project", "integration"]);
if (want("e2e") && existsSync(join(root, "test/e2e/vitest.config.ts"))) vitest("end-to-end (wrangler dev)", "test/e2e/vitest.config.ts");
if (want("browser") && existsSync(join(root, "test/browser/vitest.config.ts"))) {
  if (existsSync(process.env.CHROMIUM_PATH ?? "/usr/bin/chromium")) vitest("browser (Chromium)", "test/browser/vitest.config.ts");
  else { console.log("browser: Chromium not installed (apt-get install -y chromium); counted as failed"); failed++; }
}

console.log(`\nall steps: ${Math.round((Date.now() - t0) / 1000)} s`);
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
