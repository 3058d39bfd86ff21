/**
 * The text property of issue 8 item 1 (fast-check, inside workerd, through the real gateway, REST
 * API and objects): any JavaScript string — lone surrogates, halves of pairs, noncharacters,
 * astral code points, graphemes — put through any entry point gets either the error the contract
 * predicts (`invalid_text` for text that is not well-formed, `invalid_argument` for an empty or
 * otherwise refused value) or arrives intact: byte for byte the same text in the DELIVER (or
 * CHANNEL_UPDATE) another member receives on a protobuf connection and on a JSON connection, and
 * in history over REST. No device ever receives a frame it cannot decode.
 *
 * Names are compared with `cleanName` applied (docs/protocol.md, "Names"). Assertions compare
 * JSON.stringify output: it writes a lone surrogate as an ASCII escape, and a failure message that
 * carried a raw one could not cross the test pool's own socket.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validEmoji } from "../../durable-objects/channel/content.js";
import { cleanName, isWellFormed } from "../../protocol/text.js";
import { call, createGroup, register, uniqueName, type TestUser } from "../helpers/api.js";
import { fullHistory, probeOnline, T, type Msg, type ProbeDevice } from "../reliability/support.js";
import { untilOffline } from "../helpers/settle.js";
import { anyText, j } from "../helpers/text.js";

const RUNS = Number(process.env.EDGECHAT_FUZZ_RUNS ?? 100);
/** Each property stops after this long even if it has runs left (a loaded machine), and passes if nothing failed. */
const TIME_LIMIT_MS = Number(process.env.EDGECHAT_FUZZ_TIME_LIMIT_MS ?? 8000);
const budget = (numRuns: number) => ({ numRuns: Math.min(numRuns, RUNS), interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false });

let alice: TestUser, bob: TestUser;
let group: string;
/** alice's devices (who sends) and bob's (who must receive everything intact), one per encoding. */
let aliceProto: ProbeDevice, aliceJson: ProbeDevice, bobProto: ProbeDevice, bobJson: ProbeDevice;
/** Every text the fuzz got stored, by seq: REST history must hold exactly these. */
const stored = new Map<number, string>();
const outcomes = new Map<string, number>();

function count(what: string): void {
  outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
}

/** Polls a device's never-emptied log until `find` matches (frames may batch several messages). */
async function seen<T>(dev: ProbeDevice, find: (log: ProbeDevice["log"]) => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find(dev.log);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${dev.encoding} device of ${dev.deviceId}: no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const delivered = (channelId: string, pred: (m: Msg) => boolean) => (log: ProbeDevice["log"]): Msg | undefined => {
  for (const f of log) {
    if (f.type !== T.DELIVER) continue;
    const m = (f.deliver?.messages ?? []).find((x) => x.channel_id === channelId && pred(x));
    if (m) return m;
  }
  return undefined;
};

/** What the server must answer for message text `s`. */
function expectedForText(s: string): "ok" | "invalid_text" | "invalid_argument" {
  if (!isWellFormed(s)) return "invalid_text";
  return s.length === 0 ? "invalid_argument" : "ok";
}

function expectedForName(s: string, max: number): "ok" | "invalid_text" | "invalid_argument" {
  if (!isWellFormed(s)) return "invalid_text";
  const clean = cleanName(s);
  return clean.length === 0 || clean.length > max ? "invalid_argument" : "ok";
}

/** A sloppy client's percent-encoding: the bytes protobufjs would write, lone surrogates included. */
function percentEncodeAnyway(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const next = s.charCodeAt(i + 1);
    let cp = c;
    if (c >= 0xd800 && c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) { cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00); i++; }
    const bytes = cp < 0x80 ? [cp] : cp < 0x800 ? [0xc0 | (cp >> 6), 0x80 | (cp & 63)]
      : cp < 0x10000 ? [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)]
        : [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
    out += bytes.map((b) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`)).join("");
  }
  return out;
}

/** Sends a base message from alice and returns its seq. */
async function baseMessage(): Promise<number> {
  const ack = await aliceProto.sendText(group, `base ${crypto.randomUUID()}`);
  expect(ack.type).toBe(T.SEND_ACK);
  return Number(ack.send_ack?.seq);
}

beforeAll(async () => {
  [alice, bob] = await Promise.all([register("alice"), register("bob")]);
  group = await createGroup(alice, [bob], "Text fuzz");
  [aliceProto, aliceJson, bobProto, bobJson] = await Promise.all([
    probeOnline(alice.access_token, undefined, "proto"), probeOnline(alice.access_token, undefined, "json"),
    probeOnline(bob.access_token, undefined, "proto"), probeOnline(bob.access_token, undefined, "json"),
  ]);
  await Promise.all([aliceProto, aliceJson, bobProto, bobJson].map((d) => d.resume()));
});

afterAll(async () => {
  const all = [aliceProto, aliceJson, bobProto, bobJson];
  for (const d of all) expect(d.undecodable, `${d.encoding} device of ${d.deviceId}`).toEqual([]);
  // REST history holds every stored text exactly.
  const history = await fullHistory(bob, group);
  for (const [seq, text] of stored) expect(j(history[seq - 1]?.content?.text?.text), `REST history at seq ${seq}`).toBe(j(text));
  for (const d of all) d.close();
  await untilOffline(alice, [alice, bob]);
  console.log("text fuzz outcomes:", JSON.stringify(Object.fromEntries(outcomes)));
});

describe("any JS string through any entry point", { timeout: 60_000 }, () => {
  it("SEND (both encodings): refused as predicted, or delivered intact to both encodings and REST", async () => {
    await fc.assert(fc.asyncProperty(anyText, fc.boolean(), async (text, viaJson) => {
      const sender = viaJson ? aliceJson : aliceProto;
      const answer = await sender.sendText(group, text);
      const expected = expectedForText(text);
      count(`send:${expected}`);
      if (expected !== "ok") {
        expect([answer.type, answer.error?.code]).toEqual([T.ERROR, expected]);
        return;
      }
      expect(answer.type, answer.error?.message ?? undefined).toBe(T.SEND_ACK);
      const seq = Number(answer.send_ack?.seq);
      stored.set(seq, text);
      for (const dev of [bobProto, bobJson, viaJson ? aliceProto : aliceJson]) {
        const m = await seen(dev, delivered(group, (x) => Number(x.seq) === seq), `DELIVER of seq ${seq}`);
        expect(j(m.content?.text?.text), dev.encoding).toBe(j(text));
      }
    }), budget(60));
  });

  it("EDIT and REACT frames (both encodings): refused as predicted, or the change arrives intact", async () => {
    await fc.assert(fc.asyncProperty(anyText, anyText, fc.boolean(), async (text, emoji, viaJson) => {
      const dev = viaJson ? aliceJson : aliceProto;
      const seq = await baseMessage();
      const edit = await dev.reply(dev.send({ type: T.EDIT, edit: { channel_id: group, seq, content: { text: { text } } } }));
      const expectedEdit = expectedForText(text);
      count(`edit:${expectedEdit}`);
      if (expectedEdit === "ok") {
        expect(edit.type, edit.error?.message ?? undefined).toBe(T.MESSAGE_UPDATE);
        expect(j(edit.message_update?.message?.content?.text?.text)).toBe(j(text));
        stored.set(seq, text);
        for (const b of [bobProto, bobJson]) {
          const m = await seen(b, delivered(group, (x) => x.content?.update?.kind === "edited" && Number(x.content.update.target_seq) === seq), `edit of ${seq}`);
          expect(j(m.content?.update?.target?.content?.text?.text), b.encoding).toBe(j(text));
        }
      } else {
        expect([edit.type, edit.error?.code]).toEqual([T.ERROR, expectedEdit]);
      }
      const react = await dev.reply(dev.send({ type: T.REACT, react: { channel_id: group, seq, emoji, op: "add" } }));
      const expectedReact = !isWellFormed(emoji) ? "invalid_text" : validEmoji(emoji) ? "ok" : "invalid_argument";
      count(`react:${expectedReact}`);
      if (expectedReact === "ok") {
        expect(react.type, react.error?.message ?? undefined).toBe(T.MESSAGE_UPDATE);
        for (const b of [bobProto, bobJson]) {
          const m = await seen(b, delivered(group, (x) => x.content?.update?.kind === "reactions" && Number(x.content.update.target_seq) === seq), `reaction on ${seq}`);
          expect(j(m.content?.update?.target?.reactions?.map((r) => r.emoji)), b.encoding).toBe(j([emoji]));
        }
      } else {
        expect([react.type, react.error?.code]).toEqual([T.ERROR, expectedReact]);
      }
    }), budget(30));
  });

  it("REST edit text and reaction emoji in the path: refused as predicted, or arrive intact", async () => {
    await fc.assert(fc.asyncProperty(anyText, anyText, async (text, emoji) => {
      const seq = await baseMessage();
      const t = { token: alice.access_token };
      const edit = await call<{ code?: string; message?: { content?: { text?: { text?: string } } } }>("PATCH", `/v1/channels/${group}/messages/${seq}`, { ...t, body: { text } });
      const expectedEdit = expectedForText(text);
      count(`rest-edit:${expectedEdit}`);
      if (expectedEdit === "ok") {
        expect(edit.status, j(edit.body)).toBe(200);
        stored.set(seq, text);
        for (const b of [bobProto, bobJson]) {
          const m = await seen(b, delivered(group, (x) => x.content?.update?.kind === "edited" && Number(x.content.update.target_seq) === seq), `REST edit of ${seq}`);
          expect(j(m.content?.update?.target?.content?.text?.text), b.encoding).toBe(j(text));
        }
      } else {
        expect([edit.status, edit.body.code]).toEqual([400, expectedEdit]);
      }
      const react = await call<{ code?: string }>("PUT", `/v1/channels/${group}/messages/${seq}/reactions/${percentEncodeAnyway(emoji)}`, t);
      const expectedReact = !isWellFormed(emoji) ? "invalid_text" : validEmoji(emoji) ? "ok" : "other";
      count(`rest-react:${expectedReact}`);
      if (expectedReact === "invalid_text") expect([react.status, react.body.code]).toEqual([400, "invalid_text"]);
      else if (expectedReact === "ok") {
        expect(react.status, j(react.body)).toBe(200);
        const m = await seen(bobJson, delivered(group, (x) => x.content?.update?.kind === "reactions" && Number(x.content.update.target_seq) === seq), `REST reaction on ${seq}`);
        expect(j(m.content?.update?.target?.reactions?.map((r) => r.emoji))).toBe(j([emoji]));
      } else {
        // Not an emoji (or a path segment the router reads differently): refused, never a 5xx, never invalid_text.
        expect(react.status).toBeGreaterThanOrEqual(400);
        expect(react.status).toBeLessThan(500);
      }
    }), budget(30));
  });

  it("group names, display names and device names over REST: refused as predicted, or shown intact (names cleaned)", async () => {
    await fc.assert(fc.asyncProperty(anyText, fc.constantFrom("group", "display_name", "device"), async (s, where) => {
      if (where === "group") {
        const r = await call<{ code?: string; channel?: { channel_id: string; name: string } }>("POST", "/v1/channels", { token: alice.access_token, body: { type: "group", name: s, members: [bob.user_id] } });
        const expected = expectedForName(s, 100);
        count(`group-name:${expected}`);
        if (expected !== "ok") { expect([r.status, r.body.code]).toEqual([400, expected]); return; }
        expect(r.status, j(r.body)).toBe(201);
        const id = r.body.channel!.channel_id;
        expect(j(r.body.channel!.name)).toBe(j(cleanName(s)));
        for (const b of [bobProto, bobJson]) {
          const update = await seen(b, (log) => log.find((f) => f.type === T.CHANNEL_UPDATE && f.channel_update?.channel?.channel_id === id), `CHANNEL_UPDATE of ${id}`);
          expect(j(update.channel_update?.channel?.name), b.encoding).toBe(j(cleanName(s)));
        }
      } else if (where === "display_name") {
        const r = await call<{ code?: string; display_name?: string; user_id?: string }>("POST", "/v1/auth/register", { body: { username: uniqueName("fz"), password: "correct horse battery", display_name: s } });
        const expected = expectedForName(s, 64);
        count(`display-name:${expected}`);
        if (expected !== "ok") { expect([r.status, r.body.code]).toEqual([400, expected]); return; }
        expect(r.status, j(r.body)).toBe(201);
        expect(j(r.body.display_name)).toBe(j(cleanName(s)));
        const found = await call<{ display_name?: string }>("GET", `/v1/users/${r.body.user_id}`, { token: bob.access_token });
        expect(j(found.body.display_name)).toBe(j(cleanName(s)));
      } else {
        const deviceId = `fz-${crypto.randomUUID().slice(0, 8)}`;
        const r = await call<{ code?: string; device?: { name: string } }>("POST", "/v1/devices", { token: bob.access_token, body: { device_id: deviceId, name: s } });
        const expected = !isWellFormed(s) ? "invalid_text" : s.length > 100 ? "invalid_argument" : "ok";
        count(`device-name:${expected}`);
        if (expected !== "ok") { expect([r.status, r.body.code]).toEqual([400, expected]); return; }
        expect(r.status, j(r.body)).toBe(201);
        expect(j(r.body.device?.name)).toBe(j(s));
        // Stay under the 10-device cap for the next runs.
        expect((await call("DELETE", `/v1/devices/${deviceId}`, { token: bob.access_token })).status).toBe(204);
      }
    }), budget(40));
  });
});
