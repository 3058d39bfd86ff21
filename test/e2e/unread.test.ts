/**
 * Unread counts in the SDK's channel list, end to end (decision 013, "exact unread"): a real
 * `wrangler dev`, one user with two devices and another user, real WebSockets through the
 * project's SDK. A user's own messages are never unread for them, on the device that sent them
 * and on their other devices; the other member's count goes up by one per message. The SDK's
 * numbers must equal the server's (`GET /v1/channels`), live and after RESUME.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EdgechatClient } from "../../client/index.js";
import { startDevServer, type DevServer } from "../support/dev-server.js";
import { PASSWORD, sdkClient } from "../support/sdk-clients.js";
import { until } from "../support/until.js";

let server: DevServer;
beforeAll(async () => { server = await startDevServer(); });
afterAll(async () => { await server?.stop(); });

const client = (username: string, deviceId: string) => sdkClient(server, username, deviceId);

/** The SDK's row for `channelId`: [last_seq, last_read_seq, unread_count]. */
function sdkRow(c: EdgechatClient, channelId: string): [number, number, number] | undefined {
  const s = c.channelStates().find((x) => x.channel_id === channelId);
  return s ? [s.last_seq, s.last_read_seq, s.unread_count] : undefined;
}

/** The server's count for this user (REST). */
async function serverUnread(c: EdgechatClient, channelId: string): Promise<number | undefined> {
  const list = await c.channels.list();
  return list.find((x) => x.channel_id === channelId)?.unread_count;
}

describe("unread counts in the SDK's channel list", () => {
  const [alice, bob] = ["alice", "bob"].map((n) => `${n}_${Math.random().toString(36).slice(2, 7)}`) as [string, string];
  let phone: EdgechatClient, laptop: EdgechatClient, bobs: EdgechatClient;
  let channelId = "";

  afterAll(() => { for (const c of [phone, laptop, bobs]) c?.disconnect(); });

  it("stay 0 on both of the sender's devices and count 1 for the other member, live and after RESUME", async () => {
    phone = client(alice, "alice-phone");
    bobs = client(bob, "bob-phone");
    await phone.register({ username: alice, password: PASSWORD });
    await bobs.register({ username: bob, password: PASSWORD });
    laptop = client(alice, "alice-laptop");
    const group = await phone.channels.create({ type: "group", name: "Unread", members: [bob] });
    channelId = group.channel_id;
    await Promise.all([phone, laptop, bobs].map((c) => c.connect()));
    await until("the group in every list", () => [phone, laptop, bobs].every((c) => sdkRow(c, channelId) !== undefined));

    // bob writes twice: alice has 2 unread on both devices; alice reads them on her phone.
    await bobs.send(channelId, "one");
    const two = await bobs.send(channelId, "two");
    await until("bob's messages on alice's devices", () => [phone, laptop].every((c) => sdkRow(c, channelId)![0] >= two.seq));
    for (const c of [phone, laptop]) expect(sdkRow(c, channelId)![2]).toBe(2);
    await phone.markRead(channelId, two.seq);
    await until("the read on alice's laptop", () => sdkRow(laptop, channelId)![2] === 0);

    // alice writes from her phone.
    const mine = await phone.send(channelId, "from alice's phone");
    await until("alice's message everywhere", () => [phone, laptop, bobs].every((c) => sdkRow(c, channelId)![0] >= mine.seq));
    expect(sdkRow(phone, channelId)).toEqual([mine.seq, mine.seq, 0]);
    expect(sdkRow(laptop, channelId)?.[2]).toBe(0);
    expect(sdkRow(bobs, channelId)?.[2]).toBe(1);
    expect(await serverUnread(phone, channelId)).toBe(0);
    expect(await serverUnread(bobs, channelId)).toBe(1);

    // bob writes while alice has unread 0, then alice answers without reading first: writing
    // means having read up to there (the server moves her cursor), so her count is 0 again.
    const three = await bobs.send(channelId, "three");
    await until("bob's third on alice's devices", () => [phone, laptop].every((c) => sdkRow(c, channelId)![0] >= three.seq));
    for (const c of [phone, laptop]) expect(sdkRow(c, channelId)![2]).toBe(1);
    const answer = await phone.send(channelId, "answer without reading");
    await until("alice's answer everywhere", () => [phone, laptop, bobs].every((c) => sdkRow(c, channelId)![0] >= answer.seq));
    expect(await serverUnread(phone, channelId)).toBe(0);
    expect(sdkRow(phone, channelId)).toEqual([answer.seq, answer.seq, 0]);
    expect(sdkRow(laptop, channelId)).toEqual([answer.seq, answer.seq, 0]);
    // bob wrote "three" after alice's first: only her answer is unread for him.
    expect(await serverUnread(bobs, channelId)).toBe(1);
    expect(sdkRow(bobs, channelId)).toEqual([answer.seq, three.seq, 1]);

    // RESUME: the laptop and bob reconnect after alice wrote once more from her phone.
    laptop.disconnect();
    bobs.disconnect();
    const away = await phone.send(channelId, "while you were away");
    await Promise.all([laptop.connect(), bobs.connect()]);
    await until("the last message after RESUME", () => [laptop, bobs].every((c) => (sdkRow(c, channelId)?.[0] ?? 0) >= away.seq));
    expect(sdkRow(phone, channelId)).toEqual([away.seq, away.seq, 0]);
    expect(sdkRow(laptop, channelId)).toEqual([away.seq, away.seq, 0]);
    expect(sdkRow(bobs, channelId)).toEqual([away.seq, three.seq, 2]);
    expect(await serverUnread(laptop, channelId)).toBe(0);
    expect(await serverUnread(bobs, channelId)).toBe(2);
  }, 180_000);
});
