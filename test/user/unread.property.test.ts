/**
 * Unread counts stay exact without a write per member per message (docs/decisions/013). A plain
 * model of one group (posts, read cursors, joins, leaves) is run side by side with the real
 * objects under random operations, devices connecting and disconnecting in between; after every
 * step each member's list (GET /v1/channels: kept current by deliveries while the user is live,
 * re-read from the channel while not) must say what the model says, every RESUMED must carry the
 * model's unread count, and every connected device must hold the channel without a hole.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { call, createGroup, register, waitListed, type TestUser } from "../helpers/api.js";
import { helloDevice, type TestDevice } from "../helpers/socket.js";

const T = pb.FrameType;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Op =
  | { kind: "post"; who: number }
  | { kind: "read"; who: number; back: number }
  | { kind: "join"; who: number }
  | { kind: "leave"; who: number }
  | { kind: "connect"; who: number; device: number }
  | { kind: "disconnect"; who: number; device: number };

/** The model: who is a member, each member's read cursor, and who wrote each seq. */
class Model {
  lastSeq = 1; // the "created" notice
  readonly posts = new Map<number, number>(); // seq -> author
  readonly member = [true, true, true, false]; // user 0 owns the group; 3 joins later
  readonly cursor = [0, 0, 0, 0];

  post(who: number): void {
    this.posts.set(++this.lastSeq, who);
    this.cursor[who] = this.lastSeq;
  }
  read(who: number, upTo: number): void {
    this.cursor[who] = Math.max(this.cursor[who]!, Math.min(upTo, this.lastSeq));
  }
  join(who: number): void {
    this.cursor[who] = Math.max(this.cursor[who]!, this.lastSeq);
    this.member[who] = true;
    this.lastSeq++;
  }
  leave(who: number): void {
    this.member[who] = false;
    this.lastSeq++;
  }
  unread(who: number): number {
    let n = 0;
    for (const [seq, author] of this.posts) if (author !== who && seq > this.cursor[who]!) n++;
    return n;
  }
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("post" as const), who: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("read" as const), who: fc.integer({ min: 0, max: 3 }), back: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("join" as const), who: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("leave" as const), who: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("connect" as const), who: fc.integer({ min: 0, max: 3 }), device: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("disconnect" as const), who: fc.integer({ min: 0, max: 3 }), device: fc.integer({ min: 0, max: 1 }) }) },
);

async function listed(user: TestUser, channelId: string) {
  const r = await call<{ channels: { channel_id: string; last_seq: number; unread_count: number; last_read_seq: number }[] }>("GET", "/v1/channels", { token: user.access_token });
  return r.body.channels.find((c) => c.channel_id === channelId);
}

describe("unread counts", () => {
  it("match a model of posts, reads, joins and leaves on every list and every RESUME, devices coming and going", async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 10, maxLength: 22 }), async (ops) => {
      const users = await Promise.all([register("own"), register("m1"), register("m2"), register("m3")]);
      const channel = await createGroup(users[0]!, [users[1]!, users[2]!]);
      const model = new Model();
      const devices = new Map<string, TestDevice>();
      /** Per device: seqs it sent itself (never DELIVERed back to it), and whether its user's membership changed while it was connected. */
      const sentFrom = new Map<TestDevice, Set<number>>();
      const unsettled = new Set<TestDevice>();
      const key = (who: number, device: number) => `${who}:${device}`;
      try {
        for (const op of ops) {
          const who = op.who;
          const user = users[who]!;
          if (op.kind === "post" && model.member[who]) {
            const sender = [...devices.entries()].find(([k]) => k.startsWith(`${who}:`))?.[1];
            if (sender) {
              const ack = await sender.sendText(channel, `from ${who}`);
              expect(ack.type).toBe(T.SEND_ACK);
              sentFrom.get(sender)!.add(Number(ack.send_ack!.seq));
            } else {
              const d = await helloDevice(user.access_token, `poster-${who}`);
              expect((await d.sendText(channel, `from ${who}`)).type).toBe(T.SEND_ACK);
              d.close();
              await d.waitClosed();
            }
            model.post(who);
          } else if (op.kind === "read" && model.member[who]) {
            const upTo = Math.max(0, model.lastSeq - op.back);
            expect((await call("POST", `/v1/channels/${channel}/read`, { token: user.access_token, body: { up_to_seq: upTo } })).status).toBe(200);
            model.read(who, upTo);
          } else if (op.kind === "join" && !model.member[who]) {
            expect((await call("POST", `/v1/channels/${channel}/members`, { token: users[0]!.access_token, body: { members: [user.user_id] } })).status).toBe(200);
            model.join(who);
            for (const [k, d] of devices) if (k.startsWith(`${who}:`)) unsettled.add(d);
            await waitListed(user, channel);
          } else if (op.kind === "leave" && model.member[who]) {
            expect((await call("DELETE", `/v1/channels/${channel}/members/${user.user_id}`, { token: user.access_token })).status).toBe(200);
            model.leave(who);
            for (const [k, d] of devices) if (k.startsWith(`${who}:`)) unsettled.add(d);
            await waitListed(user, channel, { left: true });
          } else if (op.kind === "connect" && !devices.has(key(who, op.device))) {
            const d = await helloDevice(user.access_token, `d${op.device}`);
            const { messages, resumed } = await d.resume([]);
            devices.set(key(who, op.device), d);
            sentFrom.set(d, new Set());
            const state = resumed.resumed?.channels?.find((c) => c.channel_id === channel);
            if (model.member[who]) {
              expect(state, `RESUMED of user ${who} lists the channel`).toBeDefined();
              expect(Number(state!.unread_count ?? 0), `RESUMED unread of user ${who}`).toBe(model.unread(who));
              const seqs = messages.filter((m) => m.channel_id === channel).map((m) => Number(m.seq));
              expect(seqs, `RESUME of user ${who} from nothing`).toEqual(Array.from({ length: seqs.length }, (_, i) => model.lastSeq - seqs.length + 1 + i));
            }
          } else if (op.kind === "disconnect" && devices.has(key(who, op.device))) {
            const d = devices.get(key(who, op.device))!;
            devices.delete(key(who, op.device));
            d.close();
            await d.waitClosed();
          }
          // Every member's list agrees with the model once deliveries have landed.
          for (let u = 0; u < users.length; u++) {
            if (!model.member[u]) continue;
            let row = await listed(users[u]!, channel);
            for (let i = 0; i < 200 && (row?.last_seq ?? 0) < model.lastSeq; i++) { await sleep(20); row = await listed(users[u]!, channel); }
            expect(row?.last_seq, `last_seq of user ${u}`).toBe(model.lastSeq);
            expect(row?.unread_count, `unread of user ${u} after ${JSON.stringify(op)}`).toBe(model.unread(u));
          }
        }
        // Every device connected throughout as a member holds the channel without a hole, up to the end.
        for (const [k, d] of devices) {
          const who = Number(k.split(":")[0]);
          if (!model.member[who] || unsettled.has(d)) continue;
          const seqs = () => {
            const got = new Set(d.log.filter((f) => f.type === T.DELIVER).flatMap((f) => (f.deliver?.messages ?? []).filter((m) => m.channel_id === channel).map((m) => Number(m.seq))));
            for (const own of sentFrom.get(d)!) got.add(own);
            return got;
          };
          for (let i = 0; i < 200 && !seqs().has(model.lastSeq); i++) await sleep(20);
          const got = seqs();
          const from = Math.min(...got);
          expect([...got].sort((x, y) => x - y), `device ${k} without a hole`).toEqual(Array.from({ length: model.lastSeq - from + 1 }, (_, i) => from + i));
        }
      } finally {
        for (const d of devices.values()) d.close();
      }
    }), { numRuns: 4 });
  }, 600_000);
});
