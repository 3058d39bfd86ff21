/**
 * send() with a client_msg_id chosen by the caller: a web app whose browser tabs share one
 * client hands a message to whichever tab holds the socket, and may hand it over twice when
 * that tab changes. The outbox keeps one entry and the server stores one message.
 */
import { describe, expect, it } from "vitest";
import { channelState, connectReady, harness, T } from "./fakes.js";

describe("send() with the caller's client_msg_id", () => {
  it("uses the given id, and a second send with it joins the first entry", async () => {
    const h = harness();
    const s = await connectReady(h, [channelState("c1", 4)]);
    const first = h.client.send("c1", "hello", { clientMsgId: "tab-msg-1" });
    const again = h.client.send("c1", "hello", { clientMsgId: "tab-msg-1" });
    expect(first.clientMsgId).toBe("tab-msg-1");
    expect(again.clientMsgId).toBe("tab-msg-1");
    expect(h.client.outbox.list()).toHaveLength(1);
    const sends = s.framesOfType(T.SEND);
    expect(sends.map((f) => f.send?.client_msg_id)).toEqual(["tab-msg-1"]);

    s.receive({
      type: T.SEND_ACK, request_id: sends[0]!.request_id,
      send_ack: { channel_id: "c1", client_msg_id: "tab-msg-1", seq: 5, status: "stored", server_msg_id: "0".repeat(31) + "5", hlc: "5".padStart(16, "0"), server_ts: 1_700_000_000_005 },
    });
    const [a, b] = await Promise.all([first, again]);
    expect(a.seq).toBe(5);
    expect(b).toEqual(a);
    expect(h.events.message.map((m) => m.seq)).toEqual([5]);
    expect(h.client.outbox.list()).toEqual([]);
  });
});
