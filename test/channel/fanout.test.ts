/**
 * The fan-out on its own, over a real channel database: rounds to watchers only, in seq order,
 * bursts coalesced while a round is out, progress in fanout_seq, failed watchers caught up from
 * the retry table before they take part in rounds again, a restart that reads the log back, the
 * watchdog. Members are plain recorders here; test/channel/watchers.test.ts and test/user/ cover
 * the real UserObjects.
 */
import { describe, expect, it } from "vitest";
import { FanOut, FANOUT_GUARD_MS, STALL_MS, type MemberEndpoint } from "../../durable-objects/channel/fanout.js";
import { backoffMs, RETRY_BASE_MS, RETRY_MAX_ATTEMPTS } from "../../durable-objects/fanout/rounds.js";
import { SenderRateLimiter } from "../../durable-objects/channel/rate-limit.js";
import { Sequencer } from "../../durable-objects/channel/sequencer.js";
import { Watchers } from "../../durable-objects/channel/watchers.js";
import { SIGNAL_MAX_MEMBERS, type ChannelSignal, type DeliveryBatch, type DeliveryOutcome } from "../../durable-objects/channel/types.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { inFreshChannel } from "../helpers/object-sql.js";

const CHANNEL = "c_g_00000000000000000000000000";

/** A member's object that records what it is given; `failing` ones throw, `gate` holds calls, `offline` answers live: false. */
class Member implements MemberEndpoint {
  batches: DeliveryBatch[] = [];
  signals: ChannelSignal[] = [];
  failing = false;
  offline = false;
  gate: Promise<void> | undefined;
  calls = 0;
  async deliver(batch: DeliveryBatch): Promise<DeliveryOutcome> {
    this.calls++;
    const gate = this.gate;
    if (gate) await gate;
    if (this.failing) throw new Error("member object unreachable");
    if (this.offline) return { live: false, epoch: 9 };
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

/**
 * A sequencer, watchers and a fan-out wired as the ChannelObject wires them. `restart` builds them
 * again over the same database, as the object's constructor does after a restart.
 */
function setup(sql: SqlStorage, watching: string[], { restart = false, memberCount = watching.length, deadlineMs = 10_000 } = {}) {
  if (!restart) sql.exec("INSERT INTO channel (id, channel_id, type, name, created_by, created_at) VALUES (1, ?, 'group', 'T', 'u_a', 0)", CHANNEL);
  const objects = new Map<string, Member>();
  const object = (id: string) => {
    let m = objects.get(id);
    if (!m) objects.set(id, (m = new Member()));
    return m;
  };
  const alarms: number[] = [];
  const waited: Promise<unknown>[] = [];
  let kicks = true;
  let skew = 0;
  const watchers = new Watchers(sql);
  if (!restart) for (const id of watching) watchers.watch(id, 1, false);
  watchers.load();
  let selfApplied = false;
  const log: Sequencer = new Sequencer(sql, new SenderRateLimiter({ perSecond: 0, burst: 1 }), (m) => {
    fanout.accept(m, selfApplied);
    if (kicks) fanout.kick();
  });
  const fanout: FanOut = new FanOut({
    sql, id: () => CHANNEL, wakeAt: (at) => alarms.push(at), waitUntil: (p) => waited.push(p), log,
    summary: () => ({ channel_id: CHANNEL, type: "group", name: "T", member_count: memberCount, member_user_ids: [], members: [], last_seq: log.lastSeq, last_hlc: "" }),
    memberCount: () => memberCount, watchers, userStub: object, deadlineMs, now: () => Date.now() + skew,
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
  /** A SEND whose sender's UserObject applies the stored message from the answer (decision 033). */
  const sendOwn = (userId: string, key: string) => {
    selfApplied = true;
    try { return send(userId, key); } finally { selfApplied = false; }
  };
  /** Moves the fan-out's clock past every pending retry (instead of waiting out the backoff). */
  const due = () => { skew += 3_600_000; };
  return { log, fanout, watchers, object, alarms, waited, send, sendOwn, due, holdKicks: () => { kicks = false; } };
}

/** The channel after a restart on the same storage: behind, its guard alarm run, its pump done. */
async function restarted(sql: SqlStorage) {
  const after = setup(sql, ["u_a", "u_b"], { restart: true });
  expect(after.fanout.behind).toBe(true);
  after.fanout.onAlarm();
  await after.fanout.run();
  return after;
}

const storedFanoutSeq = (sql: SqlStorage) => sql.exec<{ fanout_seq: number }>("SELECT fanout_seq FROM channel").one().fanout_seq;
const retryRows = (sql: SqlStorage) => sql.exec<{ target: string; from_seq: number; attempts: number; next_at: number }>("SELECT target, from_seq, attempts, next_at FROM delivery_retry ORDER BY target").toArray();

describe("FanOut", () => {
  it("hands every message to every watcher in seq order, nothing to members who do not watch, and records its progress", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, alarms, send } = setup(sql, ["u_a", "u_b"]);
      const before = Date.now();
      for (let i = 1; i <= 5; i++) send("u_a", `m${i}`);
      await fanout.run();
      for (const id of ["u_a", "u_b"]) expect(object(id).seqs()).toEqual([1, 2, 3, 4, 5]);
      expect(object("u_offline").calls).toBe(0);
      expect(fanout.deliveredUpTo).toBe(5);
      // One guard alarm per alarm run, however many appends.
      expect(alarms).toHaveLength(1);
      expect(alarms[0]).toBeGreaterThanOrEqual(before + FANOUT_GUARD_MS);
      // The round's end is not a write of its own: the guard alarm stores it (decision 032).
      expect(storedFanoutSeq(sql)).toBe(0);
      expect(fanout.nextDue()).toBeDefined();
      fanout.onAlarm();
      expect(storedFanoutSeq(sql)).toBe(5);
      expect(fanout.nextDue()).toBeUndefined();
    });
  });

  it("sends what was appended during a round together in the next round", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, send } = setup(sql, ["u_a", "u_b"]);
      let open!: () => void;
      object("u_b").gate = new Promise((r) => { open = r; });
      send("u_a", "first");
      await new Promise((r) => setTimeout(r, 10)); // the first round is out, held by b
      for (let i = 2; i <= 4; i++) send("u_a", `m${i}`);
      open();
      await fanout.run();
      expect(object("u_b").batches.map((b) => b.messages.map((m) => m.seq))).toEqual([[1], [2, 3, 4]]);
    });
  });

  it("leaves a failed watcher out of later rounds until it has caught up, so it never gets a newer seq before an older one", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, send, due } = setup(sql, ["u_a", "u_b", "u_c"]);
      const b = object("u_b");
      b.failing = true;
      send("u_a", "m1");
      await fanout.run();
      expect(retryRows(sql)).toMatchObject([{ target: "u_b", from_seq: 1, attempts: 0 }]);
      // b recovers, but its retry is not due yet: rounds 2 and 3 go to the others only.
      b.failing = false;
      send("u_a", "m2");
      await fanout.run();
      send("u_a", "m3");
      await fanout.run();
      expect(object("u_c").seqs()).toEqual([1, 2, 3]);
      expect(b.seqs()).toEqual([]);
      // Due now: the next pump run catches b up in order, then b takes part in round 4.
      due();
      send("u_a", "m4");
      await fanout.run();
      expect(b.seqs()).toEqual([1, 2, 3, 4]);
      expect(retryRows(sql)).toEqual([]);
    });
  });

  it("backs each failed watcher off by its own attempts, and skips ahead after the last one", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, send, due } = setup(sql, ["u_a", "u_b", "u_c"]);
      object("u_b").failing = true;
      send("u_a", "m1");
      await fanout.run();
      // b fails three more catch-ups; c fails for the first time only now.
      for (let i = 0; i < 3; i++) { due(); await fanout.run(); }
      object("u_c").failing = true;
      send("u_a", "m2");
      await fanout.run();
      const [rb, rc] = retryRows(sql);
      expect([rb!.target, rb!.attempts, rc!.target, rc!.attempts]).toEqual(["u_b", 3, "u_c", 0]);
      // Each row is timed by its own attempts (not by whichever row came first).
      expect(rb!.next_at - rc!.next_at).toBeGreaterThan(backoffMs(3) - RETRY_BASE_MS - 1000);
      // b keeps failing until it is given up on: it skips ahead and takes part in rounds again.
      for (let i = 3; i < RETRY_MAX_ATTEMPTS; i++) { due(); await fanout.run(); }
      expect(retryRows(sql).map((r) => r.target)).toEqual(["u_c"]);
      object("u_b").failing = false;
      send("u_a", "m3");
      await fanout.run();
      expect(object("u_b").seqs()).toEqual([3]);
    });
  });

  it("drops a watcher that answers it has no device connected", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, watchers, object, send } = setup(sql, ["u_a", "u_b"]);
      object("u_b").offline = true;
      send("u_a", "m1");
      await fanout.run();
      expect(watchers.isActive("u_b")).toBe(false);
      send("u_a", "m2");
      await fanout.run();
      expect(object("u_b").calls).toBe(1);
      expect(object("u_a").seqs()).toEqual([1, 2]);
    });
  });

  it("never waits longer than the deadline on one watcher: it goes to the retry table, the round finishes", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, send } = setup(sql, ["u_a", "u_b"], { deadlineMs: 100 });
      object("u_b").gate = new Promise(() => {}); // never answers
      send("u_a", "m1");
      await fanout.run();
      expect(fanout.deliveredUpTo).toBe(1);
      expect(object("u_a").seqs()).toEqual([1]);
      expect(retryRows(sql).map((r) => r.target)).toEqual(["u_b"]);
    });
  });

  it("after a restart, reads back from the log what was stored but not yet handed out", async () => {
    await inFreshChannel(async (sql) => {
      const first = setup(sql, ["u_a", "u_b"]);
      first.holdKicks(); // stored, acked, then the process died before the fan-out ran
      first.send("u_a", "m1");
      first.send("u_a", "m2");
      expect(storedFanoutSeq(sql)).toBe(0);
      const after = await restarted(sql);
      expect(after.object("u_b").seqs()).toEqual([1, 2]);
      expect(after.object("u_b").batches[0]!.messages[1]!.content).toEqual({ text: { text: "m2" } });
      expect(after.fanout.behind).toBe(false);
    });
  });

  it("leaves a sender out of a round holding only posts their object applied from the answer, not out of any other", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, send, sendOwn, holdKicks } = setup(sql, ["u_a", "u_b"]);
      holdKicks();
      sendOwn("u_a", "m1");
      sendOwn("u_a", "m2");
      await fanout.run();
      expect(object("u_a").calls).toBe(0);
      expect(object("u_b").seqs()).toEqual([1, 2]);
      // A round with someone else's post, or with a post sent another way (REST), goes to everyone.
      sendOwn("u_a", "m3");
      send("u_b", "m4");
      await fanout.run();
      send("u_a", "m5");
      await fanout.run();
      expect(object("u_a").seqs()).toEqual([3, 4, 5]);
      expect(object("u_b").seqs()).toEqual([1, 2, 3, 4, 5]);
      // After a restart the answers' marks are gone: the sender gets the repeats, which its object drops by seq.
      sendOwn("u_a", "m6");
      const after = await restarted(sql);
      expect(after.object("u_a").seqs()).toContain(6);
    });
  });

  it("stores its progress only with the guard alarm, and after a crash repeats the unsaved rounds in order", async () => {
    await inFreshChannel(async (sql) => {
      const first = setup(sql, ["u_a", "u_b"]);
      first.send("u_a", "m1");
      await first.fanout.run();
      first.fanout.onAlarm(); // stored: 1
      await first.fanout.run();
      first.send("u_a", "m2");
      first.send("u_a", "m3");
      await first.fanout.run();
      expect(first.object("u_b").seqs()).toEqual([1, 2, 3]);
      // The process dies before the next guard alarm: rounds 2–3 were delivered, not stored.
      expect(storedFanoutSeq(sql)).toBe(1);
      const after = await restarted(sql);
      // Repeated from the stored point, in order; the UserObject drops seqs it has written (sent_seq).
      expect(after.object("u_b").seqs()).toEqual([2, 3]);
      after.fanout.onAlarm();
      expect(storedFanoutSeq(sql)).toBe(3);
    });
  });

  it("gives a watcher removed in a batch that batch up to its removal, and nothing after", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, log, send, watchers, holdKicks } = setup(sql, ["u_a", "u_b", "u_gone"]);
      holdKicks();
      send("u_a", "m1");
      watchers.remove("u_gone");
      fanout.removedWatcher("u_gone");
      log.insert("u_a", "", null, "system", { system: { event: "member_removed", target_user_ids: ["u_gone"], actor_user_id: "u_a", text: "" } });
      send("u_a", "m3");
      await fanout.run();
      send("u_a", "m4");
      await fanout.run();
      const gone = object("u_gone");
      expect(object("u_b").seqs()).toEqual([1, 2, 3, 4]);
      expect(gone.seqs()).toEqual([1, 2]);
      expect(gone.batches[0]!.removed_user_ids).toEqual(["u_gone"]);
    });
  });

  it("logs a pump that stopped making progress and restarts it", async () => {
    await inFreshChannel(async (sql) => {
      const seen = memoryRecorder();
      const restore = recordMetricsWith(seen);
      try {
        const { fanout, object, send } = setup(sql, ["u_a", "u_b"]);
        let release!: () => void;
        object("u_b").gate = new Promise((r) => { release = r; });
        send("u_a", "m1"); // the pump hangs on b (a deadline would end it; here it is 10 s)
        await new Promise((r) => setTimeout(r, 10));
        object("u_b").gate = undefined;
        fanout.onAlarm(Date.now() + STALL_MS + 1);
        expect(seen.total("fanout.stalled")).toBe(1);
        await fanout.run();
        expect(fanout.deliveredUpTo).toBe(1);
        expect(object("u_b").seqs()).toEqual([1]);
        release(); // the old pump wakes up, sees it was replaced, and changes nothing
        await new Promise((r) => setTimeout(r, 10));
        expect(fanout.deliveredUpTo).toBe(1);
        fanout.onAlarm();
        expect(storedFanoutSeq(sql)).toBe(1);
      } finally {
        restore();
      }
    });
  });

  it("passes signals to the other watchers only, and none in channels above the signal size", async () => {
    await inFreshChannel(async (sql) => {
      const { fanout, object, waited } = setup(sql, ["u_a", "u_b", "u_c"]);
      const typing: ChannelSignal = { kind: "typing", channel_id: CHANNEL, user_id: "u_a", device_id: "d", is_typing: true };
      fanout.signal("u_a", typing);
      await Promise.all(waited);
      expect(["u_a", "u_b", "u_c", "u_offline"].map((id) => object(id).signals.length)).toEqual([0, 1, 1, 0]);
      const big = setup(sql, [], { restart: true, memberCount: SIGNAL_MAX_MEMBERS + 1 });
      big.fanout.signal("u_a", typing);
      expect(big.waited).toHaveLength(0);
    });
  });
});
