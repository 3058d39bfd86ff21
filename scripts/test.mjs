// `npm test`: every suite, then one closing line "N passed, N failed" summing them all.
//   1. generated code is current (protobuf static code, wrangler types)
//   2. TypeScript strict typecheck
//   3. unit and integration tests inside workerd (vitest-pool-workers; the projects of
//      vitest.config.ts: `unit` alone is `npm run test:unit`, the fast inner loop)
//   4. end-to-end tests against a real `wrangler dev` (Node clients, real WebSockets), started
//      after step 1 and run alongside steps 2 and 3; their output is printed when they end
//   5. browser tests in Chromium, when test/browser exists and Chromium is installed
// Each step counts its own tests and says how long it took; a step that crashes counts as one
// failure. `npm test -- unit integration e2e` runs some steps (unit and integration together
// are one vitest run).
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

/**
 * Starts a vitest run; `count()` waits for it and adds its tests to the totals. A run in the
 * background writes its output to a file, printed when it is counted.
 */
function vitest(name, config, { args = [], background = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "edgechat-test-"));
  const out = join(dir, "results.json");
  const log = join(dir, "output.log");
  const argv = ["run", "--config", config, ...args, "--reporter=default", "--reporter=json", `--outputFile.json=${out}`];
  const started = Date.now();
  let done;
  if (background) {
    const fd = openSync(log, "w");
    const child = spawn(bin("vitest"), argv, { cwd: root, stdio: ["ignore", fd, fd], env: process.env });
    closeSync(fd);
    done = new Promise((resolve) => child.on("close", (code) => resolve({ ok: code === 0, ms: Date.now() - started })));
  } else {
    const ok = run(bin("vitest"), argv);
    done = Promise.resolve({ ok, ms: Date.now() - started });
  }
  return {
    async count() {
      const { ok, ms } = await done;
      if (background) {
        console.log(`\n---- ${name} (ran alongside the steps above) ----`);
        process.stdout.write(readFileSync(log));
      }
      let took = `${Math.round(ms / 1000)} s`;
      if (existsSync(out)) {
        const r = JSON.parse(readFileSync(out, "utf8"));
        // In the background the exit is only seen once the foreground steps are done: the run
        // ended when its last file did.
        const ended = Math.max(0, ...r.testResults.map((f) => f.endTime ?? 0));
        if (background && ended > started) took = `${Math.round((ended - started) / 1000)} s`;
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
    },
  };
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
// The end-to-end tests mostly wait (on wrangler dev starting, on the crash test's pauses): they
// run alongside the typechecks and the workerd tests, which keep one core busy at most.
const e2e = want("e2e") && existsSync(join(root, "test/e2e/vitest.config.ts"))
  ? vitest("end-to-end (wrangler dev)", "test/e2e/vitest.config.ts", { background: ["typecheck", "unit", "integration"].some(want) })
  : undefined;
if (want("typecheck")) {
  check("typecheck: Worker, objects, SDK, in-workerd tests (tsc --noEmit, strict)", run(bin("tsc"), ["-p", "tsconfig.json", "--noEmit"]));
  check("typecheck: Node-side e2e tests and tooling", run(bin("tsc"), ["-p", "test/e2e/tsconfig.json", "--noEmit"]));
  check("typecheck: web app (DOM)", run(bin("tsc"), ["-p", "web/tsconfig.json", "--noEmit"]));
}
if (want("unit") && want("integration")) await vitest("workerd unit + integration", "vitest.config.ts").count();
else if (want("unit")) await vitest("workerd unit", "vitest.config.ts", { args: ["--project", "unit"] }).count();
else if (want("integration")) await vitest("workerd integration", "vitest.config.ts", { args: ["--project", "integration"] }).count();
await e2e?.count();
if (want("browser") && existsSync(join(root, "test/browser/vitest.config.ts"))) {
  if (existsSync(process.env.CHROMIUM_PATH ?? "/usr/bin/chromium")) await vitest("browser (Chromium)", "test/browser/vitest.config.ts").count();
  else { console.log("browser: Chromium not installed (apt-get install -y chromium); counted as failed"); failed++; }
}

console.log(`\nall steps: ${Math.round((Date.now() - t0) / 1000)} s`);
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
