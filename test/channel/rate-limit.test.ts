import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { rateLimitFromEnv, SenderRateLimiter } from "../../durable-objects/channel/rate-limit.js";

describe("per-sender rate limit", () => {
  it("allows a burst, then the sustained rate, and says how long to wait", () => {
    const rl = new SenderRateLimiter({ perSecond: 10, burst: 20 });
    for (let i = 0; i < 20; i++) expect(rl.take("alice", 1000)).toBe(0);
    const wait = rl.take("alice", 1000);
    expect(wait).toBe(100);
    expect(rl.take("bob", 1000)).toBe(0); // per sender
    expect(rl.take("alice", 1000 + wait)).toBe(0);
    expect(rl.take("alice", 1000 + wait)).toBeGreaterThan(0);
  });

  it("never lets more than burst + rate × time through (property)", () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 300 }), (gaps) => {
      const rl = new SenderRateLimiter({ perSecond: 10, burst: 20 });
      let now = 0;
      let allowed = 0;
      for (const gap of gaps) {
        now += gap;
        if (rl.take("s", now) === 0) allowed++;
      }
      expect(allowed).toBeLessThanOrEqual(20 + Math.floor((now * 10) / 1000) + 1);
    }));
  });

  it("is off at 0 and reads unusable settings as the default", () => {
    const off = new SenderRateLimiter({ perSecond: 0, burst: 1 });
    for (let i = 0; i < 1000; i++) expect(off.take("s", 0)).toBe(0);
    expect(rateLimitFromEnv({})).toEqual({ perSecond: 10, burst: 20 });
    expect(rateLimitFromEnv({ SEND_RATE_PER_SECOND: "0" })).toEqual({ perSecond: 0, burst: 20 });
    expect(rateLimitFromEnv({ SEND_RATE_PER_SECOND: "-3", SEND_RATE_BURST: "x" })).toEqual({ perSecond: 10, burst: 20 });
  });
});
