/** Trace ids minted for every client frame: W3C-shaped, and never the same twice across pool refills. */
import { describe, expect, it } from "vitest";
import { isTraceId, newTraceId } from "../../shared/trace.js";

describe("newTraceId", () => {
  it("mints 32 lowercase hex digits, all different, past several refills of its random pool", () => {
    const ids = Array.from({ length: 2000 }, () => newTraceId());
    expect(ids.every(isTraceId)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.some((id) => /^0+$/.test(id))).toBe(false);
  });
});
