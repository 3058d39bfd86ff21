import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compareHlc, hlcFromHex, hlcToBigInt, hlcToHex, HLC_ZERO, MAX_HLC_LOGICAL, nextHlc, parseServerMsgId, serverMsgId, type Hlc,
} from "../../durable-objects/channel/hlc.js";

const NOW = 1_800_000_000_000; // 2027, well inside 48 bits
/** Wall clocks that wander: jumps forwards and backwards, repeats, garbage. */
const clock = fc.oneof(
  fc.integer({ min: NOW - 10 * 86_400_000, max: NOW + 10 * 86_400_000 }),
  fc.constantFrom(NOW, NOW, NOW, 0, -5, Number.NaN, Infinity),
);
const hlc = fc.record({ ms: fc.integer({ min: 0, max: 2 ** 48 - 2 }), logical: fc.integer({ min: 0, max: MAX_HLC_LOGICAL }) });

describe("HLC", () => {
  it("is strictly increasing under any sequence of wall clocks, including backwards jumps", () => {
    fc.assert(fc.property(fc.array(clock, { minLength: 1, maxLength: 500 }), (clocks) => {
      let prev: Hlc = HLC_ZERO;
      for (const now of clocks) {
        const next = nextHlc(prev, now);
        expect(compareHlc(next, prev)).toBeGreaterThan(0);
        expect(hlcToBigInt(next) > hlcToBigInt(prev)).toBe(true);
        prev = next;
      }
    }));
  });

  it("is exactly max(prev + 1, (now, 0)) on the 64-bit value", () => {
    fc.assert(fc.property(hlc, fc.integer({ min: 0, max: 2 ** 48 - 1 }), (prev, now) => {
      const expected = [hlcToBigInt(prev) + 1n, BigInt(now) << 16n].reduce((a, b) => (a > b ? a : b));
      expect(hlcToBigInt(nextHlc(prev, now))).toBe(expected);
    }));
  });

  it("never falls behind the wall clock", () => {
    fc.assert(fc.property(hlc, fc.integer({ min: 0, max: 2 ** 48 - 1 }), (prev, now) => {
      expect(nextHlc(prev, now).ms).toBeGreaterThanOrEqual(now);
    }));
  });

  it("carries the logical counter into the millisecond part instead of overflowing", () => {
    const next = nextHlc({ ms: NOW, logical: MAX_HLC_LOGICAL }, NOW - 1000);
    expect(next).toEqual({ ms: NOW + 1, logical: 0 });
  });

  it("renders as hex whose string order is the clock order, and parses back", () => {
    fc.assert(fc.property(hlc, hlc, (a, b) => {
      expect(hlcFromHex(hlcToHex(a))).toEqual(a);
      expect(Math.sign(hlcToHex(a).localeCompare(hlcToHex(b)))).toBe(Math.sign(compareHlc(a, b)));
    }));
  });

  it("agrees with the 64-bit value the seed specifies, which a JS number cannot hold", () => {
    const h = { ms: NOW, logical: 5 };
    expect(hlcToBigInt(h)).toBe(BigInt(NOW) * 65536n + 5n);
    expect(Number.isSafeInteger(NOW * 65536)).toBe(false); // why the pair is kept as two numbers
    expect((NOW << 16) === NOW * 65536).toBe(false); // and why `<<` is never used
  });

  it("builds 128-bit server_msg_ids from HLC and seq that sort like (hlc, seq)", () => {
    fc.assert(fc.property(hlc, fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (h, seq) => {
      const id = serverMsgId(h, seq);
      expect(id).toMatch(/^[0-9a-f]{32}$/);
      expect(parseServerMsgId(id)).toEqual({ hlc: h, seq });
    }));
  });
});
