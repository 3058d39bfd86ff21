/**
 * Connects many devices without outrunning the server: as many connects in flight as it keeps up
 * with, and a connect that failed for a passing reason tried again instead of failing the run.
 *
 * - **Concurrency adapts** (additive increase, multiplicative decrease, as TCP does): it starts at
 *   `start`; doubles while connects come back quickly, then grows by one per round; an attempt that
 *   fails, or takes longer than `slowMs`, halves it (once per round: only attempts started after
 *   the last cut count), never below `min`. On a loaded machine it settles where the server
 *   answers within `slowMs`; on a quiet one it climbs to `max`.
 * - **Retries**: a failure whose `retryable` is true (ConnectFailure: a handshake or HELLO past its
 *   timeout, a reset, a 5xx...) is tried again after a backoff (1 s, 2 s, 4 s... up to 15 s, with
 *   jitter), with a longer timeout each time, up to `attempts` in all; counted per reason.
 * - A device that still cannot connect, or a refusal (4xx, an ERROR such as `unauthorized`), fails
 *   the whole call at once with what each attempt got.
 *
 * @example
 * const { results, stats } = await connectMany(users, (u, timeoutMs) => target.connect(u, "bench-0", [], undefined, { timeoutMs }));
 */
import { sleep } from "./pool.js";

export interface ConnectPoolOptions {
  /** Connects in flight at first. */
  start: number;
  min: number;
  max: number;
  /** Attempts per device, the first included. */
  attempts: number;
  /** The first attempt's timeout; attempt k gets k times this (capped at 4×). */
  timeoutMs: number;
  /** An attempt that succeeds slower than this counts as congestion. */
  slowMs: number;
  /** The first retry's pause; doubling, capped at 15× it, with jitter (half to all of it). */
  backoffMs: number;
  /** Stops starting attempts once performance.now() passes it (a retry waiting then fails the call). */
  deadline?: number;
  log?: (line: string) => void;
  /** Names a device in errors and logs. */
  label?: (index: number) => string;
}

export const CONNECT_DEFAULTS: ConnectPoolOptions = { start: 8, min: 2, max: 50, attempts: 5, timeoutMs: 30_000, slowMs: 5_000, backoffMs: 1_000 };

export interface ConnectStats {
  devices: number;
  attempts: number;
  /** Attempts that failed and were tried again. */
  retries: number;
  /** Failed attempts by reason ("handshake timeout", "no HELLO", "HTTP 503"...). */
  failures: Record<string, number>;
  /** Successful attempts' durations, in completion order. */
  ms: number[];
  /** Connects in flight allowed: at the start, the least and most it reached, at the end. */
  concurrency: { start: number; min: number; max: number; end: number };
  wallMs: number;
}

interface Failure { retryable?: boolean; reason?: string; message?: string }

/** Runs `connect` once per item with adaptive concurrency and retries; results keep input order. */
export async function connectMany<T, R>(
  items: readonly T[], connect: (item: T, timeoutMs: number, index: number) => Promise<R>, options: Partial<ConnectPoolOptions> = {},
): Promise<{ results: R[]; stats: ConnectStats }> {
  const o = { ...CONNECT_DEFAULTS, ...options };
  const label = o.label ?? ((i: number) => `device ${i}`);
  const t0 = performance.now();
  const results: R[] = new Array(items.length);
  const stats: ConnectStats = {
    devices: items.length, attempts: 0, retries: 0, failures: {}, ms: [],
    concurrency: { start: o.start, min: o.start, max: o.start, end: o.start }, wallMs: 0,
  };
  /** Allowed in flight; fractional between whole steps. */
  let limit = Math.min(o.max, Math.max(o.min, o.start));
  let slowStart = true;
  let lastCut = -Infinity;
  let inFlight = 0;
  /** Devices waiting for a slot: index and the attempt it will be. */
  const ready: { index: number; attempt: number }[] = items.map((_, index) => ({ index, attempt: 1 }));
  let pendingRetries = 0;
  const errors = new Map<number, string[]>();
  let fatal: Error | undefined;
  let wake: () => void = () => {};

  const note = () => {
    stats.concurrency.min = Math.min(stats.concurrency.min, Math.floor(limit));
    stats.concurrency.max = Math.max(stats.concurrency.max, Math.floor(limit));
  };
  const congested = (startedAt: number) => {
    if (startedAt < lastCut) return; // started before the last cut: that round was already answered
    lastCut = performance.now();
    slowStart = false;
    limit = Math.max(o.min, limit / 2);
    note();
  };
  const fast = () => {
    limit = Math.min(o.max, limit + (slowStart ? 1 : 1 / limit));
    note();
  };

  const attemptOne = async (index: number, attempt: number) => {
    const startedAt = performance.now();
    const timeoutMs = o.timeoutMs * Math.min(4, attempt);
    stats.attempts++;
    try {
      results[index] = await connect(items[index]!, timeoutMs, index);
      const ms = performance.now() - startedAt;
      stats.ms.push(ms);
      if (ms > o.slowMs) congested(startedAt);
      else fast();
    } catch (err) {
      const f = err as Failure;
      const reason = f.reason ?? "error";
      stats.failures[reason] = (stats.failures[reason] ?? 0) + 1;
      const said = errors.get(index) ?? [];
      said.push(`attempt ${attempt} (${Math.round(performance.now() - startedAt)} ms): ${f.message ?? String(err)}`);
      errors.set(index, said);
      congested(startedAt);
      const timeLeft = o.deadline === undefined || performance.now() < o.deadline;
      if (!f.retryable || attempt >= o.attempts || !timeLeft) {
        fatal ??= new Error(`${label(index)} could not connect (${f.retryable ? (timeLeft ? `${attempt} attempts` : "out of time") : "refused"}): ${said.join("; ")}`);
        return;
      }
      stats.retries++;
      o.log?.(`connect: ${label(index)} attempt ${attempt} failed (${reason}); again in a moment, ${Math.floor(limit)} in flight allowed`);
      pendingRetries++;
      const backoff = o.backoffMs * Math.min(15, 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      void sleep(backoff).then(() => {
        pendingRetries--;
        ready.push({ index, attempt: attempt + 1 });
        wake();
      });
    }
  };

  while (!fatal && (ready.length > 0 || inFlight > 0 || pendingRetries > 0)) {
    while (!fatal && inFlight < Math.floor(limit) && ready.length > 0) {
      if (o.deadline !== undefined && performance.now() > o.deadline) {
        fatal = new Error(`out of time connecting devices: ${items.length - ready.length - inFlight} of ${items.length} started`);
        break;
      }
      const next = ready.shift()!;
      inFlight++;
      void attemptOne(next.index, next.attempt).finally(() => { inFlight--; wake(); });
    }
    if (fatal) break;
    await new Promise<void>((resolve) => { wake = resolve; });
  }
  // Attempts still in flight when a device failed for good are let finish: their sockets are in
  // `results` for the caller to close (the run fails either way).
  while (inFlight > 0) await new Promise<void>((resolve) => { wake = resolve; });
  stats.concurrency.end = Math.floor(limit);
  stats.wallMs = performance.now() - t0;
  if (fatal) throw Object.assign(fatal, { results, stats });
  return { results, stats };
}

/** Two rounds of connects as one (a scenario that connects twice, e.g. two devices per user). */
export function mergeConnectStats(a: ConnectStats | undefined, b: ConnectStats): ConnectStats {
  if (!a) return b;
  const failures = { ...a.failures };
  for (const [k, n] of Object.entries(b.failures)) failures[k] = (failures[k] ?? 0) + n;
  return {
    devices: a.devices + b.devices, attempts: a.attempts + b.attempts, retries: a.retries + b.retries, failures, ms: [...a.ms, ...b.ms],
    concurrency: { start: a.concurrency.start, min: Math.min(a.concurrency.min, b.concurrency.min), max: Math.max(a.concurrency.max, b.concurrency.max), end: b.concurrency.end },
    wallMs: a.wallMs + b.wallMs,
  };
}

/** One line: "1,000 devices in 95.2 s, 1,012 attempts, 12 retried (handshake timeout 10, no HELLO 2); 8 in flight at first, 2–50, 14 at the end; per connect p50 310 ms, p99 4,100 ms". */
export function describeConnects(s: ConnectStats): string {
  const sorted = [...s.ms].sort((x, y) => x - y);
  const at = (q: number) => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!) : Number.NaN);
  const reasons = Object.entries(s.failures).map(([k, n]) => `${k} ${n}`).join(", ");
  const c = s.concurrency;
  return `${s.devices} devices in ${(s.wallMs / 1000).toFixed(1)} s, ${s.attempts} attempts, ${s.retries} retried${reasons ? ` (${reasons})` : ""}; `
    + `${c.start} in flight at first, ${c.min}–${c.max}, ${c.end} at the end; per connect p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`;
}
