/**
 * The fan-out on its own, over a real channel database: rounds in seq order, bursts coalesced
 * while a round is out, progress in fanout_seq, failed members in the retry table, a restart
 * that reads the log back. Members are plain recorders here; test/channel/channel-object.test.ts
 * and test/reliability/ cover the real UserObjects.
 */
import { describe, expect, it } from "vitest";
import { FanOut, FANOUT_GUARD_MS, RETRY_BASE_MS, type MemberEndpoint } from "../../durable-objects/channel/fanout.js";
import { HLC_ZERO } from "../../durable-objects/channel/hlc.js";
import { SenderRateLimiter } from "../../durable-objects/channel/rate-limit.js";
import { Sequencer } from "../../durable-objects/channel/sequencer.js";
import { SIGNAL_MAX_MEMBERS, type ChannelSignal, type DeliveryBatch } from "../../durable-objects/channel/types.js";
import { inFreshChannel } from "../helpers/object-sql.js";

const CHANNEL = "c_g_00000000000000000000000000";

/** A member's object that records what it is given; `failing` members throw, `gate` holds calls. */
class Member implements MemberEndpoint {
  batches: DeliveryBatch[] = [];
  signals: ChannelSignal[] = [];
  failing = false;
  gate: Promise<void> | undefined;
  async deliver(batch: DeliveryBatch): Promise<void> {
    if (this.gate) await this.gate;
    if (this.failing) throw new Error("member object unreachable");
    this.batches.push(batch);
  }
  async signal(event: ChannelSignal): Promise<void> {
    this.signals.push(event);
  }
  seqs(): number[] {
    return this.batches.flatMap((b) => b.messages.map((m) => m.seq));
  }
}

/**
 * A sequencer and a fan-out wired as the ChannelObject wires them. `restart` builds them again
 * over the same database, as the object's constructor does after a restart.
 */
function setup(sql: SqlStorage, memberIds: string[], { restart = false } = {}) {
  if (!restart) sql.exec("INSERT INTO channel (id, channel_id, type, name, created_by, created_at) VALUES (1, ?, 'group', 'T', 'u_a', 0)", CHANNEL);
  /** Every member's object the fan-out reached, members or not. */
  const objects = new Map<string, Member>();
  const object = (id: string) => {
    let m = objects.get(id);
    if (!m) objects.set(id, (m = new Member()));
    return m;
  };
  const alarms: number[] = [];
  let alarm: number | null = null;
  const waited: Promise<unknown>[] = [];
  let kicks = true;
  const log: Sequencer = new Sequencer(sql, new SenderRateLimiter({ perSecond: 0, burst: 1 }), (m) => {
    fanout.accept(m);
    if (kicks) fanout.kick();
  });
  const fanout: FanOut = new FanOut({
    sql,
    alarms: {
      getAlarm: async () => alarm,
      setAlarm: async (at: number | Date) => { alarm = Number(at); alarms.push(alarm); },
    },
    waitUntil: (p) => waited.push(p),
    log,
    summary: () => ({ channel_id: CHANNEL, type: "group", name: "T", member_count: memberIds.length, members: [], last_seq: log.lastSeq, last_hlc: "" }),
    memberIds: () => memberIds,
    userStub: object,
  });
  const row = sql.exec<{ last_seq: number; hlc_ms: number; hlc_logical: number; fanout_seq: number }>(
    "SELECT last_seq, hlc_ms, hlc_logical, fanout_seq FROM channel",
  ).one();
  log.start(CHANNEL, row.last_seq, { ms: row.hlc_ms, logical: row.hlc_logical });
  fanout.start(row.fanout_seq);
  const send = (userId: string, key: string) => {
    const r = log.append({ userId, deviceId: "d", clientMsgId: key, content: { text: { text: key } } });
    if (!r.ok) throw new Error(r.message);
    return r.ack.seq;
  };
  return { log, fanout, object, alarms, waited, send, holdKicks: () => { kicks = false; } };
}

const storedFanoutSeq = (sql: SqlStorage) => sql.exec<{ fanout_seq: number }>("SELECT fanout_seq FROM channel").one().fanout_seq;

describe("FanOut", () => {
  it("hands every message to every member in seq order and records its progress", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, alarms, send } = setup(sql, ["u_a", "u_b", "u_c"]);
      const before = Date.now();
      for (let i = 1; i <= 5; i++) send("u_a", `m${i}`);
      await fanout.run();
      for (const id of ["u_a", "u_b", "u_c"]) expect(object(id).seqs()).toEqual([1, 2, 3, 4, 5]);
      expect(fanout.deliveredUpTo).toBe(5);
      expect(storedFanoutSeq(sql)).toBe(5);
      // One guard alarm per alarm run, however many appends.
      expect(alarms).toHaveLength(1);
      expect(alarms[0]).toBeGreaterThanOrEqual(before + FANOUT_GUARD_MS);
    });
  });

  it("sends what was appended during a round together in the next round", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, send } = setup(sql, ["u_a", "u_b"]);
      let open!: () => void;
      object("u_b").gate = new Promise((r) => { open = r; });
      send("u_a", "first");
      for (let i = 2; i <= 4; i++) send("u_a", `m${i}`);
      open();
      await fanout.run();
      const rounds = object("u_b").batches.map((b) => b.messages.map((m) => m.seq));
      expect(rounds).toEqual([[1], [2, 3, 4]]);
    });
  });

  it("keeps delivering to the others when one member fails, and retries that member from the alarm", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, alarms, send } = setup(sql, ["u_a", "u_b", "u_c"]);
      const b = object("u_b");
      b.failing = true;
      send("u_a", "m1");
      send("u_a", "m2");
      await fanout.run();
      expect(object("u_c").seqs()).toEqual([1, 2]);
      expect(sql.exec("SELECT user_id, from_seq, attempts FROM fanout_retry").toArray()).toEqual([{ user_id: "u_b", from_seq: 1, attempts: 0 }]);
      expect(alarms.at(-1)).toBeLessThanOrEqual(Date.now() + RETRY_BASE_MS);
      await fanout.onAlarm(); // still failing: one more attempt counted
      expect(sql.exec<{ attempts: number }>("SELECT attempts FROM fanout_retry").one().attempts).toBe(1);
      b.failing = false;
      await fanout.onAlarm();
      expect(b.seqs()).toEqual([1, 2]);
      expect(sql.exec("SELECT 1 FROM fanout_retry").toArray()).toHaveLength(0);
    });
  });

  it("after a restart, reads back from the log what was stored but not yet handed out", async () => {
    await inFreshChannel(async (sql) => {
      const first = setup(sql, ["u_a", "u_b"]);
      first.holdKicks(); // stored, acked, then the process died before the fan-out ran
      first.send("u_a", "m1");
      first.send("u_a", "m2");
      expect(storedFanoutSeq(sql)).toBe(0);
      const after = setup(sql, ["u_a", "u_b"], { restart: true });
      expect(after.fanout.behind).toBe(true);
      await after.fanout.onAlarm();
      expect(after.object("u_b").seqs()).toEqual([1, 2]);
      expect(after.object("u_b").batches[0]!.messages[1]!.content).toEqual({ text: { text: "m2" } });
      expect(after.fanout.behind).toBe(false);
    });
  });

  it("gives a member removed in a batch nothing after their removal", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, log, send, holdKicks } = setup(sql, ["u_a", "u_b"]);
      holdKicks();
      send("u_a", "m1");
      log.insert("u_a", "", null, "system", { system: { event: "member_removed", target_user_ids: ["u_gone"], actor_user_id: "u_a", text: "" } });
      send("u_a", "m3");
      await fanout.run();
      const gone = object("u_gone");
      expect(object("u_b").seqs()).toEqual([1, 2, 3]);
      expect(gone.seqs()).toEqual([1, 2]);
      expect(gone.batches[0]!.removed_user_ids).toEqual(["u_gone"]);
    });
  });

  it("passes signals to the other members only, and none in channels above the signal size", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, waited } = setup(sql, ["u_a", "u_b", "u_c"]);
      const typing: ChannelSignal = { kind: "typing", channel_id: CHANNEL, user_id: "u_a", device_id: "d", is_typing: true };
      fanout.signal("u_a", typing);
      await Promise.all(waited);
      expect(["u_a", "u_b", "u_c"].map((id) => object(id).signals.length)).toEqual([0, 1, 1]);
      const big = setup(sql, Array.from({ length: SIGNAL_MAX_MEMBERS + 1 }, (_, i) => `u_${i}`), { restart: true });
      big.fanout.signal("u_0", typing);
      expect(big.waited).toHaveLength(0);
    });
  });
});
