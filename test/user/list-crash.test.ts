/**
 * The channel list is written coalesced, not per message (docs/decisions/013). A crash between a
 * delivery and the flush must lose nothing. While the user is live nothing durable is written for
 * a delivery (decision 035): the epoch says a device was connected, and a woken object that finds
 * it so with no socket left (a crash drops them all) writes the "dirty" mark and re-reads its
 * rows from the channels before it answers RESUME or lists channels. Reproduced with the flush
 * held back in the user's instance, then abortAllDurableObjects() (every object restarts,
 * storage kept, sockets gone), like a crash.
 */
import { abortAllDurableObjects, env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { userStub } from "../../shared/routing.js";
import type { UserObject } from "../../durable-objects/user/UserObject.js";
import { call, createGroup, register } from "../helpers/api.js";
import { helloDevice, onlineDevice } from "../helpers/socket.js";

const T = pb.FrameType;

describe("the channel list after a crash between delivery and flush", () => {
  it("RESUME and the REST list are exact: the woken object re-reads its rows", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob], "Crash");
    const a = await onlineDevice(alice.access_token, "a");
    const b = await onlineDevice(bob.access_token, "b");
    // Bob's object will not flush: his rows change in memory only, covered by his socket.
    await runInDurableObject(userStub(env, bob.user_id), (instance: UserObject) => {
      (instance as unknown as { channels: { flush(): number } }).channels.flush = () => 0;
    });
    for (let i = 0; i < 3; i++) expect((await a.sendText(channel, `m${i}`)).type).toBe(T.SEND_ACK);
    expect((await b.messages(3)).map((m) => Number(m.seq))).toEqual([2, 3, 4]);
    const durable = await runInDurableObject(userStub(env, bob.user_id), (_o, state) => ({
      row: state.storage.sql.exec<{ last_seq: number; unread_count: number }>("SELECT last_seq, unread_count FROM channels WHERE channel_id = ?", channel).toArray()[0],
      live: state.storage.sql.exec<{ dirty: number; epoch: number }>("SELECT dirty, epoch FROM live_state").one(),
    }));
    // Nothing was written for the deliveries: no mark, the row behind; only the epoch says live.
    expect(durable.live.dirty).toBe(0);
    expect(durable.live.epoch % 2).toBe(1);
    expect(durable.row?.last_seq ?? 0).toBeLessThan(4);
    a.close();

    // The crash: bob's socket goes with the instance, no close handler runs.
    await abortAllDurableObjects();
    b.close();

    const list = await call<{ channels: { channel_id: string; last_seq: number; unread_count: number }[] }>("GET", "/v1/channels", { token: bob.access_token });
    expect(list.body.channels.find((c) => c.channel_id === channel)).toMatchObject({ last_seq: 4, unread_count: 3 });
    const again = await helloDevice(bob.access_token, "b");
    const { messages, resumed } = await again.resume([{ channel_id: channel, last_seq: 2 }]);
    expect(messages.map((m) => Number(m.seq))).toEqual([3, 4]);
    expect(resumed.resumed?.channels?.find((c) => c.channel_id === channel)).toMatchObject({ last_seq: 4, unread_count: 3 });
    // And the list is on disk again, the mark gone.
    let after = { dirty: 1, last_seq: 0 };
    for (let i = 0; i < 200 && after.dirty === 1; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = await runInDurableObject(userStub(env, bob.user_id), (_o, state) => ({
        dirty: state.storage.sql.exec<{ dirty: number }>("SELECT dirty FROM live_state").one().dirty,
        last_seq: state.storage.sql.exec<{ last_seq: number }>("SELECT last_seq FROM channels WHERE channel_id = ?", channel).one().last_seq,
      }));
    }
    expect(after).toEqual({ dirty: 0, last_seq: 4 });
    again.close();
  }, 60_000);
});
