/**
 * The channel list on its own: the fold of delivered messages (unread as the channel counts it),
 * snapshots from the channel, and the coalesced flush with its durable "dirty" mark.
 */
import { describe, expect, it } from "vitest";
import { applySnapshot, ChannelList, emptyRow, FLUSH_MAX_MS, foldMessages, MARK_LINGER_MS, memberIds, type ChannelRow } from "../../durable-objects/user/channel-list.js";
import type { ChatMessageData, MemberChannelState } from "../../durable-objects/channel/types.js";
import { inFreshUser } from "../helpers/object-sql.js";

const ME = "u_me", BOB = "u_bob";

function msg(seq: number, sender: string, content: ChatMessageData["content"] = { text: { text: `#${seq}` } }): ChatMessageData {
  return {
    channel_id: "c1", server_msg_id: "", hlc: seq.toString(16).padStart(16, "0"), seq, client_msg_id: "", sender_user_id: sender,
    sender_device_id: "d", server_ts: 1000 + seq, content,
  };
}

const notice = (event: string, target: string) => ({ system: { event, target_user_ids: [target], actor_user_id: BOB, text: "" } });
const row = (over: Partial<ChannelRow> = {}): ChannelRow => ({ ...emptyRow("c1"), ...over });

function snapshot(over: Partial<MemberChannelState> = {}): MemberChannelState {
  return {
    channel_id: "c1", type: "group", name: "Team", member_count: 2, member_user_ids: [ME, BOB], last_seq: 0, last_activity_hlc: "",
    last_activity_at: 0, last_read_seq: 0, unread_count: 0, joined_seq: 1, member: true, ...over,
  };
}

describe("foldMessages", () => {
  it("counts others' messages as unread, not notices, and resets the count when the user writes", () => {
    const r = row();
    expect(foldMessages(r, [msg(1, BOB, notice("created", ME)), msg(2, BOB), msg(3, BOB)], ME)).toEqual({ membershipChanged: false, left: false, gap: false });
    expect(r).toMatchObject({ last_seq: 3, unread_count: 2, last_read_seq: 0, last_activity_at: 1003 });
    foldMessages(r, [msg(4, ME)], ME);
    expect(r).toMatchObject({ unread_count: 0, last_read_seq: 4 });
    foldMessages(r, [msg(5, BOB)], ME);
    expect(r.unread_count).toBe(1);
  });

  it("counts a batch delivered twice once, and reports a hole", () => {
    const r = row();
    foldMessages(r, [msg(1, BOB), msg(2, BOB)], ME);
    foldMessages(r, [msg(1, BOB), msg(2, BOB)], ME);
    expect(foldMessages(r, [msg(2, BOB), msg(3, BOB)], ME).gap).toBe(false);
    expect(r).toMatchObject({ last_seq: 3, unread_count: 3 });
    expect(foldMessages(r, [msg(6, BOB)], ME).gap).toBe(true);
  });

  it("takes an unread message deleted for everyone off the count; an edit is not news", () => {
    const r = row();
    foldMessages(r, [msg(1, BOB), msg(2, BOB)], ME);
    foldMessages(r, [msg(3, BOB, { update: { target_seq: 2, kind: "edited", target: msg(2, BOB) } })], ME);
    expect(r).toMatchObject({ last_seq: 3, unread_count: 2, last_activity_at: 1002 });
    foldMessages(r, [msg(4, BOB, { update: { target_seq: 1, kind: "deleted", target: msg(1, BOB) } })], ME);
    expect(r.unread_count).toBe(1);
  });

  it("marks the channel as left when a notice removes the user, and back when one adds them", () => {
    const r = row({ last_seq: 1 });
    expect(foldMessages(r, [msg(2, BOB, notice("member_removed", ME))], ME)).toMatchObject({ membershipChanged: true, left: true });
    expect(foldMessages(r, [msg(3, BOB, notice("member_added", ME))], ME)).toMatchObject({ membershipChanged: true, left: false });
    expect(foldMessages(r, [msg(4, BOB, notice("member_removed", "u_carol"))], ME).left).toBe(false);
  });

  it("counts a broadcast channel as last seq minus the read cursor", () => {
    const r = row({ type: "broadcast", last_read_seq: 2, last_seq: 2 });
    foldMessages(r, [msg(3, BOB), msg(4, BOB, notice("x", BOB)), msg(5, BOB)], ME);
    expect(r.unread_count).toBe(3);
  });
});

describe("applySnapshot", () => {
  it("takes the channel's exact numbers unless the row already knows later ones", () => {
    const r = row({ last_seq: 5, unread_count: 9, last_read_seq: 1 });
    applySnapshot(r, snapshot({ last_seq: 7, unread_count: 2, last_read_seq: 4, last_activity_at: 77 }));
    expect(r).toMatchObject({ last_seq: 7, unread_count: 2, last_read_seq: 4, last_activity_at: 77, left: 0, members: JSON.stringify([ME, BOB]) });
    applySnapshot(r, snapshot({ last_seq: 6, unread_count: 0, member: false }));
    expect(r).toMatchObject({ last_seq: 7, unread_count: 2, left: 1 });
  });
});

describe("ChannelList", () => {
  it("writes a change after a quiet spell through; keeps the next ones in memory behind one mark, flushed with it in one go", async () => {
    await inFreshUser((sql) => {
      const asked: number[] = [];
      const list = new ChannelList(sql, (at) => asked.push(at));
      const mark = () => sql.exec<{ dirty: number }>("SELECT dirty FROM live_state").one().dirty;
      const stored = () => sql.exec<{ last_seq: number }>("SELECT last_seq FROM channels WHERE channel_id = 'c1'").toArray()[0]?.last_seq;
      // Nothing changed before: the row is written at once, with no mark and no flush to come.
      list.put(row({ last_seq: 1 }), 1000);
      expect([mark(), stored(), list.flushDue(), asked]).toEqual([0, 1, undefined, []]);
      // More within MARK_LINGER_MS: in memory, behind the mark; the host is asked for one alarm.
      list.put(row({ last_seq: 2 }), 1200);
      expect(asked).toEqual([1200 + MARK_LINGER_MS]);
      list.put(row({ last_seq: 3 }), 1300);
      expect([mark(), stored(), list.row("c1")?.last_seq]).toEqual([1, 1, 3]);
      expect(asked).toEqual([1200 + MARK_LINGER_MS]);
      // The flush waits for MARK_LINGER_MS without a change: the alarm asked for fires early.
      expect(list.flushDue()).toBe(1300 + MARK_LINGER_MS);
      // Then the rows go to the table and the mark goes with them.
      expect(list.flush(1300 + MARK_LINGER_MS)).toBe(1);
      expect([mark(), stored(), list.flushDue()]).toEqual([0, 3, undefined]);
      // Quiet again: the next change is written through.
      list.put(row({ last_seq: 4 }), 1300 + 2 * MARK_LINGER_MS);
      expect([mark(), stored(), list.flushDue()]).toEqual([0, 4, undefined]);
    });
  });

  /** A list whose mark writes are counted, and what the table and the mark hold. */
  function countedList(sql: SqlStorage) {
    const counts = { mark: 0, rows: 0 };
    const counted = {
      exec: (query: string, ...args: unknown[]) => {
        if (query.startsWith("UPDATE live_state")) counts.mark++;
        if (query.startsWith("INSERT INTO channels")) counts.rows++;
        return sql.exec(query, ...args);
      },
    } as SqlStorage;
    return {
      list: new ChannelList(counted),
      counts,
      mark: () => sql.exec<{ dirty: number }>("SELECT dirty FROM live_state").one().dirty,
      stored: () => sql.exec<{ last_seq: number }>("SELECT last_seq FROM channels WHERE channel_id = 'c1'").toArray()[0]?.last_seq,
    };
  }

  it("keeps a burst of deliveries in memory: they write nothing until they stop, then rows and mark go in one flush", async () => {
    await inFreshUser((sql) => {
      const { list, counts, mark, stored } = countedList(sql);
      let t = 10_000;
      list.put(row({ last_seq: 1 }), t); // written through
      // A delivery every 3 s, the alarm firing whenever it was due: nothing is ever due.
      let alarms = 0;
      for (let seq = 2; seq <= 10; seq++) {
        const due = list.flushDue();
        if (due !== undefined && due <= t) {
          list.flush(t);
          alarms++;
        }
        list.put(row({ last_seq: seq }), t);
        t += 3_000;
        expect(mark()).toBe(1);
      }
      expect([alarms, stored(), counts]).toEqual([0, 1, { mark: 1, rows: 1 }]);
      // The burst ends: MARK_LINGER_MS after the last change, one flush writes the row and clears the mark.
      const last = t - 3_000;
      expect(list.flushDue()).toBe(last + MARK_LINGER_MS);
      expect(list.flush(last + MARK_LINGER_MS)).toBe(1);
      expect([stored(), mark(), list.flushDue(), new ChannelList(sql).wokeDirty]).toEqual([10, 0, undefined, false]);
      expect(counts).toEqual({ mark: 2, rows: 2 }); // set once, cleared once, one flush, for ten deliveries
    });
  });

  it("still writes the rows every FLUSH_MAX_MS while deliveries never stop, keeping the mark", async () => {
    await inFreshUser((sql) => {
      const { list, counts, mark, stored } = countedList(sql);
      let t = 10_000;
      list.put(row({ last_seq: 1 }), t); // written through
      t += 1_000;
      list.put(row({ last_seq: 2 }), t);
      const first = t;
      let flushes = 0;
      for (let seq = 3; t < first + 2 * FLUSH_MAX_MS; seq++) {
        t += 1_000;
        const due = list.flushDue()!;
        if (due <= t) {
          list.flush(due);
          flushes++;
          expect(mark()).toBe(1); // a change came within MARK_LINGER_MS: more are likely
        }
        list.put(row({ last_seq: seq }), t);
      }
      expect(flushes).toBe(2);
      expect(stored()).toBeGreaterThanOrEqual(FLUSH_MAX_MS / 1_000);
      expect(counts.mark).toBe(1);
      // They stop: the mark goes MARK_LINGER_MS after the last one.
      list.flush(list.flushDue()!);
      expect([mark(), counts.mark]).toEqual([0, 2]);
    });
  });

  it("says on wake that rows may be behind when the mark was left by a crash", async () => {
    await inFreshUser((sql) => {
      const list = new ChannelList(sql);
      list.put(row({ last_seq: 2 }), 1000); // written through
      list.put(row({ last_seq: 3 }), 1100); // in memory, behind the mark
      // The process dies here: the mark is on disk, the newest row is not.
      const woken = new ChannelList(sql);
      expect(woken.wokeDirty).toBe(true);
      expect(woken.row("c1")?.last_seq).toBe(2);
      woken.flush();
      expect(new ChannelList(sql).wokeDirty).toBe(false);
    });
  });

  it("lists current channels by activity, with member ids and no names; reads lists of profiles written before", async () => {
    await inFreshUser((sql) => {
      const list = new ChannelList(sql);
      list.write(row({ channel_id: "c1", type: "dm", name: "ignored", members: JSON.stringify([{ user_id: ME, username: "me", display_name: "Me" }, { user_id: BOB }]), last_activity_at: 5 }));
      list.write(row({ channel_id: "c2", name: "Team", members: JSON.stringify([ME, "u_carol"]), last_activity_at: 9 }));
      list.write(row({ channel_id: "c3", left: 1 }));
      expect(list.states().map((s) => [s.channel_id, s.name, s.member_user_ids, s.members])).toEqual([
        ["c2", "Team", [ME, "u_carol"], []],
        ["c1", "", [ME, BOB], []],
      ]);
      expect(list.contacts(ME, 10)).toEqual(["u_carol", BOB]);
      expect(memberIds("not json")).toEqual([]);
      expect(list.ids()).toEqual(new Set(["c1", "c2", "c3"]));
    });
  });
});
