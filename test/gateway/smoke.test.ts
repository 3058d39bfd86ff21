import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { createGroup, register } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

describe("smoke", () => {
  it("sends a message from one device to another member's device", async () => {
    const alice = await register("alice");
    const bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token);
    const b = await onlineDevice(bob.access_token);
    const ack = await a.sendText(channel, "hello bob");
    expect(ack.type).toBe(pb.FrameType.SEND_ACK);
    expect(ack.send_ack?.seq).toBe(2);
    const msgs = await b.messages(1);
    expect(msgs[0]?.content?.text?.text).toBe("hello bob");
    a.close(); b.close();
  });
});
