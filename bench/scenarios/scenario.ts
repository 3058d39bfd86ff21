/**
 * The contract between bench/run.ts and one scenario file, plus the helpers every scenario uses.
 * A scenario runs once per target with the same parameters and must finish by `ctx.deadline`.
 */
import type { Summary } from "../load/percentiles.js";
import { connectMany, mergeConnectStats, type ConnectStats } from "../load/connect-pool.js";
import { pool, sleep } from "../load/pool.js";
import { cpuSeconds, type CpuUse } from "../load/procs.js";
import { runSender, type SendJob, type SenderPattern } from "../load/sender.js";
import type { BenchUser, ConnectOptions, Device, Target, TargetName } from "../load/target.js";
import { Tracker, type TrackerReport } from "../load/tracker.js";

export type ScenarioId = "a" | "b" | "c" | "d" | "e" | "f" | "g" | "h";

/** The one figure a scenario is judged by, compared between edgechat and the limit. */
export interface Headline {
  label: string;
  value: number;
  unit: string;
  better: "lower" | "higher";
}

export type Extra = Record<string, number | string | number[]>;

export interface ScenarioResult {
  scenario: ScenarioId;
  title: string;
  target: TargetName;
  params: Record<string, number>;
  /** Undefined for scenarios that send nothing (idle memory). */
  traffic: TrackerReport | undefined;
  headline: Headline | undefined;
  extra: Extra;
  durationMs: number;
  /** CPU seconds used during the scenario by wrangler's two workerd processes and the bench itself. */
  cpu: CpuUse | undefined;
  timedOut: boolean;
  error?: string;
  /** With --repeat: every run's headline value, of which this result is the best. */
  repeats?: number[];
  /** Warnings and errors wrangler printed during the scenario (servers the bench started). */
  serverLog?: string[];
}

export type { CpuUse };

export type ScenarioOutcome = Pick<ScenarioResult, "traffic" | "headline" | "extra"> & { timedOut?: boolean };

export interface ScenarioContext {
  target: Target;
  quick: boolean;
  pattern: SenderPattern;
  /** performance.now() by which the scenario must have stopped sending and measuring. */
  deadline: number;
  log: (line: string) => void;
  /** Every device a scenario opens is listed here, so the runner can close leftovers. */
  devices: Device[];
  /** The scenario's tracker, so a run cut short still reports what it measured. */
  tracker: Tracker | undefined;
  /** What the scenario is doing now, for the message when it overruns its budget. */
  phase: string;
  /**
   * Unique per run: part of every client_msg_id. A repeated run reuses channels (DMs are one per
   * pair), and edgechat rightly answers a reused (sender, client_msg_id) as a duplicate.
   */
  runTag: string;
  /** How the scenario's connects went (connectAll): attempts, retries by reason, concurrency, durations. */
  connects?: ConnectStats;
}

/** A fresh tracker, registered with the context. */
export function newTracker(ctx: ScenarioContext): Tracker {
  ctx.tracker = new Tracker();
  return ctx.tracker;
}

/** Runs every job's sender at once under the run's pattern; resolves when all are settled or time is up. */
export async function sendAll(ctx: ScenarioContext, tracker: Tracker, jobs: readonly SendJob[], pattern: SenderPattern = ctx.pattern): Promise<void> {
  ctx.phase = `sending (${jobs.length} sender${jobs.length === 1 ? "" : "s"})`;
  await pool(jobs, jobs.length, (job) => runSender(job, pattern, tracker, ctx.deadline));
}

export interface Scenario {
  id: ScenarioId;
  title: string;
  /**
   * Runs on servers restarted just before (same state, objects not loaded), when the bench
   * started them: memory readings are then not blurred by memory earlier scenarios freed.
   */
  freshServer?: boolean;
  /**
   * Runs against an edgechat server of its own, started for it with these accounts seeded into
   * its directory (test/support/seed-accounts.ts) and these vars on top of the run's (the limit
   * server is shared). Its users are registered on that server when the scenario asks for them.
   */
  ownServer?: (quick: boolean) => {
    seedAccounts: number;
    vars: Record<string, string>;
    /**
     * Without wrangler.toml's [assets] (the web app): under `wrangler dev` the assets router
     * worker then no longer sits in the Worker's workerd process relaying every socket (decision 026).
     */
    withoutAssets?: boolean;
    /** Register the scenario's users before it runs (and before a fresh restart), as the shared server's pool is. */
    registerUsers?: boolean;
  };
  /** Its time budget, setup included, when the run's default (60 s) cannot hold its setup. */
  budgetMs?: (quick: boolean) => number;
  /** How many pool users the scenario needs (registered before any scenario runs). */
  users(quick: boolean): number;
  params(quick: boolean, pattern: SenderPattern): Record<string, number>;
  run(ctx: ScenarioContext, params: Record<string, number>): Promise<ScenarioOutcome>;
}

/** Every device of the bench uses this id unless it needs a second device. */
export const PRIMARY_DEVICE = "bench-0";

export function timeLeft(ctx: ScenarioContext): number {
  return Math.max(0, ctx.deadline - performance.now());
}

/** Throws when the scenario ran out of time during setup (nothing measured yet). */
export function checkTime(ctx: ScenarioContext, what: string): void {
  if (performance.now() > ctx.deadline) throw new Error(`out of time while ${what}`);
}

/**
 * Connects one device per user and records each in ctx.devices as it connects: as many at once as
 * the server keeps up with, a connect that timed out or met a busy server tried again with backoff
 * (bench/load/connect-pool.ts); how it went is added to ctx.connects. Throws only when a device
 * cannot connect at all (refused, or still failing after every attempt) or time runs out.
 */
export async function connectAll(
  ctx: ScenarioContext, users: readonly BenchUser[], channelsOf: (u: BenchUser, i: number) => readonly string[],
  tracker: Tracker | undefined, deviceId = PRIMARY_DEVICE, options?: (u: BenchUser) => ConnectOptions,
): Promise<Device[]> {
  ctx.phase = `connecting ${users.length} devices`;
  checkTime(ctx, "connecting devices");
  try {
    const { results, stats } = await connectMany(users, async (u, timeoutMs, i) => {
      const d = await ctx.target.connect(u, deviceId, channelsOf(u, i), tracker, { ...options?.(u), timeoutMs });
      ctx.devices.push(d);
      return d;
    }, { deadline: ctx.deadline, log: ctx.log, label: (i) => `${ctx.target.name} ${users[i]?.username}/${deviceId}` });
    ctx.connects = mergeConnectStats(ctx.connects, stats);
    return results;
  } catch (err) {
    const stats = (err as { stats?: ConnectStats }).stats;
    if (stats) ctx.connects = mergeConnectStats(ctx.connects, stats);
    throw err;
  }
}

/** Closes all at once: each close gives up after 2 s, so this is bounded even if the server hangs. */
export async function closeAll(devices: readonly Device[], ctx?: ScenarioContext): Promise<void> {
  if (ctx) ctx.phase = `closing ${devices.length} devices`;
  await Promise.all(devices.map((d) => d.close()));
}

/** Waits for the last acks and deliveries, as long as the deadline allows. */
export async function drain(ctx: ScenarioContext, tracker: Tracker): Promise<boolean> {
  const { acks, deliveries } = tracker.outstanding;
  ctx.phase = `waiting for ${acks} acks and ${deliveries} deliveries`;
  return tracker.whenIdle(timeLeft(ctx));
}

/** The latency columns most scenarios report, for the console. */
export function fmtSummary(s: Summary | undefined): string {
  if (!s) return "-";
  const f = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
  return `${f(s.p50)}/${f(s.p90)}/${f(s.p99)}/${f(s.max)}`;
}

/** `xs[i]`, or a clear error when a setup step returned fewer items than the scenario needs. */
export function nth<T>(xs: readonly T[], i: number): T {
  const v = xs[i];
  if (v === undefined) throw new Error(`expected at least ${i + 1} items, got ${xs.length}`);
  return v;
}

/**
 * Waits until the target's Worker process is quiet (under 10% of a core over 250 ms), i.e. it has
 * finished the work a burst left behind (edgechat: fan-out to UserObjects after the last ack).
 * Resolves with the time waited; without known processes, waits `fallbackMs`.
 */
export async function quiesce(target: Target, maxMs: number, fallbackMs = 1000): Promise<number> {
  const procs = target.processes();
  const start = performance.now();
  if (!procs) { await sleep(Math.min(fallbackMs, maxMs)); return performance.now() - start; }
  const WINDOW_MS = 250;
  for (;;) {
    const cpu0 = cpuSeconds(procs.worker);
    await sleep(WINDOW_MS);
    const busy = (cpuSeconds(procs.worker) - cpu0) / (WINDOW_MS / 1000);
    if (busy < 0.1 || performance.now() - start >= maxMs) return performance.now() - start - WINDOW_MS;
  }
}
