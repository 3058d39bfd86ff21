/**
 * Push for connected devices that do not confirm (issue 10 item 2): a message written to a
 * connected device that sends no DELIVER_ACK within PUSH_ACK_DEADLINE_MS (5 s here) is pushed
 * once, through the real queue and consumer; one the device acks is not.
 */
import { describe, expect, inject, it } from "vitest";
import type { PushSubscriptionInput } from "../../protocol/push.js";
import { pushesTo, until } from "../support/push-records.js";
import { call, createDm, createGroup, register } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";
import { pb } from "../../protocol/codec.js";

const fakeUrl = inject("fakePushUrl");

describe("push for unacked deliveries", () => {
  it("a connected device that does not ack in time gets one push; one that acks gets none", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const name = `phone${alice.user_id.slice(-8)}`;
    const sub = (await (await fetch(`${fakeUrl}/__subscribe`, { method: "POST", body: JSON.stringify({ name }) })).json()) as PushSubscriptionInput;
    expect((await call("POST", "/v1/devices", { token: alice.access_token, body: { device_id: "phone", push: sub } })).status).toBe(201);
    const acked = await createGroup(bob, [alice], "Acked");
    const dm = await createDm(bob, alice);
    const laptop = await onlineDevice(alice.access_token, "laptop");
    const b = await onlineDevice(bob.access_token, "b");

    // Acked in time: no push.
    await b.sendText(acked, "seen at once");
    const seen = (await laptop.next(pb.FrameType.DELIVER, 10_000)).deliver!.messages![0]!;
    laptop.send({ type: pb.FrameType.DELIVER_ACK, deliver_ack: { channel_id: acked, seq: seen.seq } });
    // Not acked: pushed once the deadline passes, though the laptop is still connected.
    await b.sendText(dm, "are you asleep?");
    await laptop.next(pb.FrameType.DELIVER, 10_000);

    const pushed = await until("the unacked push", async () => (await pushesTo(fakeUrl, name)).find((r) => r.payload?.channel_id === dm), 40_000, 200);
    expect(pushed).toMatchObject({ status: 201, payload: { type: "message", channel_type: "dm", count: 1, preview: "are you asleep?" } });
    // The acked message's deadline came first: had it been pushed, it would be here by now.
    const all = await pushesTo(fakeUrl, name);
    expect(all.filter((r) => r.payload?.channel_id === acked)).toEqual([]);
    expect(all.filter((r) => r.payload?.channel_id === dm)).toHaveLength(1);
    expect(laptop.closed).toBeUndefined();
    laptop.close();
    b.close();
  }, 60_000);
});
