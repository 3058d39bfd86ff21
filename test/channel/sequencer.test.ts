/**
 * The sequencer on its own: dedup, rate limit, seq/HLC, the stored row ↔ message mapping and
 * history pages, against a real (fresh) channel database.
 */
import { describe, expect, it } from "vitest";
import { LIMITS } from "../../protocol/limits.js";
import { HLC_ZERO } from "../../durable-objects/channel/hlc.js";
import { SenderRateLimiter } from "../../durable-objects/channel/rate-limit.js";
import { Sequencer } from "../../durable-objects/channel/sequencer.js";
import type { ChatMessageData } from "../../durable-objects/channel/types.js";
import { inFreshChannel } from "../helpers/object-sql.js";

const CHANNEL = "c_g_00000000000000000000000000";
const text = (t: string) => ({ text: { text: t } });

function sequencer(sql: SqlStorage, limit = { perSecond: 0, burst: 1 }) {
  sql.exec("INSERT INTO channel (id, channel_id, type, name, created_by, created_at) VALUES (1, ?, 'group', 'T', 'u_a', 0)", CHANNEL);
  const appended: ChatMessageData[] = [];
  const limiter = new SenderRateLimiter(limit);
  const seq = new Sequencer(sql, limiter, (m) => appended.push(m));
  seq.start(CHANNEL, 0, HLC_ZERO);
  return { seq, appended, limiter };
}

const send = (userId: string, clientMsgId: string, t = clientMsgId) => ({ userId, deviceId: "d", clientMsgId, content: text(t) });

describe("Sequencer", () => {
  it("numbers messages 1, 2, 3 with rising HLCs and hands each to the fan-out as stored", async () => {
    await inFreshChannel((sql) => {
      const { seq, appended } = sequencer(sql);
      const acks = ["a", "b", "c"].map((k) => seq.append(send("u_a", k)));
      expect(acks.map((a) => a.ok && a.ack.seq)).toEqual([1, 2, 3]);
      expect(acks.map((a) => a.ok && a.ack.status)).toEqual(["stored", "stored", "stored"]);
      const hlcs = acks.map((a) => (a.ok ? a.ack.hlc : ""));
      expect([...hlcs].sort()).toEqual(hlcs);
      expect(new Set(hlcs).size).toBe(3);
      expect(appended.map((m) => [m.seq, m.client_msg_id, m.content.text?.text])).toEqual([[1, "a", "a"], [2, "b", "b"], [3, "c", "c"]]);
      expect(sql.exec<{ last_seq: number }>("SELECT last_seq FROM channel").one().last_seq).toBe(3);
      expect(seq.read(1, 10)).toEqual(appended);
    });
  });

  it("a batch: the same acks and rows as one by one, in one dedup read, N INSERTs and one channel-row write", async () => {
    await inFreshChannel((raw) => {
      const statements: string[] = [];
      const sql = { exec: (q: string, ...b: unknown[]) => { statements.push(q.trim().split(/\s+/).slice(0, 3).join(" ")); return raw.exec(q, ...b); } } as SqlStorage;
      const { seq, appended } = sequencer(sql);
      seq.append(send("u_a", "before"));
      statements.length = 0;
      const inputs = [send("u_a", "x"), send("u_a", "before", "retried"), send("u_a", "y"), send("u_a", "x", "again in the batch"), send("u_b", "x", "another sender")];
      const acks = seq.inBatch(inputs, () => inputs.map((i) => seq.append(i)));
      expect(acks.map((a) => a.ok && [a.ack.seq, a.ack.status])).toEqual([[2, "stored"], [1, "duplicate"], [3, "stored"], [2, "duplicate"], [4, "stored"]]);
      expect(appended.map((m) => [m.seq, m.sender_user_id, m.content.text?.text])).toEqual([[1, "u_a", "before"], [2, "u_a", "x"], [3, "u_a", "y"], [4, "u_b", "another sender"]]);
      // One dedup read per sender in the batch, one INSERT per new message, the channel row once at the end.
      expect(statements.filter((q) => q.startsWith("SELECT"))).toHaveLength(2);
      expect(statements.filter((q) => q.startsWith("INSERT INTO messages"))).toHaveLength(3);
      expect(statements.filter((q) => q.startsWith("UPDATE channel"))).toHaveLength(1);
      expect(statements.indexOf("UPDATE channel SET")).toBe(statements.length - 1);
      expect(raw.exec<{ last_seq: number; hlc_ms: number }>("SELECT last_seq FROM channel").one().last_seq).toBe(4);
      expect(seq.read(1, 10)).toEqual(appended);
      // After the batch, appends write the channel row again each time.
      seq.append(send("u_a", "after"));
      expect(raw.exec<{ last_seq: number }>("SELECT last_seq FROM channel").one().last_seq).toBe(5);
    });
  });

  it("a batch of one SEND per sender looks each up with the plain statement, retries included", async () => {
    await inFreshChannel((raw) => {
      const statements: string[] = [];
      const sql = { exec: (q: string, ...b: unknown[]) => { statements.push(q); return raw.exec(q, ...b); } } as SqlStorage;
      const { seq } = sequencer(sql);
      seq.append(send("u_a", "first"));
      statements.length = 0;
      const inputs = [send("u_a", "first", "retried"), send("u_b", "new")];
      const acks = seq.inBatch(inputs, () => inputs.map((i) => seq.append(i)));
      expect(acks.map((a) => a.ok && [a.ack.seq, a.ack.status])).toEqual([[1, "duplicate"], [2, "stored"]]);
      const reads = statements.filter((q) => q.trim().startsWith("SELECT"));
      expect(reads).toHaveLength(2);
      expect(reads.every((q) => !q.includes("json_each"))).toBe(true);
    });
  });

  it("a batch that throws half way still leaves the channel row at its last stored message", async () => {
    await inFreshChannel((sql) => {
      const { seq } = sequencer(sql);
      const inputs = [send("u_a", "a"), send("u_a", "b")];
      expect(() => seq.inBatch(inputs, () => {
        seq.append(inputs[0]!);
        throw new Error("a bug between two messages");
      })).toThrow("a bug");
      expect(sql.exec<{ last_seq: number }>("SELECT last_seq FROM channel").one().last_seq).toBe(1);
      const next = seq.append(inputs[1]!);
      expect(next.ok && next.ack.seq).toBe(2);
    });
  });

  it("reads a relay's backlog: from seq 1 at the lowest, up to the last stored, at most max and 100", async () => {
    await inFreshChannel((sql) => {
      const { seq } = sequencer(sql, { perSecond: 0, burst: 200 });
      for (let i = 0; i < 120; i++) seq.append(send("u_a", `m${i}`));
      const seqs = (from: number, to: number, max: number) => seq.backlog(from, to, max).map((m) => m.seq);
      expect(seqs(-5, 3, 10)).toEqual([1, 2, 3]);
      expect(seqs(118, 500, 10)).toEqual([118, 119, 120]);
      expect(seqs(5, 50, 2)).toEqual([5, 6]);
      expect(seqs(1, 120, 1000)).toHaveLength(100);
      expect(seqs(10, 9, 5)).toEqual([]);
      expect(seqs(3, 4, -1)).toEqual([]);
    });
  });

  it("answers a retry with the original ids, stores it once and hands nothing new to the fan-out", async () => {
    await inFreshChannel((sql) => {
      const { seq, appended } = sequencer(sql);
      const first = seq.append(send("u_a", "k", "once"));
      const again = seq.append({ ...send("u_a", "k", "changed text"), deviceId: "other" });
      expect(first.ok && again.ok).toBe(true);
      if (!first.ok || !again.ok) return;
      expect(again.ack).toEqual({ ...first.ack, status: "duplicate" });
      expect(appended).toHaveLength(1);
      expect(sql.exec<{ n: number }>("SELECT count(*) AS n FROM messages").one().n).toBe(1);
      // Another sender's equal key is another message.
      expect(seq.append(send("u_b", "k")).ok && seq.lastSeq).toBe(2);
    });
  });

  it("refuses a bad client_msg_id or content and stores nothing", async () => {
    await inFreshChannel((sql) => {
      const { seq, appended } = sequencer(sql);
      expect(seq.append(send("u_a", ""))).toMatchObject({ ok: false, code: "invalid_argument" });
      expect(seq.append(send("u_a", "x".repeat(LIMITS.maxClientMsgIdLength + 1)))).toMatchObject({ ok: false, code: "invalid_argument" });
      expect(seq.append({ ...send("u_a", "k"), content: { system: { event: "created" } } })).toMatchObject({ ok: false, code: "forbidden" });
      expect(seq.append({ ...send("u_a", "k"), content: text("x".repeat(LIMITS.maxContentBytes + 1)) })).toMatchObject({ ok: false, code: "content_too_large" });
      expect(appended).toHaveLength(0);
      expect(seq.lastSeq).toBe(0);
    });
  });

  it("limits a sender past the burst with a backoff hint, but still answers retries of stored messages", async () => {
    await inFreshChannel((sql) => {
      const { seq } = sequencer(sql, { perSecond: 1, burst: 2 });
      expect(seq.append(send("u_a", "1")).ok).toBe(true);
      expect(seq.append(send("u_a", "2")).ok).toBe(true);
      const limited = seq.append(send("u_a", "3"));
      expect(limited).toMatchObject({ ok: false, code: "rate_limited", retryable: true });
      expect(!limited.ok && limited.backoffHintMs).toBeGreaterThan(0);
      expect(seq.append(send("u_a", "1"))).toMatchObject({ ok: true, ack: { status: "duplicate", seq: 1 } });
      expect(seq.append(send("u_b", "1")).ok).toBe(true); // per sender
      expect(seq.limitChange("u_a")).toMatchObject({ code: "rate_limited" });
    });
  });

  it("resumes seq and HLC from the channel row after a restart", async () => {
    await inFreshChannel((sql) => {
      const { seq } = sequencer(sql);
      const last = seq.append(send("u_a", "before"));
      const row = sql.exec<{ last_seq: number; hlc_ms: number; hlc_logical: number }>("SELECT last_seq, hlc_ms, hlc_logical FROM channel").one();
      const after = new Sequencer(sql, new SenderRateLimiter({ perSecond: 0, burst: 1 }), () => {});
      after.start(CHANNEL, row.last_seq, { ms: row.hlc_ms, logical: row.hlc_logical });
      const next = after.append(send("u_a", "after"));
      expect(next.ok && last.ok && [next.ack.seq, next.ack.hlc > last.ack.hlc]).toEqual([2, true]);
    });
  });

  it("pages history both ways with cursors that meet without a gap or an overlap", async () => {
    await inFreshChannel((sql) => {
      const { seq } = sequencer(sql);
      for (let i = 1; i <= 12; i++) seq.append(send("u_a", `m${i}`));
      const newest = seq.history({ limit: 5 });
      expect(newest.ok && [newest.messages.map((m) => m.seq), newest.has_more, newest.next_cursor, newest.last_seq])
        .toEqual([[8, 9, 10, 11, 12], true, 8, 12]);
      const older = seq.history({ before: 8, limit: 5 });
      expect(older.ok && older.messages.map((m) => m.seq)).toEqual([3, 4, 5, 6, 7]);
      const oldest = seq.history({ before: 3, limit: 5 });
      expect(oldest.ok && [oldest.messages.map((m) => m.seq), oldest.has_more, oldest.next_cursor]).toEqual([[1, 2], false, 0]);
      const forward = seq.history({ after: 10, limit: 5 });
      expect(forward.ok && [forward.messages.map((m) => m.seq), forward.has_more, forward.next_cursor]).toEqual([[11, 12], false, 0]);
      const fromStart = seq.history({ after: 0, limit: 0 });
      expect(fromStart.ok && fromStart.messages.length).toBe(Math.min(12, LIMITS.defaultPageSize));
    });
  });

  it("maps a change row to a message that carries its target as it is now, and counts only others' live messages as unread", async () => {
    await inFreshChannel((sql) => {
      const { seq } = sequencer(sql);
      seq.append(send("u_a", "mine"));
      seq.append(send("u_b", "theirs"));
      seq.insert("u_b", "d", null, "system", { system: { event: "member_added", target_user_ids: ["u_c"], actor_user_id: "u_b", text: "b added c" } });
      sql.exec("UPDATE messages SET edited_at = 5, content = ? WHERE seq = 2", JSON.stringify(text("edited")));
      seq.insert("u_b", "d", null, "update", { update: { target_seq: 2, kind: "edited" } });
      const change = seq.read(4, 1)[0]!;
      expect(change.content.update).toMatchObject({ target_seq: 2, kind: "edited", target: { seq: 2, edited_at: 5, content: text("edited") } });
      expect(seq.unreadCount("u_a", 0)).toBe(1);
      expect(seq.unreadCount("u_b", 0)).toBe(1);
      sql.exec("UPDATE messages SET deleted = 1 WHERE seq = 2");
      expect(seq.unreadCount("u_a", 0)).toBe(0);
      expect(seq.row(2)!.deleted).toBe(1);
      expect(seq.toMessage(seq.row(2)!)).toMatchObject({ seq: 2, deleted: true, content: {} });
    });
  });
});
