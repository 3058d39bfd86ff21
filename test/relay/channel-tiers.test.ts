/**
 * The channel's side of the relay tier (durable-objects/channel/fanout.ts, watchers.ts, tiers.ts)
 * over a real channel database, with recorder relays and members: tier selection; one call per
 * shard with watchers per round; watchers delivered directly until registered, registered only
 * between rounds and only once caught up; a failed or late relay caught up from the log before it
 * takes part in rounds again (after a restart too); watchers a relay dropped are unwatched.
 */
import { describe, expect, it } from "vitest";
import { FanOut, type MemberEndpoint, type RelayEndpoint } from "../../durable-objects/channel/fanout.js";
import { SenderRateLimiter } from "../../durable-objects/channel/rate-limit.js";
import { Sequencer } from "../../durable-objects/channel/sequencer.js";
import { enterTier, relayShardsFor, TIER_DEFAULTS, tierConfigFromEnv } from "../../durable-objects/channel/tiers.js";
import { createChannelRow, readChannelRow } from "../../durable-objects/channel/views.js";
import { Watchers } from "../../durable-objects/channel/watchers.js";
import type { ChannelSignal, DeliveryBatch, DeliveryOutcome } from "../../durable-objects/channel/types.js";
import type { RelayBatch, RelayWatcher } from "../../durable-objects/relay/relay.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { relayShardOf } from "../../shared/routing.js";
import { inFreshChannel } from "../helpers/object-sql.js";

const CHANNEL = "c_g_00000000000000000000000000";
const SHARDS = 4;

class Member implements MemberEndpoint {
  batches: DeliveryBatch[] = [];
  failing = false;
  async deliver(batch: DeliveryBatch): Promise<DeliveryOutcome> {
    if (this.failing) throw new Error("member object unreachable");
    this.batches.push(batch);
    return { live: true, epoch: 1 };
  }
  async signal(_event: ChannelSignal): Promise<void> {}
  seqs(): number[] {
    return this.batches.flatMap((b) => b.messages.map((m) => m.seq));
  }
}

/** A relay shard that records: registrations, and the batches handed to it. */
class Shard implements RelayEndpoint {
  watchers = new Map<string, number>();
  batches: RelayBatch[] = [];
  failing = false;
  gate: Promise<void> | undefined;
  dropNext: RelayWatcher[] = [];
  /** Every call, in the order received ("register u_w0@1", "unregister u_w0@2", "forget u_w0"). */
  calls: string[] = [];
  forgotten: string[] = [];
  registerGate: Promise<void> | undefined;
  async register(_channelId: string, _shard: number, watchers: RelayWatcher[]) {
    if (this.registerGate) await this.registerGate;
    if (this.failing) throw new Error("relay unreachable");
    for (const w of watchers) {
      this.calls.push(`register ${w.user_id}@${w.epoch}`);
      this.watchers.set(w.user_id, w.epoch);
    }
    return { ok: true as const, registered: watchers };
  }
  async unregister(_channelId: string, _shard: number, watchers: RelayWatcher[]) {
    if (this.failing) throw new Error("relay unreachable");
    for (const w of watchers) {
      this.calls.push(`unregister ${w.user_id}@${w.epoch}`);
      // The relay's epoch rule: an older leave than the registration changes nothing.
      if ((this.watchers.get(w.user_id) ?? Infinity) <= w.epoch) this.watchers.delete(w.user_id);
    }
    return { ok: true as const };
  }
  async forget(_channelId: string, _shard: number, userIds: string[]) {
    if (this.failing) throw new Error("relay unreachable");
    for (const id of userIds) {
      this.calls.push(`forget ${id}`);
      this.watchers.delete(id);
      this.forgotten.push(id);
    }
    return { ok: true as const };
  }
  async deliver(batch: RelayBatch) {
    if (this.gate) await this.gate;
    if (this.failing) throw new Error("relay unreachable");
    this.batches.push(batch);
    const dropped = this.dropNext;
    this.dropNext = [];
    return { ok: true as const, dropped, watchers: this.watchers.size };
  }
  async signal(): Promise<void> {}
  seqs(): number[] {
    return this.batches.flatMap((b) => b.messages.map((m) => m.seq));
  }
}

function setup(sql: SqlStorage, { restart = false, relayDeadlineMs = 30_000 } = {}) {
  if (!restart) sql.exec("INSERT INTO channel (id, channel_id, type, name, created_by, created_at, relay_shards) VALUES (1, ?, 'broadcast', 'N', 'u_a', 0, ?)", CHANNEL, SHARDS);
  const members = new Map<string, Member>();
  const member = (id: string) => {
    let m = members.get(id);
    if (!m) members.set(id, (m = new Member()));
    return m;
  };
  const shards = Array.from({ length: SHARDS }, () => new Shard());
  const alarms: number[] = [];
  let skew = 0;
  const watchers = new Watchers(sql);
  watchers.load(SHARDS);
  const log: Sequencer = new Sequencer(sql, new SenderRateLimiter({ perSecond: 0, burst: 1 }), (m) => fanout.accept(m));
  const fanout: FanOut = new FanOut({
    sql, id: () => CHANNEL, wakeAt: (at) => alarms.push(at), waitUntil: () => {}, log,
    summary: () => ({ channel_id: CHANNEL, type: "broadcast", name: "N", member_count: 1000, member_user_ids: [], members: [], last_seq: log.lastSeq, last_hlc: "" }),
    memberCount: () => 1000, watchers, userStub: member, relayStub: (n) => shards[n]!, relayDeadlineMs, now: () => Date.now() + skew,
  });
  const row = sql.exec<{ last_seq: number; hlc_ms: number; hlc_logical: number; fanout_seq: number }>("SELECT last_seq, hlc_ms, hlc_logical, fanout_seq FROM channel").one();
  log.start(CHANNEL, row.last_seq, { ms: row.hlc_ms, logical: row.hlc_logical });
  fanout.start(row.fanout_seq);
  const send = (key: string) => {
    const r = log.append({ userId: "u_a", deviceId: "d", clientMsgId: key, content: { text: { text: key } } });
    if (!r.ok) throw new Error(r.message);
    return r.ack.seq;
  };
  /** What `userId` got, directly and through its shard (as its relay would pass it on). */
  const received = (userId: string) => {
    const shard = shards[relayShardOf(userId, SHARDS)]!;
    return [...member(userId).seqs(), ...shard.seqs()];
  };
  return { fanout, watchers, member, shards, alarms, send, received, due: () => { skew += 3_600_000; } };
}

/** Users spread so that every one of the SHARDS shards holds some. */
const USERS = Array.from({ length: 12 }, (_, i) => `u_w${i}`);
const retryRows = (sql: SqlStorage) => sql.exec<{ target: string; from_seq: number }>("SELECT target, from_seq FROM delivery_retry ORDER BY target").toArray();

describe("tiers", () => {
  it("chooses the tier from type and size; a channel in a relay tier keeps its shards", () => {
    const c = TIER_DEFAULTS;
    expect(relayShardsFor("dm", 2, 0, c)).toBe(0);
    expect(relayShardsFor("group", 100, 0, c)).toBe(0);
    expect(relayShardsFor("group", 101, 0, c)).toBe(16);
    expect(relayShardsFor("broadcast", 1, 0, c)).toBe(64);
    // Shrinking does not leave the tier; a changed setting does not move a channel's watchers.
    expect(relayShardsFor("group", 3, 16, c)).toBe(16);
    expect(relayShardsFor("group", 500, 16, { ...c, groupShards: 32 })).toBe(16);
  });

  it("enters the relay tier once, in the row and in storage, and answers nothing when the tier stays", async () => {
    await inFreshChannel((sql) => {
      const row = createChannelRow(sql, { channelId: CHANNEL, type: "group", name: "G", createdBy: "u_a", jurisdiction: "" }, 1);
      const c = { ...TIER_DEFAULTS, directMaxMembers: 3 };
      expect(enterTier(sql, row, 3, c)).toBeUndefined();
      expect(enterTier(sql, row, 4, c)).toBe(c.groupShards);
      expect(row.relay_shards).toBe(c.groupShards);
      expect(readChannelRow(sql)?.relay_shards).toBe(c.groupShards);
      expect(enterTier(sql, row, 1, { ...c, groupShards: 2 })).toBeUndefined();
      expect(readChannelRow(sql)?.relay_shards).toBe(c.groupShards);
    });
  });

  it("reads its thresholds from the Worker's vars, with defaults for what is unset or not sane", () => {
    expect(tierConfigFromEnv({})).toEqual(TIER_DEFAULTS);
    expect(tierConfigFromEnv({ DIRECT_TIER_MAX_MEMBERS: "10", RELAY_SHARDS_GROUP: "4", RELAY_SHARDS_BROADCAST: "128" }))
      .toEqual({ directMaxMembers: 10, groupShards: 4, broadcastShards: 128 });
    expect(tierConfigFromEnv({ DIRECT_TIER_MAX_MEMBERS: "-1", RELAY_SHARDS_GROUP: "0", RELAY_SHARDS_BROADCAST: "lots" })).toEqual(TIER_DEFAULTS);
  });
});

describe("FanOut in a relay tier", () => {
  it("delivers directly until a watcher is registered at its shard, then once per shard with watchers per round", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, watchers, member, shards, send, received } = setup(sql);
      for (const id of USERS) watchers.watch(id, 1, true);
      expect(watchers.directTargets().size).toBe(USERS.length);
      const seen = memoryRecorder();
      const restore = recordMetricsWith(seen);
      try {
        send("m1");
        await fanout.run();
      } finally {
        restore();
      }
      // Registration ran before the round: every watcher is at its shard, none is called directly.
      expect(watchers.directTargets().size).toBe(0);
      for (const id of USERS) expect(shards[relayShardOf(id, SHARDS)]!.watchers.get(id)).toBe(1);
      const used = new Set(USERS.map((id) => relayShardOf(id, SHARDS))).size;
      expect(seen.total("fanout.rpc", { to: "relay" })).toBe(used);
      expect(seen.total("fanout.rpc", { to: "user" })).toBe(0);
      expect(seen.total("fanout.relay_register_rpc")).toBe(used);
      send("m2");
      send("m3");
      await fanout.run();
      for (const id of USERS) expect(received(id)).toEqual([1, 2, 3]);
      for (const id of USERS) expect(member(id).batches).toEqual([]);
    });
  });

  it("hands a watcher over between rounds: it never misses a seq nor gets one twice out of order", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, watchers, member, shards, send, received, due } = setup(sql);
      watchers.watch("u_w0", 1, true);
      const shard = shards[relayShardOf("u_w0", SHARDS)]!;
      shard.failing = true; // registration fails: the watcher keeps its direct path
      send("m1");
      await fanout.run();
      expect(member("u_w0").seqs()).toEqual([1]);
      expect(watchers.isAtRelay("u_w0")).toBe(false);
      shard.failing = false;
      due();
      send("m2");
      await fanout.run();
      send("m3");
      await fanout.run();
      expect(watchers.isAtRelay("u_w0")).toBe(true);
      expect(received("u_w0").sort((a, b) => a - b)).toEqual([1, 2, 3]);
    });
  });

  it("registers a watcher that is catching up directly only once it has caught up", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, watchers, member, shards, send, received, due } = setup(sql);
      const shard = shards[relayShardOf("u_w1", SHARDS)]!;
      watchers.watch("u_w1", 1, true);
      shard.failing = true; // not registered yet ...
      member("u_w1").failing = true; // ... and its direct delivery fails: it owes seq 1
      send("m1");
      await fanout.run();
      expect(retryRows(sql)).toEqual([{ target: "u_w1", from_seq: 1 }]);
      shard.failing = false;
      send("m2");
      await fanout.run(); // neither due nor registrable: it waits
      expect(watchers.isAtRelay("u_w1")).toBe(false);
      expect(shard.watchers.has("u_w1")).toBe(false);
      member("u_w1").failing = false;
      due();
      send("m3");
      await fanout.run(); // caught up directly (1, 2), then registered, then 3 through the shard
      expect(member("u_w1").seqs()).toEqual([1, 2]);
      expect(shard.seqs()).toEqual([3]);
      expect(received("u_w1")).toEqual([1, 2, 3]);
      expect(retryRows(sql)).toEqual([]);
    });
  });

  it("catches a failed relay up from the log before it takes part in rounds again", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, watchers, shards, send, due } = setup(sql);
      for (const id of USERS) watchers.watch(id, 1, true);
      send("m0");
      await fanout.run(); // registered, m0 through the relays
      const n = relayShardOf(USERS[0]!, SHARDS);
      shards[n]!.failing = true;
      send("m1");
      await fanout.run();
      expect(retryRows(sql)).toEqual([{ target: `relay:${n}`, from_seq: 2 }]);
      shards[n]!.failing = false;
      send("m2");
      await fanout.run(); // not due: the shard sits it out
      expect(shards[n]!.seqs()).toEqual([1]);
      due();
      send("m3");
      await fanout.run();
      expect(shards[n]!.seqs()).toEqual([1, 2, 3, 4]);
      expect(shards[n]!.batches.map((b) => b.messages.map((m) => m.seq))).toEqual([[1], [2, 3], [4]]);
      expect(retryRows(sql)).toEqual([]);
    });
  });

  it("does not wait past the deadline on a relay, and keeps relay retries apart from watcher retries across a restart", async () => {
    await inFreshChannel(async (sql) => {
      const first = setup(sql, { relayDeadlineMs: 100 });
      for (const id of USERS) first.watchers.watch(id, 1, true);
      first.send("m0");
      await first.fanout.run();
      const n = relayShardOf(USERS[0]!, SHARDS);
      first.shards[n]!.gate = new Promise(() => {}); // never answers
      first.send("m1");
      await first.fanout.run();
      expect(first.fanout.deliveredUpTo).toBe(2);
      expect(retryRows(sql)).toEqual([{ target: `relay:${n}`, from_seq: 2 }]);
      first.fanout.onAlarm(); // the guard alarm stores the progress (rounds up to 2)
      // The channel restarts: the row is the relays' again, not a watcher's.
      const after = setup(sql, { restart: true });
      expect(after.fanout.relays.retryCount).toBe(1);
      expect(after.fanout.direct.retryCount).toBe(0);
      for (const id of USERS) after.shards[relayShardOf(id, SHARDS)]!.watchers.set(id, 1);
      after.due();
      after.send("m2");
      await after.fanout.run();
      expect(after.shards[n]!.seqs()).toEqual([2, 3]);
      expect(retryRows(sql)).toEqual([]);
    });
  });

  it("unwatches the watchers a relay reports as dropped, by their epochs", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, watchers, shards, send } = setup(sql);
      for (const id of USERS) watchers.watch(id, 1, true);
      send("m0");
      await fanout.run();
      const n = relayShardOf("u_w0", SHARDS);
      const before = watchers.atShard(n);
      shards[n]!.dropNext = [{ user_id: "u_w0", epoch: 2 }];
      send("m1");
      await fanout.run();
      expect(watchers.isActive("u_w0")).toBe(false);
      expect(watchers.atShard(n)).toBe(before - 1);
      // A newer watch (reconnect) comes back through the direct path, then its shard.
      watchers.watch("u_w0", 3, true);
      expect(watchers.directTargets().has("u_w0")).toBe(true);
    });
  });

  it("tells a watcher's shard when it stops watching, once the rounds before went out; a drop the relay reported is not told back", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, watchers, shards, send } = setup(sql);
      for (const id of USERS) watchers.watch(id, 1, true);
      send("m0");
      await fanout.run(); // registered at their shards
      const n = relayShardOf("u_w0", SHARDS);
      const shard = shards[n]!;
      expect(shard.watchers.get("u_w0")).toBe(1);
      const others = USERS.filter((id) => id !== "u_w0" && relayShardOf(id, SHARDS) === n);

      // A post, then the leave, in the same turn: the shard gets the round first, then the leave.
      send("m1");
      expect(watchers.unwatch("u_w0", 2)).toBe(true);
      const seen = memoryRecorder();
      const restore = recordMetricsWith(seen);
      try {
        await fanout.run();
      } finally {
        restore();
      }
      expect(shard.seqs()).toEqual([1, 2]);
      expect(shard.calls.filter((c) => c.startsWith("unregister"))).toEqual(["unregister u_w0@2"]);
      expect(shard.watchers.has("u_w0")).toBe(false);
      expect(seen.total("fanout.relay_leave_rpc")).toBe(1);
      expect(sql.exec("SELECT count(*) AS n FROM relay_leaves").one().n).toBe(0);
      // Its shard still holds the others, and the channel still calls it.
      for (const id of others) expect(shard.watchers.has(id)).toBe(true);
      expect(watchers.atShard(n)).toBe(others.length);

      // A watcher the relay itself dropped is unwatched here without a call back.
      const m = relayShardOf("u_w1", SHARDS);
      shards[m]!.dropNext = [{ user_id: "u_w1", epoch: 5 }];
      send("m2");
      await fanout.run();
      send("m3");
      await fanout.run();
      expect(watchers.isActive("u_w1")).toBe(false);
      expect(shards[m]!.calls.filter((c) => c.startsWith("unregister"))).toEqual([]);
      expect(watchers.hasLeavesDue(Infinity)).toBe(false);
    });
  });

  it("tells a leave after a registration that was on its way, and keeps it queued across a failed relay and a restart", async () => {
    await inFreshChannel(async (sql) => {
      const first = setup(sql);
      const n = relayShardOf("u_w2", SHARDS);
      let open!: () => void;
      first.shards[n]!.registerGate = new Promise((r) => { open = r; });
      first.watchers.watch("u_w2", 1, true);
      const pump = first.fanout.run(); // the registration waits at the shard ...
      await new Promise((r) => setTimeout(r, 10));
      first.watchers.unwatch("u_w2", 2); // ... while the user goes offline
      first.shards[n]!.registerGate = undefined;
      open();
      await pump;
      expect(first.shards[n]!.calls).toEqual(["register u_w2@1", "unregister u_w2@2"]);
      expect(first.shards[n]!.watchers.has("u_w2")).toBe(false);

      // Back online, registered, then removed from the channel while its shard is unreachable.
      first.watchers.watch("u_w2", 3, true);
      first.due(); // the registration that moved no one waits a retry interval
      await first.fanout.run();
      expect(first.shards[n]!.watchers.get("u_w2")).toBe(3);
      first.shards[n]!.failing = true;
      expect(first.watchers.remove("u_w2")).toBe(true);
      await first.fanout.run();
      expect(sql.exec<{ user_id: string; epoch: number }>("SELECT user_id, epoch FROM relay_leaves").toArray()).toEqual([{ user_id: "u_w2", epoch: 3 }]);
      expect(first.fanout.nextDue()).toBeDefined();

      // The channel restarts; the queued leave is told once its shard answers again.
      const after = setup(sql, { restart: true });
      after.shards[n]!.watchers.set("u_w2", 3);
      after.due();
      await after.fanout.run();
      expect(after.shards[n]!.calls).toEqual(["unregister u_w2@3"]);
      expect(after.shards[n]!.watchers.has("u_w2")).toBe(false);
      expect(after.watchers.hasLeavesDue(Infinity)).toBe(false);
    });
  });

  it("has an erased user forgotten by their shard, watching or not", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, watchers, shards, send } = setup(sql);
      watchers.watch("u_w3", 1, true);
      send("m0");
      await fanout.run();
      const n = relayShardOf("u_w3", SHARDS);
      expect(shards[n]!.watchers.get("u_w3")).toBe(1);
      watchers.remove("u_w3");
      watchers.forget("u_w3");
      expect(await fanout.leaveTold("u_w3", 5_000)).toBe(true);
      expect(shards[n]!.calls.at(-1)).toBe("forget u_w3");
      expect(shards[n]!.forgotten).toEqual(["u_w3"]);
      expect(shards[n]!.watchers.has("u_w3")).toBe(false);
      expect(watchers.leavePending("u_w3")).toBe(false);
    });
  });
});
