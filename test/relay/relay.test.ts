/**
 * A relay shard on its own (durable-objects/relay/relay.ts), over a real relay database: watchers
 * and their epochs, one round per batch in seq order, a failed watcher caught up from the
 * channel's log before it takes part in rounds again (after a restart too), a deadline per call,
 * watchers without a socket dropped and reported, removed watchers cut off at their removal.
 * Members and the channel are plain recorders here; test/relay/relay-tier.test.ts runs the real objects.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Relay, type RelayChannel, type RelayMember } from "../../durable-objects/relay/relay.js";
import type { ChannelSignal, ChannelSummary, ChatMessageData, DeliveryBatch, DeliveryOutcome } from "../../durable-objects/channel/types.js";

const CHANNEL = "c_g_00000000000000000000000000";

function inFreshRelay<T>(fn: (sql: SqlStorage) => T | Promise<T>): Promise<T> {
  return runInDurableObject(env.RELAYS.get(env.RELAYS.newUniqueId()), (_o, state) => fn(state.storage.sql));
}

class Member implements RelayMember {
  batches: DeliveryBatch[] = [];
  signals: ChannelSignal[] = [];
  failing = false;
  offline = false;
  gate: Promise<void> | undefined;
  calls = 0;
  async deliver(batch: DeliveryBatch): Promise<DeliveryOutcome> {
    this.calls++;
    if (this.gate) await this.gate;
    if (this.failing) throw new Error("member object unreachable");
    if (this.offline) return { live: false, epoch: 8 };
    this.batches.push(batch);
    return { live: true, epoch: 1 };
  }
  async signal(event: ChannelSignal): Promise<void> {
    this.signals.push(event);
  }
  seqs(): number[] {
    return this.batches.flatMap((b) => b.messages.map((m) => m.seq));
  }
}

/** The channel's log as a relay reads it. */
class Log implements RelayChannel {
  messages: ChatMessageData[] = [];
  deliveredUpTo = 0;
  reads = 0;
  append(text: string, system?: ChatMessageData["content"]["system"]): ChatMessageData {
    const seq = this.messages.length + 1;
    const m: ChatMessageData = {
      channel_id: CHANNEL, seq, hlc: "", sender_user_id: "u_a", sender_device_id: "d", client_msg_id: `k${seq}`, server_ts: Date.now(),
      content: system ? { system } : { text: { text } },
    } as ChatMessageData;
    this.messages.push(m);
    return m;
  }
  async relayBacklog(fromSeq: number, toSeq: number, max: number) {
    this.reads++;
    const messages = this.messages.filter((m) => m.seq >= fromSeq && m.seq <= toSeq).slice(0, max);
    return { channel: summary(this.messages.length), messages, delivered_up_to: this.deliveredUpTo };
  }
}

function summary(lastSeq: number): ChannelSummary {
  return { channel_id: CHANNEL, type: "broadcast", name: "News", member_count: 1000, member_user_ids: [], members: [], last_seq: lastSeq, last_hlc: "" };
}

function setup(sql: SqlStorage, log = new Log(), { deadlineMs = 10_000 } = {}) {
  const members = new Map<string, Member>();
  const member = (id: string) => {
    let m = members.get(id);
    if (!m) members.set(id, (m = new Member()));
    return m;
  };
  const alarms: number[] = [];
  let skew = 0;
  const relay = new Relay({
    sql, id: () => `${CHANNEL}:0`, userStub: member, channel: () => log, wakeAt: (at) => alarms.push(at), waitUntil: () => {},
    deadlineMs, now: () => Date.now() + skew,
  });
  /** Hands the relay a round of the log's messages from `from` to `to`. */
  const round = (from: number, to: number) => {
    log.deliveredUpTo = from - 1;
    return relay.deliver({ channel_id: CHANNEL, shard: 0, channel: summary(to), messages: log.messages.filter((m) => m.seq >= from && m.seq <= to) });
  };
  return { relay, member, log, alarms, round, due: () => { skew += 3_600_000; } };
}

const retryRows = (sql: SqlStorage) => sql.exec<{ target: string; from_seq: number }>("SELECT target, from_seq FROM delivery_retry ORDER BY target").toArray();

describe("Relay", () => {
  it("registers watchers by epoch (an older registration changes nothing) and delivers each round to all of them in order", async () => {
    await inFreshRelay(async (sql) => {
      const { relay, member, log, round } = setup(sql);
      expect(relay.register([{ user_id: "u_b", epoch: 3 }, { user_id: "u_c", epoch: 1 }])).toHaveLength(2);
      expect(relay.register([{ user_id: "u_b", epoch: 1 }])).toEqual([]); // stale
      expect(relay.unregister("u_c", 0)).toBe(false); // stale
      for (let i = 1; i <= 3; i++) log.append(`m${i}`);
      await round(1, 2);
      await round(3, 3);
      expect(member("u_b").seqs()).toEqual([1, 2, 3]);
      expect(member("u_c").seqs()).toEqual([1, 2, 3]);
      expect(member("u_b").batches[0]!.channel.channel_id).toBe(CHANNEL);
      expect(member("u_nobody").calls).toBe(0);
      expect(sql.exec<{ n: number }>("SELECT count(*) AS n FROM watchers WHERE active = 1").one().n).toBe(2);
    });
  });

  it("leaves a failed watcher out of later rounds until it has caught up from the channel's log, in order", async () => {
    await inFreshRelay(async (sql) => {
      const { relay, member, log, round, due } = setup(sql);
      relay.register([{ user_id: "u_b", epoch: 1 }, { user_id: "u_c", epoch: 1 }]);
      const b = member("u_b");
      b.failing = true;
      log.append("m1");
      await round(1, 1);
      expect(retryRows(sql)).toEqual([{ target: "u_b", from_seq: 1 }]);
      b.failing = false;
      log.append("m2");
      await round(2, 2); // not due yet: b sits this round out
      expect(b.seqs()).toEqual([]);
      due();
      log.append("m3");
      await round(3, 3);
      expect(b.seqs()).toEqual([1, 2, 3]);
      expect(member("u_c").seqs()).toEqual([1, 2, 3]);
      expect(retryRows(sql)).toEqual([]);
    });
  });

  it("never waits longer than the deadline on one watcher: the round answers, the watcher has a durable retry row", async () => {
    await inFreshRelay(async (sql) => {
      const { relay, member, log, round } = setup(sql, new Log(), { deadlineMs: 100 });
      relay.register([{ user_id: "u_b", epoch: 1 }, { user_id: "u_c", epoch: 1 }]);
      member("u_b").gate = new Promise(() => {}); // never answers
      log.append("m1");
      const answer = await round(1, 1);
      expect(answer.watchers).toBe(2);
      expect(member("u_c").seqs()).toEqual([1]);
      expect(retryRows(sql)).toEqual([{ target: "u_b", from_seq: 1 }]);
    });
  });

  it("after a restart, catches a failed watcher up from its retry row, up to where the channel's fan-out got", async () => {
    await inFreshRelay(async (sql) => {
      const log = new Log();
      const first = setup(sql, log);
      first.relay.register([{ user_id: "u_b", epoch: 1 }]);
      first.member("u_b").failing = true;
      log.append("m1");
      log.append("m2");
      await first.round(1, 2);
      expect(first.alarms.length).toBeGreaterThan(0);
      // The relay restarts: its watchers and retry rows are read back; it knows no seq yet.
      const after = setup(sql, log);
      expect(after.relay.isWatching("u_b")).toBe(true);
      expect(after.relay.retryCount).toBe(1);
      log.deliveredUpTo = 2;
      after.due();
      await after.relay.onAlarm();
      expect(after.member("u_b").seqs()).toEqual([1, 2]);
      expect(after.member("u_b").batches[0]!.channel.last_seq).toBe(2);
      expect(retryRows(sql)).toEqual([]);
    });
  });

  it("drops a watcher with no device connected and reports it (with the user's epoch) in its answer", async () => {
    await inFreshRelay(async (sql) => {
      const { relay, member, log, round } = setup(sql);
      relay.register([{ user_id: "u_b", epoch: 1 }, { user_id: "u_c", epoch: 1 }]);
      member("u_b").offline = true;
      log.append("m1");
      const answer = await round(1, 1);
      expect(answer).toEqual({ dropped: [{ user_id: "u_b", epoch: 8 }], watchers: 1 });
      log.append("m2");
      const next = await round(2, 2);
      expect(next.dropped).toEqual([]);
      expect(member("u_b").calls).toBe(1);
      expect(member("u_c").seqs()).toEqual([1, 2]);
      // A registration older than the drop stays dropped; a newer one counts.
      expect(relay.register([{ user_id: "u_b", epoch: 7 }])).toEqual([]);
      expect(relay.register([{ user_id: "u_b", epoch: 9 }])).toHaveLength(1);
    });
  });

  it("gives a watcher removed in a batch that batch up to its removal, then nothing", async () => {
    await inFreshRelay(async (sql) => {
      const { relay, member, log, round } = setup(sql);
      relay.register([{ user_id: "u_b", epoch: 1 }, { user_id: "u_gone", epoch: 1 }]);
      log.append("m1");
      log.append("", { event: "member_removed", target_user_ids: ["u_gone"], actor_user_id: "u_a", text: "" });
      log.append("m3");
      await round(1, 3);
      log.append("m4");
      await round(4, 4);
      expect(member("u_b").seqs()).toEqual([1, 2, 3, 4]);
      expect(member("u_gone").seqs()).toEqual([1, 2]);
      expect(member("u_gone").batches[0]!.removed_user_ids).toEqual(["u_gone"]);
      expect(relay.isWatching("u_gone")).toBe(false);
    });
  });

  it("takes one call at a time, so two rounds handed over at once still arrive in order", async () => {
    await inFreshRelay(async (sql) => {
      const { relay, member, log, round } = setup(sql);
      relay.register([{ user_id: "u_b", epoch: 1 }]);
      let open!: () => void;
      member("u_b").gate = new Promise((r) => { open = r; });
      log.append("m1");
      log.append("m2");
      const one = round(1, 1);
      const two = round(2, 2);
      await new Promise((r) => setTimeout(r, 10));
      member("u_b").gate = undefined;
      open();
      await Promise.all([one, two]);
      expect(member("u_b").seqs()).toEqual([1, 2]);
    });
  });
});
