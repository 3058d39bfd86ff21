/**
 * The Worker's size and cold start (BENCHMARKS.md, "Worker bundle and cold start").
 *
 *   npx tsx bench/worker-startup.ts [--runs 5] [--eval-runs 20] [--no-dev] [--baseline <main.js>]
 *
 * 1. Bundle: `wrangler deploy --dry-run --outdir <tmp>` as deployed (not minified) and with
 *    `--minify`; bytes and gzip -9 bytes of the bundle.
 * 2. Script startup: a fresh Node process imports the minified bundle (parse, compile and
 *    top-level evaluation in V8: what Cloudflare's "startup time" measures); `cloudflare:workers`
 *    is replaced by a stub module. CPU time (user + system) of the import, which a busy machine
 *    disturbs less than wall time; median of --eval-runs processes. With --baseline (an older
 *    minified bundle, e.g. kept from a run on the previous commit) the two are measured
 *    alternately, so both see the same machine.
 * 3. Dev cold start: spawn `wrangler dev` (fresh state directory) until the first `GET /v1/health`
 *    answers 200, polled every 20 ms. Median of --runs starts. Includes wrangler's own startup and
 *    the web build, so it moves little with the bundle; it is what a developer waits for.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { freePort, QUIET_WRANGLER_ENV } from "../test/support/dev-server.js";

const root = new URL("../", import.meta.url).pathname;
const wrangler = join(root, "node_modules", ".bin", "wrangler");
const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const RUNS = flag("--runs", 5);
const EVAL_RUNS = flag("--eval-runs", 20);
const env = { ...process.env, ...QUIET_WRANGLER_ENV };
/** Temporary directories, removed at the end. */
const temps: string[] = [];
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

function bundle(minify: boolean): string {
  const out = tempDir("edgechat-bundle-");
  const r = spawnSync(wrangler, ["deploy", "--dry-run", "--outdir", out, ...(minify ? ["--minify"] : [])], { cwd: root, env, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`wrangler deploy --dry-run failed:\n${r.stderr || r.stdout}`);
  return join(out, "main.js");
}

/** The bundle as a Node module: `cloudflare:workers` becomes a stub. */
function nodeModule(file: string): string {
  const stubbed = join(tempDir("edgechat-eval-"), "main.mjs");
  const stub = "data:text/javascript,export class DurableObject{constructor(c,e){this.ctx=c;this.env=e}}export class WorkerEntrypoint{}export const env={}";
  writeFileSync(stubbed, readFileSync(file, "utf8").replaceAll('"cloudflare:workers"', JSON.stringify(stub)));
  return stubbed;
}

/** CPU ms of importing the module in a fresh process. */
function evalCpuMs(module: string): number {
  const script = `const c=process.cpuUsage();await import(${JSON.stringify(`file://${module}`)});const d=process.cpuUsage(c);console.log((d.user+d.system)/1000)`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`evaluating the bundle failed:\n${r.stderr}`);
  return Number(r.stdout.trim());
}

async function devColdStartMs(): Promise<number> {
  const state = mkdtempSync(join(tmpdir(), "edgechat-cold-"));
  const port = await freePort();
  const started = performance.now();
  const child = spawn(wrangler, ["dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state, "--inspector-port", String(await freePort()), "--show-interactive-dev-session=false", "--var", "JWT_SECRET:edgechat-bench-secret-0123456789abcdef0123456789"], { cwd: root, env, detached: true, stdio: "ignore" });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`wrangler dev exited (${child.exitCode})`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v1/health`);
        await res.arrayBuffer();
        if (res.status === 200) return performance.now() - started;
      } catch {
        // not listening yet
      }
      if (performance.now() - started > 120_000) throw new Error("wrangler dev did not answer within 120 s");
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    const exited = new Promise((r) => child.once("exit", r));
    try { process.kill(-child.pid!, "SIGKILL"); } catch { /* gone */ }
    await exited;
    rmSync(state, { recursive: true, force: true });
  }
}

const plain = readFileSync(bundle(false));
const minFile = bundle(true);
const minified = readFileSync(minFile);
console.log(`bundle: ${kib(plain.length)} (gzip ${kib(gzipSync(plain, { level: 9 }).length)}); minified ${kib(minified.length)} (gzip ${kib(gzipSync(minified, { level: 9 }).length)})`);
const current = nodeModule(minFile);
const baselineAt = args.indexOf("--baseline");
const baseline = baselineAt >= 0 ? nodeModule(args[baselineAt + 1]!) : undefined;
const evals: Record<string, number[]> = { current: [], baseline: [] };
evalCpuMs(current); // warm the disk cache
if (baseline) evalCpuMs(baseline);
for (let i = 0; i < EVAL_RUNS; i++) {
  evals.current!.push(evalCpuMs(current));
  if (baseline) evals.baseline!.push(evalCpuMs(baseline));
}
for (const [name, xs] of Object.entries(evals)) {
  if (xs.length === 0) continue;
  console.log(`script startup CPU, ${name} (Node ${process.version}, minified): median ${median(xs).toFixed(1)} ms of ${xs.length} (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`);
}
if (!args.includes("--no-dev")) {
  const starts: number[] = [];
  for (let i = 0; i < RUNS; i++) starts.push(await devColdStartMs());
  console.log(`wrangler dev spawn → first /v1/health 200: median ${(median(starts) / 1000).toFixed(2)} s of ${RUNS} (${starts.map((s) => (s / 1000).toFixed(2)).join(", ")})`);
}
for (const dir of temps) rmSync(dir, { recursive: true, force: true });
