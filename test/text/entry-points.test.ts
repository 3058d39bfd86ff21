/**
 * Issue 8 item 1, "a poisoned channel": text that is not well-formed Unicode (a lone surrogate,
 * JSON "\ud800"; bytes that are not UTF-8) is refused with `invalid_text` at every entry point, in
 * both frame encodings and on every REST input (body, query, path), so it can never be stored and
 * make other members' frames undecodable. Errors the server writes never cut a character in half.
 */
import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { encodeFrame, type FrameInit } from "../../protocol/codec.js";
import { BASE, call, createGroup, register, uniqueName, type TestUser } from "../helpers/api.js";
import { fullHistory, probeOnline, T, type ProbeDevice } from "../reliability/support.js";

const LONE = "\ud800";

let alice: TestUser, bob: TestUser;
let group: string;

beforeAll(async () => {
  [alice, bob] = await Promise.all([register("alice"), register("bob")]);
  group = await createGroup(alice, [bob], "Text");
});

/** Members' devices in both encodings: none may ever receive a frame it cannot decode. */
async function watchers(): Promise<ProbeDevice[]> {
  const devices = await Promise.all([probeOnline(bob.access_token, undefined, "proto"), probeOnline(bob.access_token, undefined, "json")]);
  await Promise.all(devices.map((d) => d.resume()));
  return devices;
}

/** Proves the watchers are past everything before: a good message arrives, and nothing undecodable did. */
async function expectNoPoison(devices: ProbeDevice[], sender: ProbeDevice): Promise<void> {
  const marker = `marker ${crypto.randomUUID()}`;
  const ack = await sender.sendText(group, marker);
  expect(ack.type, ack.error?.message ?? undefined).toBe(T.SEND_ACK);
  for (const d of devices) {
    await d.take((f) => f.type === T.DELIVER && (f.deliver?.messages ?? []).some((m) => m.content?.text?.text === marker), 10_000, `marker on ${d.encoding}`);
    expect(d.undecodable, `${d.encoding} device got frames it cannot decode`).toEqual([]);
    d.close();
  }
}

describe("frames: invalid_text at the decoder, both encodings", () => {
  const seq1 = { channel_id: "", seq: 1 };
  const cases: [string, (channel: string) => FrameInit][] = [
    ["SEND text", (c) => ({ type: T.SEND, send: { channel_id: c, client_msg_id: crypto.randomUUID(), content: { text: { text: `hi ${LONE}` } } } })],
    ["SEND client_msg_id", (c) => ({ type: T.SEND, send: { channel_id: c, client_msg_id: `id-${LONE}`, content: { text: { text: "hi" } } } })],
    ["EDIT text", (c) => ({ type: T.EDIT, edit: { ...seq1, channel_id: c, content: { text: { text: `edited ${LONE}` } } } })],
    ["REACT emoji", (c) => ({ type: T.REACT, react: { ...seq1, channel_id: c, emoji: "\ud83d", op: "add" } })],
    ["TYPING channel_id", (c) => ({ type: T.TYPING, typing: { channel_id: c + LONE, is_typing: true } })],
    ["READ up_to_msg_id", (c) => ({ type: T.READ, read: { channel_id: c, up_to_seq: 1, up_to_msg_id: LONE } })],
    ["PULL_HISTORY before_msg_id", (c) => ({ type: T.PULL_HISTORY, pull_history: { channel_id: c, before_msg_id: LONE } })],
    ["DELIVER_ACK server_msg_id", (c) => ({ type: T.DELIVER_ACK, deliver_ack: { channel_id: c, seq: 1, server_msg_id: LONE } })],
    ["RESUME cursor", () => ({ type: T.RESUME, resume: { cursors: [{ channel_id: LONE, last_seq: 1 }] } })],
    ["DELETE channel_id", (c) => ({ type: T.DELETE, delete: { channel_id: LONE + c, seq: 1 } })],
    ["PRESENCE_HEARTBEAT status", () => ({ type: T.PRESENCE_HEARTBEAT, presence_heartbeat: { status: `online${LONE}` } })],
  ];

  it.each(["json", "proto"] as const)("refuses a lone surrogate in any field with invalid_text and the request_id (%s)", async (encoding) => {
    const devices = await watchers();
    const dev = await probeOnline(alice.access_token, undefined, encoding);
    await dev.resume();
    for (const [what, build] of cases) {
      const id = dev.send(build(group));
      const answer = await dev.reply(id, 5000);
      expect([what, answer.type, answer.error?.code, answer.error?.retryable ?? false]).toEqual([what, T.ERROR, "invalid_text", false]);
      expect(answer.error?.message, what).toMatch(/well-formed/);
    }
    // The exact case: the SEND is refused, and says which message it was.
    const clientMsgId = crypto.randomUUID();
    const refused = await dev.sendText(group, LONE, clientMsgId);
    expect([refused.error?.code, refused.error?.client_msg_id, refused.error?.channel_id]).toEqual(["invalid_text", clientMsgId, group]);
    expect(dev.undecodable).toEqual([]);
    await expectNoPoison(devices, dev);
    dev.close();
    const log = await fullHistory(alice, group);
    expect(log.filter((m) => m.content?.text?.text?.includes("hi"))).toEqual([]);
  });

  it("never echoes an id cut inside a surrogate pair", async () => {
    const dev = await probeOnline(alice.access_token, undefined, "proto");
    const longId = `${"a".repeat(127)}😀`;
    const refused = await dev.sendText(group, "hi", longId);
    expect(refused.error?.code).toBe("invalid_argument");
    const id = dev.send({ type: T.TYPING, typing: { channel_id: `${"c".repeat(127)}😀`, is_typing: true } });
    expect((await dev.reply(id)).error?.code).toBe("invalid_argument");
    expect(dev.undecodable).toEqual([]);
    dev.close();
  });

  it("refuses protobuf bytes that are not UTF-8 inside a string field", async () => {
    const dev = await probeOnline(alice.access_token, undefined, "proto");
    const marker = "XXXX";
    const bytes = encodeFrame({ type: T.SEND, request_id: 77, send: { channel_id: group, client_msg_id: crypto.randomUUID(), content: { text: { text: marker } } } }, "proto") as Uint8Array;
    const at = bytes.findIndex((b, i) => b === 0x58 && bytes[i + 3] === 0x58);
    bytes.set([0xc0, 0xaf, 0xff, 0xfe], at); // an overlong "/" and two bytes UTF-8 never uses
    dev.raw(bytes);
    const answer = await dev.reply(77);
    expect([answer.type, answer.error?.code]).toEqual([T.ERROR, "invalid_text"]);
    expect(answer.error?.message).toContain("send.content.text.text");
    dev.close();
  });
});

describe("REST: invalid_text for bodies, queries and paths", () => {
  async function expectInvalidText(r: { status: number; body: Record<string, unknown> }, field: string | undefined, what: string) {
    expect([what, r.status, r.body.code, r.body.retryable]).toEqual([what, 400, "invalid_text", false]);
    if (field) expect(r.body.message, what).toContain(field);
  }

  it("refuses a lone surrogate in every kind of body field", async () => {
    const name = uniqueName("eve");
    await expectInvalidText(await call("POST", "/v1/auth/register", { body: { username: name, password: "correct horse battery", display_name: `Eve${LONE}` } }), "display_name", "register display_name");
    await expectInvalidText(await call("POST", "/v1/auth/register", { body: { username: `${name}${LONE}`, password: "correct horse battery" } }), "username", "register username");
    await expectInvalidText(await call("POST", "/v1/auth/login", { body: { username: alice.username, password: `x${LONE}yzzzzzz` } }), "password", "login password");
    await expectInvalidText(await call("POST", "/v1/channels", { token: alice.access_token, body: { type: "group", name: `Team\udc00`, members: [] } }), "name", "group name");
    await expectInvalidText(await call("POST", "/v1/channels", { token: alice.access_token, body: { type: "group", name: "Team", members: [`bob${LONE}`] } }), "members.0", "member ref");
    await expectInvalidText(await call("PATCH", `/v1/channels/${group}/messages/1`, { token: alice.access_token, body: { text: `edited${LONE}` } }), "text", "REST edit");
    await expectInvalidText(await call("POST", "/v1/devices", { token: alice.access_token, body: { device_id: "phone-1", name: `Phone${LONE}` } }), "name", "device name");
    await expectInvalidText(await call("PATCH", "/v1/me/settings", { token: alice.access_token, body: { [`read_receipts${LONE}`]: true } }), undefined, "a key");
    const after = await call<{ channels: { name: string }[] }>("GET", "/v1/channels", { token: alice.access_token });
    expect(after.body.channels.map((c) => c.name)).toEqual(["Text"]);
  });

  it("refuses a body that is not UTF-8", async () => {
    const json = new TextEncoder().encode(JSON.stringify({ type: "group", name: "Team #", members: [] }));
    json[json.indexOf(0x23)] = 0xff;
    const res = await SELF.fetch(`${BASE}/v1/channels`, { method: "POST", headers: { Authorization: `Bearer ${alice.access_token}`, "Content-Type": "application/json" }, body: json });
    const body = await res.json<Record<string, unknown>>();
    await expectInvalidText({ status: res.status, body }, "UTF-8", "raw body");
  });

  it("refuses query strings and path segments whose percent-encoding is not UTF-8", async () => {
    const t = { token: alice.access_token };
    await expectInvalidText(await call("GET", "/v1/users?username=%ED%A0%80", t), "username", "query");
    await expectInvalidText(await call("GET", `/v1/channels/${group}/messages?before=1%FF`, t), "before", "history query");
    await expectInvalidText(await call("PUT", `/v1/channels/${group}/messages/1/reactions/%ED%A0%80`, t), "path", "reaction emoji");
    await expectInvalidText(await call("PUT", `/v1/channels/${group}/messages/1/reactions/%F0%9F%91%8D%ED%B0%80`, t), "path", "emoji + half a pair");
    // Well-formed emoji, noncharacters and astral characters are fine.
    const ok = await call("PUT", `/v1/channels/${group}/messages/1/reactions/${encodeURIComponent("👍🏽")}`, t);
    // seq 1 is the "created" system notice, which takes no reactions, but the emoji itself got through.
    expect([ok.status < 500, ok.body.code]).not.toEqual([true, "invalid_text"]);
  });
});
