/**
 * Unread counts stay exact under expiry: random posts, reads and expiry points (a moved clock)
 * against a plain model of the log. Runs in a real ChannelObject, one fresh group per run.
 */
import { env, runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { channelStub } from "../../shared/routing.js";
import type { ChannelObject } from "../../durable-objects/channel/ChannelObject.js";
import { newId } from "../../shared/ids.js";
import { register, type TestUser } from "../helpers/api.js";

const MINUTE = 60_000;
const TTL = 60 * MINUTE;

type Op =
  | { kind: "post"; by: 0 | 1; after: number }
  | { kind: "read"; by: 0 | 1; back: number }
  | { kind: "expire"; ahead: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("post" as const), by: fc.constantFrom(0 as const, 1 as const), after: fc.integer({ min: 0, max: 40 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("read" as const), by: fc.constantFrom(0 as const, 1 as const), back: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("expire" as const), ahead: fc.integer({ min: 0, max: 150 }) }) },
);

let users: [TestUser, TestUser];

beforeAll(async () => {
  users = [await register("alice"), await register("bob")];
});

describe("unread under retention", () => {
  it("equals the model's count after any mix of posts, reads and expiry", async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
      const [alice, bob] = users;
      // Made in the object itself: the API would throttle this many new groups from one creator.
      const channelId = newId("c");
      const stub = channelStub(env, channelId);
      await runInDurableObject(stub, (instance: ChannelObject, state) => {
        const sql = state.storage.sql;
        const ids = [alice.user_id, bob.user_id];
        const profile = (u: TestUser) => ({ user_id: u.user_id, username: u.username, display_name: u.display_name });
        expect(instance.create({ channelId, type: "group", name: "Model", creator: profile(alice), members: [profile(bob)], jurisdiction: "" }).ok).toBe(true);
        expect(instance.update(alice.user_id, { retention_ms: TTL }).ok).toBe(true);
        // The notices (created, retention_set) are as old as the model's start.
        sql.exec("UPDATE messages SET hlc_ms = 0");
        let vt = 0;
        let lastSeq = 2;
        // The log as the model sees it; the two notices count for nobody.
        const log: { seq: number; by: number; at: number }[] = [{ seq: 1, by: -1, at: 0 }, { seq: 2, by: -1, at: 0 }];
        const read = [0, 0];
        let gone = 0; // the model's mark: every seq up to here has expired
        for (const o of ops) {
          if (o.kind === "post") {
            vt += o.after * MINUTE;
            const r = instance.append({ userId: ids[o.by]!, deviceId: "", clientMsgId: crypto.randomUUID(), content: { text: { text: "x" } } });
            if (!r.ok) throw new Error(r.message);
            lastSeq = r.ack.seq;
            sql.exec("UPDATE messages SET hlc_ms = ? WHERE seq = ?", vt, lastSeq);
            log.push({ seq: lastSeq, by: o.by, at: vt });
            read[o.by] = lastSeq; // writing means having read up to here
          } else if (o.kind === "read") {
            const upTo = Math.max(0, lastSeq - o.back);
            const r = instance.markRead(ids[o.by]!, upTo);
            if (!r.ok) throw new Error(r.message);
            read[o.by] = Math.max(read[o.by]!, upTo);
            expect(r.last_read_seq).toBe(read[o.by]);
          } else {
            const now = vt + o.ahead * MINUTE;
            instance.retention.clock = () => now;
            for (let i = 0; i < 10 && instance.retention.expire().deleted > 0; i++);
            // Everything the clock says is old: a prefix of the log, since clocks only grow with seq.
            const firstYoung = log.find((p) => p.at > now - TTL)?.seq ?? lastSeq + 1;
            gone = Math.max(gone, firstYoung - 1);
            expect(instance.retention.minSeq).toBe(gone + 1);
          }
          for (const who of [0, 1]) {
            const s = instance.state(ids[who]!);
            if (!s.ok) throw new Error(s.message);
            const expected = log.filter((p) => p.by >= 0 && p.seq > gone && p.seq > read[who]! && p.by !== who).length;
            expect(s.state.unread_count).toBe(expected);
          }
        }
        const page = instance.history(alice.user_id, { after: 0, limit: 200 });
        if (!page.ok) throw new Error(page.message);
        expect(page.min_seq).toBe(gone + 1);
        expect(page.messages.map((m) => m.seq)).toEqual(Array.from({ length: lastSeq - gone }, (_, i) => gone + 1 + i));
      });
    }), { numRuns: 25 });
  }, 120_000);
});
