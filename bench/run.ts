/**
 * `npm run bench`: bounded load scenarios against a real `wrangler dev` of edgechat and, in the
 * same invocation, against the bare "limit" worker (bench/limit), then both figures and their
 * ratio. Both servers keep their state in one temporary directory under /tmp (same medium).
 *
 *   npm run bench                     full run (~3 min here; every scenario is capped at 60 s)
 *   npm run bench -- --quick          smaller counts (< 2 min)
 *   npm run bench -- --only a,d       some scenarios ((g) starts an edgechat server of its own with
 *                                     100,000 seeded accounts: ~10 min; --quick --only g is shorter)
 *   npm run bench -- --repeat 3       runs per scenario and target (default: 2 full, 1 quick); the best is reported
 *   npm run bench -- --url http://127.0.0.1:8787   use a running edgechat instead of starting one
 *   npm run bench -- --limit-url URL | --no-limit  a running limit worker / no comparison
 *   npm run bench -- --window 64 --rate 10         sender pattern (rate: msg/s per sender, 0 = unpaced)
 *   npm run bench -- --server-logs DIR  keep everything wrangler printed, one file per server it started
 *   npm run bench -- --var KEY=VALUE  var for the edgechat server this starts; the bench sets
 *                                     SEND_RATE_PER_SECOND=0 (per-sender limit off: it measures the
 *                                     platform); --var SEND_RATE_PER_SECOND=10 --rate 10 benches with it on
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { DevServerOptions } from "../test/support/dev-server.js";
import { seedAccounts } from "../test/support/seed-accounts.js";
import { machine, medium, revision } from "./load/machine.js";
import { describeConnects } from "./load/connect-pool.js";
import { withTimeout } from "./load/pool.js";
import { cpuMeter } from "./load/procs.js";
import { clean, consoleLine, markdown, type RunMeta } from "./load/report.js";
import type { SenderPattern } from "./load/sender.js";
import { configWithoutAssets, OwnedServer, parseVars } from "./load/servers.js";
import type { Target } from "./load/target.js";
import { EdgechatTarget, LimitTarget } from "./load/targets.js";
import { SCENARIOS } from "./scenarios/index.js";
import { closeAll, quiesce, type Scenario, type ScenarioContext, type ScenarioId, type ScenarioResult } from "./scenarios/scenario.js";
import { warmUp } from "./scenarios/warm-up.js";

/** Bench-only overrides for the edgechat server the bench starts; `--var` wins. */
/**
 * The limiter is off (the bench measures the platform); presence runs with wrangler.toml's
 * production timings, not the test server's short ones (a 2 s TTL would wake every connected
 * user's object three times a second).
 */
const BENCH_VARS: Record<string, string> = { SEND_RATE_PER_SECOND: "0", PRESENCE_TTL_MS: "600000", PRESENCE_OFFLINE_GRACE_MS: "15000" };

/** How a run interrupted by a wrangler reload is recognised. */
const RELOADED = "wrangler reloaded the Worker";

/** Every scenario stops by itself within this, setup and drain included. */
const SCENARIO_BUDGET_MS = 60_000;
/** Kept back from the budget for closing sockets (each close gives up after 2 s). */
const CLOSE_MARGIN_MS = 6_000;

const root = new URL("../", import.meta.url).pathname;

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    url: { type: "string" },
    "limit-url": { type: "string" },
    "no-limit": { type: "boolean", default: false },
    window: { type: "string", default: "64" },
    rate: { type: "string", default: "0" },
    var: { type: "string", multiple: true, default: [] },
    "register-concurrency": { type: "string", default: "8" },
    repeat: { type: "string" },
    out: { type: "string" },
    verbose: { type: "boolean", default: false },
    "server-logs": { type: "string" },
  },
  strict: true,
});

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function positiveInt(name: string, v: string | undefined, min = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}; got ${v}`);
  return n;
}

/**
 * The run with the best headline, carrying every run's headline: on a machine shared with other
 * work, the least disturbed run is the closest to what the server can do. A failed run is never
 * the best while a clean one exists (and the check still fails on it).
 */
function bestOf(runs: readonly ScenarioResult[]): ScenarioResult {
  const score = (r: ScenarioResult) => (!clean(r) || !r.headline ? -Infinity : r.headline.better === "higher" ? r.headline.value : -r.headline.value);
  const best = runs.reduce((a, b) => (score(b) > score(a) ? b : a));
  return runs.length > 1 ? { ...best, repeats: runs.map((r) => r.headline?.value ?? Number.NaN) } : best;
}

let runCounter = 0;

function budgetOf(scenario: Scenario, quick: boolean): number {
  return scenario.budgetMs?.(quick) ?? SCENARIO_BUDGET_MS;
}

async function runScenario(target: Target, server: OwnedServer | undefined, id: ScenarioId, quick: boolean, pattern: SenderPattern): Promise<ScenarioResult> {
  const scenario = SCENARIOS.find((s) => s.id === id)!;
  const params = scenario.params(quick, pattern);
  const start = performance.now();
  const ctx: ScenarioContext = {
    target, quick, pattern, log, devices: [], tracker: undefined, phase: "starting",
    runTag: `${target.name === "edgechat" ? "e" : "l"}${id}${(++runCounter).toString(36)}${Date.now().toString(36)}`,
    deadline: start + budgetOf(scenario, quick) - CLOSE_MARGIN_MS,
  };
  const logMark = server?.logMark();
  const serverLog = () => (server && logMark !== undefined ? { serverLog: server.problemsSince(logMark) } : {});
  const base = { scenario: id, title: scenario.title, target: target.name, params };
  const cpu = cpuMeter(target.processes());
  const workerBefore = target.processes()?.worker;
  try {
    const outcome = await withTimeout(scenario.run(ctx, params), budgetOf(scenario, quick) - 3_000, `scenario (${id}) on ${target.name}`);
    const undecodable = ctx.devices.reduce((n, d) => n + d.undecodable, 0);
    const workerAfter = target.processes()?.worker;
    if (workerBefore !== workerAfter) {
      // wrangler dev restarts the Worker's workerd when a watched file changes: nothing measured holds.
      throw new Error(`${RELOADED}: the Worker's workerd process changed (${workerBefore} → ${workerAfter}): wrangler reloaded or crashed mid-scenario`);
    }
    return {
      ...base, traffic: outcome.traffic, headline: outcome.headline, extra: { ...outcome.extra, ...connectsOf(ctx), ...(undecodable ? { undecodable } : {}) },
      timedOut: outcome.timedOut ?? false, durationMs: performance.now() - start, cpu: cpu(), ...serverLog(),
      ...(undecodable ? { error: `${undecodable} frames from the server did not decode` } : {}),
    };
  } catch (err) {
    // Whatever was measured before the failure still says where it stopped.
    const message = err instanceof Error ? err.message : String(err);
    return {
      ...base, traffic: ctx.tracker?.report(), headline: undefined, extra: connectsOf(ctx), timedOut: message.includes("timed out"),
      durationMs: performance.now() - start, cpu: cpu(), ...serverLog(), error: `${message} (while ${ctx.phase})`,
    };
  } finally {
    await closeAll(ctx.devices); // leftovers after an error or a timeout; no-op for closed ones
  }
}

/** How the scenario's devices connected (retries, concurrency, durations), for its result. */
function connectsOf(ctx: ScenarioContext): Record<string, string | number> {
  const c = ctx.connects;
  return c ? { connects: describeConnects(c), connect_retries: c.retries } : {};
}

async function main(): Promise<number> {
  const quick = args.quick ?? false;
  const repeat = positiveInt("repeat", args.repeat ?? (quick ? "1" : "2"), 1);
  const pattern: SenderPattern = { window: positiveInt("window", args.window, 1), ratePerSec: positiveInt("rate", args.rate) };
  const only = args.only ? args.only.split(",").map((s) => s.trim()) : SCENARIOS.map((s) => s.id);
  const unknown = only.filter((id) => !SCENARIOS.some((s) => s.id === id));
  if (unknown.length) throw new Error(`unknown scenario ${unknown.join(",")}; choose from ${SCENARIOS.map((s) => s.id).join(",")}`);
  const selected = SCENARIOS.filter((s) => only.includes(s.id));
  const userVars = parseVars(args.var ?? []);
  const vars = { ...BENCH_VARS, ...userVars };
  if (args.url && Object.keys(userVars).length) throw new Error("--var applies to the edgechat server the bench starts; not with --url");

  const loadAtStart = loadavg()[0] ?? 0;
  const stateRoot = mkdtempSync(join(tmpdir(), "edgechat-bench-"));
  const owned: OwnedServer[] = [];
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    const logDir = args["server-logs"];
    if (logDir) {
      mkdirSync(logDir, { recursive: true });
      for (const s of owned) writeFileSync(join(logDir, `${s.name}.log`), `${s.log().join("\n")}\n`);
      log(`wrangler's output: ${logDir}/{${owned.map((s) => s.name).join(",")}}.log`);
    }
    await Promise.all(owned.map((s) => s.stop()));
    rmSync(stateRoot, { recursive: true, force: true });
  };
  const onSignal = () => { log("\ninterrupted: stopping servers"); void stopAll().then(() => process.exit(130)); };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    log(`edgechat bench (${quick ? "quick" : "full"}): scenarios ${selected.map((s) => s.id).join(", ")}; state under ${stateRoot}`);
    const verbose = args.verbose ?? false;
    const own = async (name: string, options: DevServerOptions): Promise<OwnedServer> => {
      const s = await OwnedServer.start(name, options, log);
      owned.push(s);
      return s;
    };
    const edgechatServer = args.url ? undefined : await own("edgechat", { stateDir: join(stateRoot, "edgechat"), vars, verbose });
    const limitServer = args["limit-url"] || args["no-limit"] ? undefined
      : await own("limit", { config: join(root, "bench/limit/wrangler.toml"), migrate: false, stateDir: join(stateRoot, "limit"), verbose });
    const external = () => ({ external: true as const });
    const edgechat = new EdgechatTarget(edgechatServer?.url ?? args.url!, edgechatServer ? () => edgechatServer.source() : external, {
      registerConcurrency: positiveInt("register-concurrency", args["register-concurrency"], 1), log,
    });
    const targets: Target[] = [edgechat];
    const limitUrl = limitServer?.url ?? args["limit-url"];
    if (limitUrl) targets.push(new LimitTarget(limitUrl, limitServer ? () => limitServer.source() : external));
    const serverOf = (t: Target) => (t === edgechat ? edgechatServer : ownServers.get(t) ?? limitServer);
    // Scenarios that need an edgechat server of their own (seeded accounts, vars): started here.
    const ownServers = new Map<Target, OwnedServer>();
    const ownTargets = new Map<ScenarioId, Target>();
    for (const scenario of selected) {
      const wants = scenario.ownServer?.(quick);
      if (!wants || args.url) continue;
      const server = await own(`edgechat-${scenario.id}`, {
        stateDir: join(stateRoot, `edgechat-${scenario.id}`), vars: { ...vars, ...wants.vars }, verbose, startTimeoutMs: 180_000,
        ...(wants.withoutAssets ? { config: configWithoutAssets() } : {}),
        beforeStart: (dir) => {
          if (wants.seedAccounts === 0) return;
          const t0 = performance.now();
          seedAccounts(dir, wants.seedAccounts);
          log(`edgechat-${scenario.id}: seeded ${wants.seedAccounts} accounts in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        },
      });
      const target = new EdgechatTarget(server.url, () => server.source(), { registerConcurrency: positiveInt("register-concurrency", args["register-concurrency"], 1), log });
      await warmUp(target, pattern);
      if (wants.registerUsers) await target.users(scenario.users(quick));
      ownServers.set(target, server);
      ownTargets.set(scenario.id, target);
    }

    // Scenarios on a server of their own register their users there.
    const poolSize = Math.max(0, ...selected.filter((s) => !ownTargets.has(s.id)).map((s) => s.users(quick)));
    await edgechat.users(poolSize);
    for (const target of targets) await warmUp(target, pattern);

    const results: ScenarioResult[] = [];
    const allRuns: ScenarioResult[] = [];
    let reloads = 0;
    for (const scenario of selected) {
      const scenarioTargets = targets.map((t) => (t === edgechat ? ownTargets.get(scenario.id) ?? t : t));
      const runs = new Map<Target, ScenarioResult[]>(scenarioTargets.map((t) => [t, []]));
      // Targets alternate (E, L, E, L...) so a burst of load from elsewhere hits both alike.
      for (let rep = 1; rep <= repeat; rep++) {
        for (const target of scenarioTargets) {
          const server = serverOf(target);
          if (scenario.freshServer && server) await server.restart();
          await quiesce(target, 10_000); // start on a quiet server
          let r = await runScenario(target, server, scenario.id, quick, pattern);
          if (r.error?.startsWith(RELOADED)) {
            // wrangler dev reloads the Worker when a watched file changes (a colleague's edit, even
            // package.json): the run measured nothing valid and says nothing about edgechat. Once more.
            reloads++;
            log(`(${r.scenario}) ${target.name}: ${r.error}; running it again`);
            await quiesce(target, 10_000);
            r = await runScenario(target, server, scenario.id, quick, pattern);
          }
          if (scenario.freshServer && !server) r.extra.note = "server not restarted (--url): RSS deltas may be understated by reuse of freed memory";
          runs.get(target)!.push(r);
          allRuns.push(r);
          log(`${consoleLine(r)}${repeat > 1 ? `  [run ${rep}/${repeat}]` : ""}`);
          if (!clean(r) && r.serverLog?.length) log(`    wrangler said:\n${r.serverLog.map((l) => `      ${l}`).join("\n")}`);
        }
      }
      for (const target of scenarioTargets) results.push(bestOf(runs.get(target)!));
    }

    const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;
    const meta: RunMeta = {
      command, date: new Date().toISOString(), mode: quick ? "quick" : "full", machine: machine(), revision: revision(),
      state_medium: args.url ? `edgechat: as started by its owner; limit: ${medium(stateRoot)}` : medium(stateRoot),
      load_avg: { start: loadAtStart, end: loadavg()[0] ?? 0 },
      server_vars: edgechatServer ? vars : "as started by its owner (--url)",
      setup_retries: edgechat.setupRetries, reruns_after_reload: reloads,
      pattern: { window: pattern.window, rate_per_sender: pattern.ratePerSec }, repeat,
      edgechat_url: edgechat.url, limit_url: limitUrl, register_users: poolSize, register_ms: Math.round(edgechat.registerMs),
    };
    const table = markdown(meta, results);
    log(`\n${table}\n`);
    const outFile = args.out ?? join(root, "bench/results", `${meta.date.replace(/[:.]/g, "-")}-${meta.mode}.json`);
    mkdirSync(join(outFile, ".."), { recursive: true });
    writeFileSync(outFile, `${JSON.stringify({ meta, results, all_runs: allRuns, markdown: table }, null, 2)}\n`);
    log(`results: ${outFile}`);
    const failed = allRuns.filter((r) => !clean(r));
    if (results.some((r) => r.traffic?.firstErrors.some((e) => e.startsWith("rate_limited")))) {
      log("SENDs were refused with rate_limited: the per-sender limit is on. The bench starts edgechat with SEND_RATE_PER_SECOND=0; with --url, start the server that way, or pace the senders with --rate.");
    }
    if (failed.length) log(`CHECK FAILED in ${failed.map((r) => `(${r.scenario}) ${r.target}`).join(", ")}: lost/duplicated/out-of-order must be 0, with no errors or timeouts`);
    return failed.length ? 1 : 0;
  } finally {
    await stopAll();
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
