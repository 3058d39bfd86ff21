import { describe, expect, it } from "vitest";
import { connectMany, describeConnects } from "../../bench/load/connect-pool.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const failure = (reason: string, retryable: boolean) => Object.assign(new Error(`${reason}!`), { reason, retryable });

/** A fake server: each connect takes `ms`; records how many were in flight at most. */
function fakeServer(ms: (i: number, attempt: number) => number, fail: (i: number, attempt: number) => Error | undefined = () => undefined) {
  const attempts = new Map<number, number>();
  const s = { inFlight: 0, maxInFlight: 0, attempts };
  const connect = async (item: number, _timeoutMs: number) => {
    const attempt = (attempts.get(item) ?? 0) + 1;
    attempts.set(item, attempt);
    s.inFlight++;
    s.maxInFlight = Math.max(s.maxInFlight, s.inFlight);
    try {
      await sleep(ms(item, attempt));
      const err = fail(item, attempt);
      if (err) throw err;
      return `device ${item}`;
    } finally {
      s.inFlight--;
    }
  };
  return { s, connect };
}

const items = (n: number) => Array.from({ length: n }, (_, i) => i);

describe("bench connects: adaptive concurrency and retries", () => {
  it("retries passing failures with backoff, keeps input order, and counts each retry by reason", async () => {
    const { s, connect } = fakeServer(() => 2, (i, attempt) => (i % 3 === 0 && attempt === 1 ? failure("handshake timeout", true) : undefined));
    const { results, stats } = await connectMany(items(30), connect, { start: 4, max: 8, backoffMs: 5 });
    expect(results).toEqual(items(30).map((i) => `device ${i}`));
    expect(stats.retries).toBe(10);
    expect(stats.failures).toEqual({ "handshake timeout": 10 });
    expect(stats.attempts).toBe(40);
    expect(s.maxInFlight).toBeLessThanOrEqual(8);
    expect(describeConnects(stats)).toMatch(/^30 devices in .*, 40 attempts, 10 retried \(handshake timeout 10\)/);
  });

  it("fails at once, naming the device, on a refusal", async () => {
    const { s, connect } = fakeServer(() => 1, (i) => (i === 5 ? failure("ERROR unauthorized", false) : undefined));
    await expect(connectMany(items(20), connect, { start: 2, max: 2, backoffMs: 5, label: (i) => `user${i}` }))
      .rejects.toThrow(/^user5 could not connect \(refused\): attempt 1 .*ERROR unauthorized!/);
    expect(s.attempts.get(5)).toBe(1);
  });

  it("gives up on a device after its last attempt, with what each attempt got", async () => {
    const { connect } = fakeServer(() => 1, (i) => (i === 0 ? failure("no HELLO", true) : undefined));
    const err = await connectMany(items(3), connect, { attempts: 3, backoffMs: 5 }).then(() => undefined, (e: unknown) => e as Error & { stats: { retries: number } });
    if (!err) throw new Error("expected the connects to fail");
    expect(err.message).toMatch(/^device 0 could not connect \(3 attempts\): attempt 1 .*; attempt 2 .*; attempt 3 .*no HELLO!/);
    expect(err.stats.retries).toBe(2);
  });

  it("halves the connects in flight when answers come slowly, and climbs while they come quickly", async () => {
    const slow = fakeServer(() => 20);
    const s1 = (await connectMany(items(40), slow.connect, { start: 16, min: 2, max: 16, slowMs: 5 })).stats;
    expect(s1.concurrency.min).toBe(2);
    expect(s1.concurrency.end).toBe(2);

    const fast = fakeServer(() => 1);
    const s2 = (await connectMany(items(200), fast.connect, { start: 2, min: 2, max: 16, slowMs: 10_000 })).stats;
    expect(s2.concurrency.max).toBe(16);
    expect(fast.s.maxInFlight).toBeLessThanOrEqual(16);
    expect(fast.s.maxInFlight).toBeGreaterThan(2);
  });

  it("stops starting connects once the deadline has passed", async () => {
    const { connect } = fakeServer(() => 5);
    await expect(connectMany(items(50), connect, { start: 2, max: 2, deadline: performance.now() + 12 })).rejects.toThrow(/out of time connecting devices/);
  });
});
