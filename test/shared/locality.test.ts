import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { newId, type Jurisdiction } from "../../shared/ids.js";
import { checkPlacement, mayJoin, placeChannel, placeDm, reachedJurisdiction } from "../../shared/locality.js";

const J: Jurisdiction[] = ["", "eu", "fedramp"];
const user = fc.constantFrom(...J).map((j) => newId("u", j));
const j = (id: string) => (id.split("_")[1] === "g" ? "" : id.split("_")[1] === "fr" ? "fedramp" : "eu");

describe("locality policy", () => {
  it("places a DM in the same jurisdiction from either side, where every pinned member's data may live", () => {
    fc.assert(fc.property(user, user, (a, b) => {
      const ab = placeDm(a, b), ba = placeDm(b, a);
      expect(ab).toEqual(ba);
      const pins = new Set([j(a), j(b)].filter((x) => x !== ""));
      if (pins.size > 1) expect(ab).toMatchObject({ ok: false, code: "jurisdiction_conflict" });
      else expect(ab).toEqual({ ok: true, jurisdiction: [...pins][0] ?? "" });
    }));
  });

  it("places a channel in its pinned members' jurisdiction, or the creator's, and lets only those allowed join", () => {
    fc.assert(fc.property(user, fc.array(user, { maxLength: 6 }), (creator, members) => {
      const placed = placeChannel(creator, members);
      const pins = new Set([creator, ...members].map(j).filter((x) => x !== ""));
      if (pins.size > 1) {
        expect(placed).toMatchObject({ ok: false, code: "jurisdiction_conflict" });
        return;
      }
      expect(placed.ok).toBe(true);
      if (!placed.ok) return;
      expect(placed.jurisdiction).toBe([...pins][0] ?? j(creator));
      const channel = newId("c", placed.jurisdiction);
      for (const m of [creator, ...members]) expect(mayJoin(channel, m)).toBe(true);
    }));
  });

  it("keeps a pinned user out of channels stored elsewhere; a global user may join any", () => {
    expect(mayJoin(newId("c", ""), newId("u", "eu"))).toBe(false);
    expect(mayJoin(newId("c", "fedramp"), newId("u", "eu"))).toBe(false);
    expect(mayJoin(newId("c", "eu"), newId("u", "eu"))).toBe(true);
    expect(mayJoin(newId("c", "eu"), newId("u", ""))).toBe(true);
  });

  it("reads where an object was reached from its id: the name's prefix when simulated, the runtime's jurisdiction in production", () => {
    const simulated = { JURISDICTIONS: "simulated" }, native = { JURISDICTIONS: "native" };
    expect(reachedJurisdiction(simulated, { name: "eu/c_eu_x" })).toBe("eu");
    expect(reachedJurisdiction(simulated, { name: "fedramp/presence:3" })).toBe("fedramp");
    expect(reachedJurisdiction(simulated, { name: "c_eu_x" })).toBe("");
    expect(reachedJurisdiction(simulated, {})).toBeUndefined();
    const euId = newId("c", "eu"), globalId = newId("c", "");
    expect(reachedJurisdiction(native, { name: euId, jurisdiction: "eu" })).toBe("eu");
    expect(reachedJurisdiction(native, { name: globalId })).toBe("");
    // No label on an EU name (the plain namespace, or an alarm from before the runtime kept it): unknown.
    expect(reachedJurisdiction(native, { name: euId })).toBeUndefined();
    expect(reachedJurisdiction(native, { name: "presence:3" })).toBeUndefined();
    expect(reachedJurisdiction(native, {})).toBeUndefined();
  });

  it("refuses only a known mismatch", () => {
    expect(checkPlacement("eu", "eu")).toBeUndefined();
    expect(checkPlacement("eu", undefined)).toBeUndefined();
    expect(checkPlacement("eu", "")).toMatchObject({ ok: false, code: "misplaced", retryable: false });
    expect(checkPlacement("", "fedramp")?.message).toContain("fedramp");
  });
});
