/**
 * A frame from the server that holds text which is not well-formed Unicode (bytes that are not
 * UTF-8 in protobuf, a lone surrogate in JSON; an older server, a bad row) costs the SDK only
 * that text: every message of the frame is delivered, the bad text shown with U+FFFD, and the
 * app gets an `error` event with code `invalid_text` naming each affected message.
 */
import { describe, expect, it } from "vitest";
import type { Encoding } from "../../protocol/codec.js";
import { isWellFormed } from "../../protocol/text.js";
import { j } from "../helpers/text.js";
import { channelState, connectReady, fakeFetch, harness, message, seqs, T } from "./fakes.js";

const shown = (s: string | undefined): string => (s ?? "").replace(/\uFFFD+/g, "\uFFFD");

describe.each<Encoding>(["proto", "json"])("text that is not well-formed, over %s", (encoding) => {
  it("delivers every message of a DELIVER and reports the one with bad text", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0)]);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 1), message("c1", 2, { content: { text: { text: "t\udc00wo" } } }), message("c1", 3)] } });
    await h.time.advance(0);
    expect(seqs(h, "c1")).toEqual([1, 2, 3]);
    const texts = h.events.message.map((m) => m.content.text?.text ?? "");
    expect(texts.every(isWellFormed)).toBe(true);
    expect(j(texts.map(shown))).toBe(j(["msg 1", "t\uFFFDwo", "msg 3"]));
    const reports = h.events.error.filter((e) => e.code === "invalid_text");
    expect(reports.map((e) => [e.channelId, e.retryable])).toEqual([["c1", false]]);
    expect(reports[0]?.message).toMatch(/message 2 in channel c1/);
    expect(s.framesOfType(T.DELIVER_ACK).at(-1)?.deliver_ack).toMatchObject({ channel_id: "c1", seq: 3 });
  });

  it("fills a gap from a HISTORY_PAGE that holds bad text", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 1)]);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 4)] } });
    await h.time.advance(0);
    const pull = s.framesOfType(T.PULL_HISTORY)[0]!;
    s.receive({
      type: T.HISTORY_PAGE, request_id: pull.request_id,
      history_page: { channel_id: "c1", messages: [message("c1", 2), message("c1", 3, { reactions: [{ emoji: "\ud83d", user_ids: ["u"] }] }), message("c1", 4)], has_more: false, last_seq: 4 },
    });
    await h.time.advance(0);
    expect(seqs(h, "c1")).toEqual([2, 3, 4]);
    expect(h.events.error.filter((e) => e.code === "invalid_text").map((e) => e.channelId)).toEqual(["c1"]);
  });

  it("keeps the channel list of a RESUMED with a bad name", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0), channelState("c2", 0, { name: "Te\ud800am" })]);
    await h.time.advance(0);
    expect(h.client.channelStates().map((c) => c.channel_id).sort()).toEqual(["c1", "c2"]);
    expect(h.client.channelStates().every((c) => isWellFormed(c.name))).toBe(true);
    expect(h.events.error.filter((e) => e.code === "invalid_text").map((e) => e.channelId)).toEqual(["c2"]);
    expect(s.closedWith).toBeUndefined();
  });
});

describe("REST answers with text that is not well-formed", () => {
  it("reads them with U+FFFD, like frames", async () => {
    const api = fakeFetch({
      "GET /v1/channels/c1/messages": () => ({ status: 200, body: { channel_id: "c1", messages: [message("c1", 8, { content: { text: { text: "e\ud800ight" } } }), message("c1", 9)], has_more: false, last_seq: 9 } }),
      "GET /v1/channels": () => ({ status: 200, body: { channels: [channelState("c1", 9, { name: "Te\udc00am" })] } }),
    });
    const h = harness({ fetch: api.fetch });
    const page = await h.client.history("c1", { before: 10 });
    expect(j(page.messages.map((m) => m.content.text?.text))).toBe(j(["e\uFFFDight", "msg 9"]));
    const channels = await h.client.channels.list();
    expect(j(channels.map((c) => c.name))).toBe(j(["Te\uFFFDam"]));
  });
});
