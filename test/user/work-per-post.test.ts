/**
 * The fan-out's promise, counted (docs/decisions/013): a post costs O(online devices), never
 * O(members). The RPCs the fan-out makes and the SQL writes the channel and user objects make
 * (durable-objects/counted-sql.ts) are counted through shared/metrics.ts for one post, in a group
 * whose members are all offline but two, with 0 and with 40 offline members: the counts match.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { channelStub, userStub } from "../../shared/routing.js";
import { MARK_LINGER_MS } from "../../durable-objects/user/channel-list.js";
import { createGroup, register, type TestUser } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

const T = pb.FrameType;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function noticesDone(channelId: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const pending = await runInDurableObject(channelStub(env, channelId), (_o, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM members WHERE notified = 0").one().n);
    if (pending === 0) return;
    await sleep(25);
  }
  throw new Error("notices still pending");
}

/** Positive marker: each user's list row has `seq` on disk and no unflushed change is pending. */
async function listsFlushed(users: TestUser[], channelId: string, seq: number): Promise<void> {
  for (const u of users) {
    for (let i = 0; ; i++) {
      const done = await runInDurableObject(userStub(env, u.user_id), (_o, state) => {
        const dirty = state.storage.sql.exec<{ dirty: number }>("SELECT dirty FROM live_state WHERE id = 1").one().dirty;
        const row = state.storage.sql.exec<{ last_seq: number }>("SELECT last_seq FROM channels WHERE channel_id = ?", channelId).toArray()[0];
        return dirty === 0 && (row?.last_seq ?? 0) >= seq;
      });
      if (done) break;
      if (i > 1200) throw new Error(`${u.username}'s list not flushed up to ${seq}`);
      await sleep(25);
    }
  }
}

/** Work for one post in a group of alice and bob (both connected) and `offline` members who never connect. */
async function workForOnePost(offline: number) {
  const alice = await register("alice"), bob = await register("bob");
  const others = await Promise.all(Array.from({ length: offline }, () => register("offline")));
  const channel = await createGroup(alice, [bob, ...others]);
  await noticesDone(channel);
  const a = await onlineDevice(alice.access_token, "a");
  const b = await onlineDevice(bob.access_token, "b");
  // A first post warms both lists; then a quiet spell passes (MARK_LINGER_MS since the last change),
  // so the counted post is one that comes now and then. Both users are live: their sockets cover
  // the rows in memory (decision 035), and each list writes its row once, at the flush.
  const warm = await a.sendText(channel, "warm-up");
  await b.messages(1);
  await listsFlushed([alice, bob], channel, Number(warm.send_ack?.seq));
  await sleep(MARK_LINGER_MS + 250);
  const seen = memoryRecorder();
  const restore = recordMetricsWith(seen);
  try {
    const counted = await a.sendText(channel, "counted");
    expect(counted.type).toBe(T.SEND_ACK);
    await b.messages(1);
    await listsFlushed([alice, bob], channel, Number(counted.send_ack?.seq)); // the coalesced list writes are done
  } finally {
    restore();
  }
  a.close(); b.close();
  const byTable: Record<string, number> = {};
  for (const p of seen.points) if (p.name === "sql.write") byTable[`${p.tags?.object}.${p.tags?.table}`] = (byTable[`${p.tags?.object}.${p.tags?.table}`] ?? 0) + p.n;
  console.log(`work per post with ${offline} offline members: writes by table`, JSON.stringify(byTable));
  return {
    rpcs: seen.total("fanout.rpc"),
    channelWrites: seen.total("sql.write", { object: "channel" }),
    userWrites: seen.total("sql.write", { object: "user" }),
  };
}

describe("work per post", () => {
  it("does not grow with offline members: the same RPCs and writes with 0 and with 40 of them", async () => {
    const none = await workForOnePost(0);
    const many = await workForOnePost(40);
    console.log("work per post (0 and 40 offline members):", JSON.stringify({ none, many }));
    // One delivery to bob's object, none per offline member, and none to alice's: her list takes
    // her own post from the append's answer (decision 033).
    expect(none.rpcs).toBe(1);
    expect(many).toEqual(none);
    // The channel: the message, its row, the sender's read cursor, and fanout_seq if the guard
    // alarm stores it inside the window (decision 032). Users: the list row, written by the flush
    // MARK_LINGER_MS later and nothing in the delivery's turn (decision 035), for each of the two
    // (alice's from her append's answer; what a delivery writes: test/user/list-cover.test.ts).
    expect(none.channelWrites).toBeLessThanOrEqual(4);
    expect(none.userWrites).toBe(2);
  }, 120_000);
});
