/**
 * Who counts as offline, as far as the delivery path decides it today: a user with no open socket
 * gets a push through the real queue and consumer (the loopback fake push service checks and
 * decrypts it); a user with a connected device gets none; reading sends a clear.
 */
import { describe, expect, inject, it } from "vitest";
import type { PushSubscriptionInput } from "../../protocol/push.js";
import { pushesTo, until } from "../support/push-records.js";
import { call, createDm, createGroup, register } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";
import { pb } from "../../protocol/codec.js";

const fakeUrl = inject("fakePushUrl");

describe("offline push (delivery path → queue → provider)", () => {
  it("pushes to a user with no connected device, not to one with a device online, and clears on read", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const name = `phone${alice.user_id.slice(-8)}`;
    const sub = (await (await fetch(`${fakeUrl}/__subscribe`, { method: "POST", body: JSON.stringify({ name }) })).json()) as PushSubscriptionInput;
    expect((await call("POST", "/v1/devices", { token: alice.access_token, body: { device_id: "phone", push: sub } })).status).toBe(201);
    const dm1 = await createDm(bob, alice);
    const side = await createGroup(bob, [alice], "Side");
    const b = await onlineDevice(bob.access_token, "b");

    // Offline: the first message is pushed at once, with sender and preview.
    await b.sendText(dm1, "are you there?");
    const first = await until("the first push", async () => (await pushesTo(fakeUrl, name)).find((r) => r.payload?.channel_id === dm1));
    expect(first).toMatchObject({ status: 201, payload: { type: "message", channel_type: "dm", count: 1, preview: "are you there?", sender_user_id: bob.user_id, sender_name: bob.display_name } });

    // Online: a message that reached a connected device is not pushed.
    const laptop = await onlineDevice(alice.access_token, "laptop");
    await b.sendText(side, "while you are here");
    await laptop.next(pb.FrameType.DELIVER, 10_000);
    laptop.close();
    await laptop.waitClosed();
    // Offline again: the marker that everything before it was decided.
    await b.sendText(side, "gone again?");
    const marker = await until("the marker push", async () => (await pushesTo(fakeUrl, name)).find((r) => r.payload?.preview === "gone again?"));
    expect(marker.payload).toMatchObject({ channel_id: side, count: 1 });
    expect((await pushesTo(fakeUrl, name)).filter((r) => r.payload?.preview === "while you are here")).toEqual([]);

    // Reading the DM (REST, any device) takes the standing notification down.
    expect((await call("POST", `/v1/channels/${dm1}/read`, { token: alice.access_token, body: { up_to_seq: 100 } })).status).toBe(200);
    const clear = await until("the clear", async () => (await pushesTo(fakeUrl, name)).find((r) => r.payload?.type === "clear"));
    expect(clear.payload).toMatchObject({ type: "clear", channel_id: dm1 });
    expect(clear.collapseKey).toBe(first.collapseKey);
    b.close();
  });
});
