/**
 * Push inside a UserObject on its own (durable-objects/user/push.ts) over real SQLite and a
 * recording host: missed batches, the ack deadline of live deliveries, reads and the user's own
 * messages clearing what stands, and the read cursor asked of the channel for a channel not listed.
 * test/push/*.test.ts run the same paths through the Worker, the queue and the consumer.
 */
import { describe, expect, it } from "vitest";
import { emptyRow, type ChannelRow } from "../../durable-objects/user/channel-list.js";
import { Devices } from "../../durable-objects/user/devices.js";
import { UserPush, type PushHost } from "../../durable-objects/user/push.js";
import type { ChatMessageData, DeliveryBatch, MemberChannelState } from "../../durable-objects/channel/types.js";
import { fail, type Result } from "../../shared/errors.js";
import type { PushJob } from "../../queues/push-jobs.js";
import { inFreshUser } from "../helpers/object-sql.js";

const ME = "u_me", BOB = "u_bob", C = "c_team";
const DEADLINE = 5_000, WINDOW = 30_000;

function message(seq: number, sender = BOB, text = `hi ${seq}`): ChatMessageData {
  return {
    channel_id: C, server_msg_id: String(seq).padStart(32, "0"), hlc: "0", seq, client_msg_id: `m${seq}`, sender_user_id: sender,
    sender_device_id: "d", server_ts: seq, content: { text: { text } }, reactions: [], edited_at: 0, deleted: false, hidden: false,
  } as ChatMessageData;
}

function batch(...messages: ChatMessageData[]): DeliveryBatch {
  return {
    channel: { channel_id: C, type: "group", name: "Team", member_count: 2, member_user_ids: [ME, BOB], members: [], last_seq: messages.at(-1)!.seq, last_hlc: "0" },
    messages, removed_user_ids: [],
  };
}

function setup(sql: SqlStorage, opts: { subscribed?: boolean; listed?: boolean; channelSays?: () => Promise<Result<{ state: MemberChannelState }>> } = {}) {
  const jobs: PushJob[] = [];
  const wakes: number[] = [];
  const pending: Promise<unknown>[] = [];
  const clock = { now: 1_000_000, connected: true };
  const row: ChannelRow = { ...emptyRow(C), name: "Team" };
  const host: PushHost = {
    sql,
    userId: () => ME,
    previews: () => true,
    row: (channelId) => (opts.listed !== false && channelId === C ? row : undefined),
    connected: () => clock.connected,
    send: async (j) => void jobs.push(...j),
    channel: () => ({ state: opts.channelSays ?? (async () => fail("not_found", "No such channel.")) }),
    wakeAt: (at) => void wakes.push(at),
    waitUntil: (p) => void pending.push(p),
  };
  const push = new UserPush(host, { windowMs: WINDOW, ackDeadlineMs: DEADLINE }, () => clock.now);
  if (opts.subscribed !== false) {
    new Devices(sql).register("phone", "", "", new Set());
    push.subscriptions.set("phone", { type: "fcm", token: "t".repeat(20) });
  }
  return { push, jobs, wakes, clock, settle: () => Promise.all(pending) };
}

describe("UserPush", () => {
  it("a missed batch is pushed at once, without a subscription nothing is read or kept", async () => {
    await inFreshUser(async (sql) => {
      const none = setup(sql, { subscribed: false });
      none.push.missed(batch(message(1)));
      none.push.awaitAcks(batch(message(1)));
      await none.settle();
      expect(none.jobs).toEqual([]);
      expect(none.push.ackDeadlines.size).toBe(0);
    });
    await inFreshUser(async (sql) => {
      const { push, jobs, settle } = setup(sql);
      push.missed(batch(message(1), message(2, ME)));
      await settle();
      expect(jobs.map((j) => [j.device_id, j.payload.type, j.payload.type === "message" && j.payload.seq])).toEqual([["phone", "message", 1]]);
    });
  });

  it("a live delivery no device acks goes to push at its deadline; an ack or a read in time cancels it", async () => {
    await inFreshUser(async (sql) => {
      const { push, jobs, wakes, clock, settle } = setup(sql);
      push.awaitAcks(batch(message(1)));
      expect(wakes).toEqual([1_000_000 + DEADLINE]);
      push.ackDeadlines.confirm(C, 1); // a device acked
      push.awaitAcks(batch(message(2)));
      push.read(C, 2); // read on another device
      push.awaitAcks(batch(message(3)));
      clock.now += DEADLINE;
      expect(push.onAlarm()).toBeUndefined(); // pushed at once: no merged update pending
      await settle();
      expect(jobs.map((j) => j.payload.type === "message" && j.payload.seq)).toEqual([3]);
      push.awaitAcks(batch(message(4)));
      expect(push.onAlarm()).toBe(clock.now + DEADLINE); // not due yet: the alarm comes back for it
    });
  });

  it("nothing waits for an ack with no socket open, and the user's own message clears what stands", async () => {
    await inFreshUser(async (sql) => {
      const { push, jobs, clock, settle } = setup(sql);
      clock.connected = false;
      push.awaitAcks(batch(message(1)));
      expect(push.ackDeadlines.size).toBe(0);
      push.missed(batch(message(1)));
      await settle();
      expect(jobs).toHaveLength(1);
      push.ownMessages(C, [message(2, ME)]);
      await settle();
      expect(jobs.map((j) => j.payload)).toEqual([expect.objectContaining({ type: "message", seq: 1 }), expect.objectContaining({ type: "clear", read_seq: 2 })]);
    });
  });

  it("a retried push asks the channel for its read cursor while the channel is not listed yet, and is kept if the channel cannot answer", async () => {
    await inFreshUser(async (sql) => {
      const read = { ok: true as const, state: { member: true, last_read_seq: 5 } as MemberChannelState };
      expect(await setup(sql, { listed: false, channelSays: async () => read }).push.stillWanted(C, 5)).toBe(false);
      expect(await setup(sql, { listed: false, channelSays: async () => read }).push.stillWanted(C, 6)).toBe(true);
    });
    await inFreshUser(async (sql) => {
      const failing = setup(sql, { listed: false, channelSays: () => Promise.reject(new Error("overloaded")) });
      expect(await failing.push.stillWanted(C, 5)).toBe(true);
    });
  });
});
