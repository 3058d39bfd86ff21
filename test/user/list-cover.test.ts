/**
 * The channel list under the cover of the user's live sockets (docs/decisions/035): while a device
 * is connected, deliveries change rows in memory and write nothing; the sockets' attachments say
 * the rows are ahead until the flush; an instance that comes back live without its sockets, or
 * with one saying so, writes the mark and re-syncs. ChannelList and LiveChannels over a fresh
 * object's real SQLite, with a host standing in for the sockets.
 */
import { describe, expect, it } from "vitest";
import { ChannelList, emptyRow, MARK_LINGER_MS, type ListCover } from "../../durable-objects/user/channel-list.js";
import { LiveChannels, type LiveHost } from "../../durable-objects/user/live-channels.js";
import type { ChatMessageData, DeliveryBatch } from "../../durable-objects/channel/types.js";
import { inFreshUser } from "../helpers/object-sql.js";

const ME = "u_me", BOB = "u_bob";

function msg(channelId: string, seq: number): ChatMessageData {
  return {
    channel_id: channelId, server_msg_id: "", hlc: seq.toString(16).padStart(16, "0"), seq, client_msg_id: `k${seq}`, sender_user_id: BOB,
    sender_device_id: "b1", server_ts: 1000 + seq, content: { text: { text: `#${seq}` } },
  };
}

function batch(channelId: string, ...seqs: number[]): DeliveryBatch {
  return {
    channel: { channel_id: channelId, type: "group", name: "", member_count: 2, member_user_ids: [ME, BOB], members: [], last_seq: 0, last_hlc: "" },
    messages: seqs.map((s) => msg(channelId, s)), removed_user_ids: [],
  };
}

/** Counts the statements that write, and what the table and the mark hold. */
function counted(sql: SqlStorage) {
  const writes: string[] = [];
  const wrapped = {
    exec: (query: string, ...args: unknown[]) => {
      if (/^\s*(INSERT|UPDATE|DELETE)/.test(query)) writes.push(query.trim().split(/\s+/).slice(0, 3).join(" "));
      return sql.exec(query, ...args);
    },
  } as SqlStorage;
  return {
    sql: wrapped, writes,
    mark: () => sql.exec<{ dirty: number }>("SELECT dirty FROM live_state").one().dirty,
    stored: (channelId: string) => sql.exec<{ last_seq: number }>("SELECT last_seq FROM channels WHERE channel_id = ?", channelId).toArray()[0]?.last_seq,
  };
}

/** A user object's list and live channels, the sockets reduced to what they say. */
function userObject(sql: SqlStorage, sockets: { count: number; ahead: boolean }) {
  let live: LiveChannels | undefined;
  const timers: number[] = [];
  const alarms: number[] = [];
  const cover: ListCover = { active: () => live?.wentLive === true, ahead: (a) => void (sockets.ahead = a), flushBy: (at) => void timers.push(at) };
  const list = new ChannelList(sql, (at) => alarms.push(at), cover);
  const host: LiveHost = {
    me: () => ME, openSockets: () => sockets.count,
    channel: () => { throw new Error("no channel calls expected"); },
    forget: () => {}, history: () => { throw new Error("no history expected"); },
    emit: () => {}, anyReceiving: () => true, channelUpdate: () => {}, contactsAdded: () => {}, wakeAt: () => {}, graceMs: 1000,
    pushWanted: () => false, pushMissed: () => {}, pushRead: () => {},
    socketsKeptRows: () => sockets.count > 0 && !sockets.ahead,
  };
  live = new LiveChannels(sql, list, host);
  return { list, live, timers, alarms };
}

/** A live user (one socket accepted) in channel c1, with bob. */
function liveUser(sql: SqlStorage, sockets: { count: number; ahead: boolean }) {
  const user = userObject(sql, sockets);
  user.list.write({ ...emptyRow("c1"), member_count: 2, members: JSON.stringify([ME, BOB]), subscribed: 1 });
  user.live.socketOpened();
  return user;
}

describe("the channel list under the live sockets' cover", () => {
  it("writes nothing for deliveries while a device is connected, after a quiet spell too; one flush when they stop", async () => {
    await inFreshUser((raw) => {
      const { sql, writes, mark, stored } = counted(raw);
      const sockets = { count: 1, ahead: false };
      const { list, live, timers, alarms } = liveUser(sql, sockets);
      writes.length = 0;
      // A post after a quiet spell, then more: none writes in the delivery's turn, not even the
      // alarm (a storage write): the flush is asked of a timer.
      const t0 = Date.now();
      live.deliver(batch("c1", 1));
      expect([writes, mark(), stored("c1"), sockets.ahead]).toEqual([[], 0, 0, true]);
      expect([timers.length, alarms]).toEqual([1, []]);
      live.deliver(batch("c1", 2, 3));
      expect(writes).toEqual([]);
      expect(list.row("c1")).toMatchObject({ last_seq: 3, unread_count: 3 });
      // The flush, once they stop: the row, and the sockets told the rows are written.
      list.flush(t0 + MARK_LINGER_MS);
      expect([writes, stored("c1"), sockets.ahead, mark()]).toEqual([["INSERT INTO channels"], 3, false, 0]);
    });
  });

  it("writes the rows with the epoch when the last device goes; offline, deliveries use the mark again", async () => {
    await inFreshUser((raw) => {
      const { sql, writes, mark, stored } = counted(raw);
      const sockets = { count: 1, ahead: false };
      const { live } = liveUser(sql, sockets);
      live.deliver(batch("c1", 1, 2));
      writes.length = 0;
      sockets.count = 0;
      expect(live.socketClosed(0)).toBe(true);
      expect(writes).toEqual(["INSERT INTO channels", "UPDATE live_state SET"]);
      expect([stored("c1"), mark(), live.wentLive]).toEqual([2, 0, false]);
    });
  });

  it("re-syncs on a wake that finds the epoch live and no socket (a crash), or a socket saying the rows were ahead", async () => {
    for (const wake of [{ count: 0, ahead: false }, { count: 2, ahead: true }]) {
      await inFreshUser((raw) => {
        const { sql, mark, stored } = counted(raw);
        const before = { count: 1, ahead: false };
        const first = liveUser(sql, before);
        first.live.deliver(batch("c1", 1, 2, 3));
        expect([before.ahead, stored("c1"), mark()]).toEqual([true, 0, 0]);
        // The instance goes away before its flush. What the next one finds:
        const sockets = { ...wake };
        const next = userObject(sql, sockets);
        expect(mark()).toBe(1); // written on wake, so the re-sync survives another restart
        expect(next.list.wokeDirty).toBe(true);
        expect(sockets.ahead).toBe(false); // the mark says it now
      });
    }
  });

  it("does not re-sync on a wake whose sockets say the rows were written (hibernation after the flush)", async () => {
    await inFreshUser((raw) => {
      const { sql, writes, mark } = counted(raw);
      const sockets = { count: 1, ahead: false };
      const first = liveUser(sql, sockets);
      first.live.deliver(batch("c1", 1));
      first.list.flush(Date.now() + MARK_LINGER_MS);
      writes.length = 0;
      const next = userObject(sql, sockets);
      expect([writes, mark(), next.list.wokeDirty, next.live.wentLive]).toEqual([[], 0, false, true]);
      expect(next.list.row("c1")?.last_seq).toBe(1);
    });
  });
});
