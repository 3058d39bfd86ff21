import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { channelStub } from "../../shared/routing.js";
import type { ChannelObject } from "../../durable-objects/channel/ChannelObject.js";
import type { RateLimit } from "../../durable-objects/channel/rate-limit.js";
import { createGroup, register } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

const T = pb.FrameType;

/** The test config turns the limit off globally; these tests switch it on for one channel. */
async function limitChannel(channelId: string, limit: RateLimit): Promise<void> {
  await runInDurableObject(channelStub(env, channelId), (instance: ChannelObject) => {
    (instance as unknown as { limiter: { limit: RateLimit } }).limiter.limit = limit;
  });
}

describe("flood protection", () => {
  it("limits one sender in one channel, answers with a backoff hint, and stores nothing extra", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    // One token a second, and the 8 SENDs written at once: one after another at 10 tokens a
    // second, a busy machine refilled the bucket between them and limited nothing.
    await limitChannel(channel, { perSecond: 1, burst: 5 });
    const a = await onlineDevice(alice.access_token, "a");
    const b = await onlineDevice(bob.access_token, "b");
    const ids = Array.from({ length: 8 }, (_, i) =>
      a.send({ type: T.SEND, send: { channel_id: channel, client_msg_id: `flood-${i}`, content: { text: { text: `burst ${i}` } } } }));
    const results = await Promise.all(ids.map((id) => a.take((f) => f.request_id === id && (f.type === T.SEND_ACK || f.type === T.ERROR))));
    const acks = results.filter((f) => f.type === T.SEND_ACK);
    const limited = results.filter((f) => f.type === T.ERROR);
    expect(acks.length).toBeGreaterThanOrEqual(5);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.error).toMatchObject({ code: "rate_limited", retryable: true });
    expect(limited[0]!.error!.backoff_hint_ms).toBeGreaterThan(0);
    // Another sender in the same channel is not affected.
    expect((await b.sendText(channel, "my turn")).type).toBe(T.SEND_ACK);
    // Retried as a client does, after each hinted wait, the limited message goes through, once.
    // (One wait is not always enough: the burst's other refused SENDs, still arriving on a busy
    // machine, may take the token that came back. Every answer meanwhile is a hint, never a drop.)
    let retry = limited[0]!;
    for (let attempt = 0; attempt < 10 && retry.type === T.ERROR; attempt++) {
      expect(retry.error).toMatchObject({ code: "rate_limited", retryable: true });
      await new Promise((r) => setTimeout(r, retry.error!.backoff_hint_ms! + 50));
      retry = await a.sendText(channel, "burst again", limited[0]!.error!.client_msg_id!);
    }
    expect(retry.send_ack?.status).toBe("stored");
    const stored = await channelStub(env, channel).history(alice.user_id, { after: 0, limit: 200 });
    expect(stored.ok && stored.messages.length).toBe(1 + acks.length + 2);
    a.close(); b.close();
  });

  it("asks a connection with more than 64 SENDs in flight to slow down", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    const n = LIMITS.maxUnackedFrames + 40;
    for (let i = 0; i < n; i++) {
      a.send({ type: T.SEND, send: { channel_id: channel, client_msg_id: `w${i}`, content: { text: { text: `window ${i}` } } } });
    }
    const replies = [];
    while (replies.length < n) replies.push(await a.take((f) => f.type === T.SEND_ACK || f.type === T.ERROR, 10_000));
    const refused = replies.filter((f) => f.type === T.ERROR);
    // Whether the window fills depends on timing; when it does, the client is told, never dropped.
    for (const f of refused) expect(f.error).toMatchObject({ code: "rate_limited", retryable: true });
    if (refused.length > 0) expect(a.frames.some((f) => f.type === T.SLOWDOWN) || (await a.next(T.SLOWDOWN, 2000))).toBeTruthy();
    expect(replies.filter((f) => f.type === T.SEND_ACK).length + refused.length).toBe(n);
    a.close();
  });
});
