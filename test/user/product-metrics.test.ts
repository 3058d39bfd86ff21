/**
 * The product counts operators read in Analytics Engine (docs/operations.md): messages stored,
 * deliveries to sockets, fan-out lag, RESUME sizes, counted through the metrics seam.
 */
import { describe, expect, it } from "vitest";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { createDm, register } from "../helpers/api.js";
import { helloDevice, onlineDevice } from "../helpers/socket.js";

describe("product metrics", () => {
  it("counts messages stored, deliveries, fan-out lag and what a RESUME sent", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const dm = await createDm(alice, bob);
    const a = await onlineDevice(alice.access_token, "a");
    const b = await onlineDevice(bob.access_token, "b");
    const seen = memoryRecorder();
    const restore = recordMetricsWith(seen);
    try {
      for (const text of ["one", "two", "three"]) await a.sendText(dm, text);
      await b.messages(3);
      expect(seen.total("message.stored", { kind: "text" })).toBe(3);
      expect(seen.total("deliveries")).toBeGreaterThanOrEqual(3);
      expect(seen.points.filter((p) => p.name === "fanout.lag_ms").length).toBeGreaterThan(0);
      const laptop = await helloDevice(bob.access_token, "b-laptop");
      const { messages } = await laptop.resume([{ channel_id: dm, last_seq: 1 }]);
      expect(messages).toHaveLength(3);
      expect(seen.total("resume.messages")).toBe(3);
      expect(seen.total("resume.runs", { server_run: "no" })).toBeGreaterThanOrEqual(1);
      laptop.close();
    } finally {
      restore();
      a.close(); b.close();
    }
  });
});
