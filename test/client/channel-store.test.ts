import { describe, expect, it } from "vitest";
import { ChannelStore, MAX_PULL_STALLS } from "../../client/channel-store.js";
import type { ChatMessage } from "../../client/types.js";

function msg(seq: number, channel = "c1"): ChatMessage {
  return {
    channel_id: channel, seq, server_msg_id: `m${seq}`, hlc: "", client_msg_id: "", sender_user_id: "u", sender_device_id: "d",
    server_ts: 0, content: { text: { text: String(seq) } }, reactions: [], edited_at: 0, deleted: false, hidden: false,
  };
}

const seqsOf = (ms: ChatMessage[]) => ms.map((m) => m.seq);

describe("ChannelStore", () => {
  it("anchors on the first message and emits in order", () => {
    const s = new ChannelStore();
    expect(s.contiguous("c1")).toBeUndefined();
    expect(seqsOf(s.add(msg(5)))).toEqual([5]);
    expect(seqsOf(s.add(msg(6)))).toEqual([6]);
    expect(s.contiguous("c1")).toBe(6);
    expect(s.cursors()).toEqual([{ channel_id: "c1", last_seq: 6 }]);
  });

  it("drops duplicates, below and above the contiguous mark", () => {
    const s = new ChannelStore();
    s.anchor("c1", 0);
    expect(seqsOf(s.add(msg(1)))).toEqual([1]);
    expect(s.add(msg(1))).toEqual([]);
    expect(s.add(msg(3))).toEqual([]);
    expect(s.add(msg(3))).toEqual([]);
    expect(seqsOf(s.add(msg(2)))).toEqual([2, 3]);
    expect(s.add(msg(2))).toEqual([]);
    expect(s.add(msg(3))).toEqual([]);
  });

  it("buffers out-of-order messages and releases them in seq order", () => {
    const s = new ChannelStore();
    s.anchor("c1", 0);
    const out: number[] = [];
    for (const seq of [4, 2, 5, 3, 1]) out.push(...seqsOf(s.add(msg(seq))));
    expect(out).toEqual([1, 2, 3, 4, 5]);
    expect(s.buffered("c1")).toEqual([]);
  });

  it("detects a gap and pulls from the contiguous mark until filled", () => {
    const s = new ChannelStore();
    s.anchor("c1", 10);
    s.add(msg(14));
    expect(s.needsPull("c1")).toBe(true);
    const from = s.beginPull("c1");
    expect(from).toBe(10);
    expect(s.needsPull("c1")).toBe(false); // one pull in flight per channel
    const released = [11, 12, 13, 14].flatMap((n) => seqsOf(s.add(msg(n))));
    expect(released).toEqual([11, 12, 13, 14]); // 14 was waiting; the duplicate 14 is dropped
    expect(s.endPull("c1", from)).toEqual({ gaveUp: false, released: [] });
    expect(s.contiguous("c1")).toBe(14);
    expect(s.needsPull("c1")).toBe(false);
  });

  it("keeps pulling while the channel is known to hold more (RESUMED / page last_seq)", () => {
    const s = new ChannelStore();
    s.anchor("c1", 0);
    s.expect("c1", 450);
    expect(s.needsPull("c1")).toBe(true);
    const from = s.beginPull("c1");
    for (let i = 1; i <= 200; i++) s.add(msg(i));
    s.endPull("c1", from);
    expect(s.needsPull("c1")).toBe(true);
    expect(s.beginPull("c1")).toBe(200);
  });

  it("skips a hole the server cannot fill after repeated empty pulls", () => {
    const s = new ChannelStore();
    s.anchor("c1", 1);
    s.add(msg(3));
    s.add(msg(4));
    let outcome = { gaveUp: false, released: [] as ChatMessage[] };
    for (let i = 0; i < MAX_PULL_STALLS; i++) {
      expect(s.needsPull("c1")).toBe(true);
      outcome = s.endPull("c1", s.beginPull("c1"));
    }
    expect(outcome.gaveUp).toBe(true);
    expect(seqsOf(outcome.released)).toEqual([3, 4]);
    expect(s.contiguous("c1")).toBe(4);
    expect(s.needsPull("c1")).toBe(false);
  });

  it("emits its own acked message at once in a channel without a starting point, and never twice", () => {
    const s = new ChannelStore();
    expect(seqsOf(s.add(msg(2), true))).toEqual([2]);
    expect(s.isAnchored("c1")).toBe(false);
    expect(s.cursors()).toEqual([]);
    // The DELIVER of an older message arrives after the SEND_ACK: still emitted, then 2 is skipped.
    expect(seqsOf(s.add(msg(1)))).toEqual([1]);
    expect(s.contiguous("c1")).toBe(2);
    expect(seqsOf(s.add(msg(3)))).toEqual([3]);
  });

  it("an own message that also comes back in a DELIVER is emitted once", () => {
    const s = new ChannelStore();
    expect(seqsOf(s.add(msg(31), true))).toEqual([31]);
    expect(s.add(msg(31))).toEqual([]);
    expect(seqsOf(s.add(msg(32)))).toEqual([32]);
  });

  it("anchors below an own message when a later DELIVER is the first one", () => {
    const s = new ChannelStore();
    s.add(msg(5), true);
    expect(s.add(msg(7))).toEqual([]);
    expect(s.contiguous("c1")).toBe(5); // anchored at 4, then past the already-emitted 5
    expect(s.needsPull("c1")).toBe(true); // 6 is missing
    expect(seqsOf(s.add(msg(6)))).toEqual([6, 7]);
  });

  it("anchor() at RESUMED treats older buffered messages as history", () => {
    const s = new ChannelStore();
    s.add(msg(3), true);
    expect(s.anchor("c1", 3)).toEqual([]);
    expect(s.contiguous("c1")).toBe(3);
    expect(s.anchor("c1", 99)).toEqual([]); // only the first anchor counts
    expect(s.contiguous("c1")).toBe(3);
  });

  it("owes one cumulative DELIVER_ACK per channel per batch", () => {
    const s = new ChannelStore();
    s.anchor("a", 0);
    s.anchor("b", 7);
    for (const n of [1, 2, 3]) s.add(msg(n, "a"));
    s.add(msg(8, "b"));
    expect(s.takeAcks()).toEqual([{ channel_id: "a", seq: 3 }, { channel_id: "b", seq: 8 }]);
    expect(s.takeAcks()).toEqual([]);
    s.add(msg(5, "a")); // not contiguous: nothing to ack yet
    expect(s.takeAcks()).toEqual([]);
  });
});
