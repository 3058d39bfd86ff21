/**
 * A ChannelObject's own pressure (docs/decisions/022): its fan-out lag, measured when a batch
 * arrives, past its type's threshold puts `slowdownMs` on the batch's answers and drops typing;
 * a DM's threshold is higher than a group's. Two appends in one turn make the lag exact: the
 * fan-out of the first cannot have run before the second.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ChannelObject } from "../../durable-objects/channel/ChannelObject.js";
import type { AppendInput } from "../../durable-objects/channel/types.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { DEFAULT_OVERLOAD } from "../../shared/overload.js";
import { channelStub } from "../../shared/routing.js";
import { createDm, createGroup, register } from "../helpers/api.js";

const inputs = (userId: string, n: number, prefix: string): AppendInput[] =>
  Array.from({ length: n }, (_, i) => ({ userId, deviceId: "a", clientMsgId: `${prefix}-${i}`, content: { text: { text: `${prefix} ${i}` } } }));

describe("channel pressure", () => {
  it("a group whose fan-out lags past its threshold answers with slowdownMs and sheds typing; a DM at the same lag does not", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const group = await createGroup(alice, [bob]);
    const dm = await createDm(alice, bob);
    const lag = DEFAULT_OVERLOAD.channelLag.group + 2;
    expect(lag).toBeLessThanOrEqual(DEFAULT_OVERLOAD.channelLag.dm);
    const seen = memoryRecorder();
    const restore = recordMetricsWith(seen);
    try {
      await runInDurableObject(channelStub(env, group), (instance: ChannelObject) => {
        const first = instance.appendBatch(inputs(alice.user_id, lag, "flood"));
        expect(first.every((r) => r.ok && r.slowdownMs === undefined)).toBe(true);
        const second = instance.appendBatch(inputs(alice.user_id, 1, "after"));
        // Lag before the batch: the creation notice is fanned out already or not; either way past 128.
        expect(second[0]).toMatchObject({ ok: true });
        const slow = (second[0] as { slowdownMs?: number }).slowdownMs!;
        expect(slow).toBeGreaterThanOrEqual(DEFAULT_OVERLOAD.baseDelayMs + DEFAULT_OVERLOAD.perExcessMs);
        expect(slow).toBeLessThanOrEqual(DEFAULT_OVERLOAD.maxDelayMs);
        expect(instance.typing(bob.user_id, "b", true)).toEqual({ ok: true });
      });
      expect(seen.total("overload.slowdown", { object: "channel", type: "group" })).toBe(1);
      expect(seen.total("overload.dropped", { object: "channel", kind: "typing" })).toBe(1);
      expect(seen.total("typing.forwarded")).toBe(0);

      await runInDurableObject(channelStub(env, dm), (instance: ChannelObject) => {
        instance.appendBatch(inputs(alice.user_id, lag, "dm-flood"));
        const second = instance.appendBatch(inputs(alice.user_id, 1, "dm-after"));
        expect(second[0]).toMatchObject({ ok: true });
        expect(second[0]).not.toHaveProperty("slowdownMs");
      });
      expect(seen.total("overload.slowdown", { object: "channel", type: "dm" })).toBe(0);
    } finally {
      restore();
    }
  });
});
