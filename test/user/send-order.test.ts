import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { channelStub } from "../../shared/routing.js";
import { createGroup, register } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

const T = pb.FrameType;
const send = (channel_id: string, i: number, send_seq: number) =>
  ({ type: T.SEND, send: { channel_id, client_msg_id: `s${i}`, send_seq, content: { text: { text: `#${i}` } } } });

describe("SEND order per connection (send_seq)", () => {
  it("stores SENDs in send_seq order even when they are handed over in another order", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    // Written 3, 1, 2: stored 1, 2, 3.
    for (const i of [3, 1, 2]) a.send(send(channel, i, i));
    const acks = await Promise.all([1, 2, 3].map(() => a.take((f) => f.type === T.SEND_ACK)));
    const seqByText = new Map(acks.map((f) => [f.send_ack!.client_msg_id, f.send_ack!.seq]));
    expect([seqByText.get("s1"), seqByText.get("s2"), seqByText.get("s3")]).toEqual([2, 3, 4]);
    a.close();
  });

  it("still stores SENDs held behind a send_seq that never came once the socket closes", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    a.send(send(channel, 2, 2)); // 1 never comes
    // A history pull sent after it is the marker: by its answer the SEND has been handed over,
    // and it is held: neither acknowledged nor stored.
    const marker = a.send({ type: T.PULL_HISTORY, pull_history: { channel_id: channel, after_seq: 0 } });
    const page = await a.take((f) => f.request_id === marker);
    expect(page.history_page?.messages?.map((m) => m.client_msg_id ?? "")).not.toContain("s2");
    expect(a.frames.filter((f) => f.type === T.SEND_ACK)).toHaveLength(0);
    a.close();
    const deadline = Date.now() + 5000;
    for (;;) {
      const page = await channelStub(env, channel).history(alice.user_id, { after: 0 });
      if (page.ok && page.messages.some((m) => m.client_msg_id === "s2")) break;
      if (Date.now() > deadline) throw new Error("the held SEND was never stored");
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  it("does not hold the next SEND behind one refused before ordering (its send_seq is used up)", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    a.send({ type: T.SEND, request_id: 1, send: { channel_id: "not-a-channel", client_msg_id: "s1", send_seq: 1, content: { text: { text: "#1" } } } });
    a.send({ ...send(channel, 2, 2), request_id: 2 });
    expect((await a.take((f) => f.request_id === 1, 10_000)).error).toMatchObject({ code: "invalid_argument" });
    expect((await a.take((f) => f.request_id === 2, 10_000)).type).toBe(T.SEND_ACK);
    a.close();
  });
});
