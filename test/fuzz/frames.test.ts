/**
 * Fuzzing the wire (fast-check, inside workerd, through the real gateway and UserObject).
 *
 * Every fuzzed frame must get exactly the answer the shared codec predicts: an ERROR with the
 * codec's code when the codec refuses it (garbage gets malformed_frame, oversized frame_too_large,
 * ...), an ERROR for a decodable frame the user may not send, RESUMED for a RESUME, SEND_ACK or an
 * ERROR for a SEND. No fuzzed frame may close the socket, crash an object, or silently vanish (the
 * only frames without an answer are a well-formed DELIVER_ACK and PRESENCE_HEARTBEAT). After the
 * fuzz, well-behaved devices on the same user and channel still send and receive, and the channel's
 * log holds every acknowledged fuzz message exactly once.
 *
 * Run counts are bounded so the file stays well under a minute on two cores.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, frameTypeName, pb, type Encoding, type Frame } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { isChannelId } from "../../shared/ids.js";
import { call, createGroup, register, type TestUser } from "../helpers/api.js";
import { expectWellFormedLog, fullHistory, probeHello, probeOnline, rawCall, T, type ProbeDevice } from "../reliability/support.js";

const RUNS = Number(process.env.EDGECHAT_FUZZ_RUNS ?? 100);
/** Each property stops after this long even if it has runs left (a loaded machine), and passes if nothing failed. */
const TIME_LIMIT_MS = Number(process.env.EDGECHAT_FUZZ_TIME_LIMIT_MS ?? 8000);
const budget = (numRuns: number) => ({ numRuns, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false });
const SENTINEL_ID = 4_000_000_001;
/** A syntactically valid channel id that no channel has. */
const NO_SUCH_CHANNEL = "c_g_" + "0".repeat(26);

let alice: TestUser, bob: TestUser, carol: TestUser;
/** alice + bob: where the well-behaved devices talk and the semantic SEND fuzz writes. */
let group: string;
/** carol + bob: alice is not a member. */
let foreign: string;
let proto: ProbeDevice, json: ProbeDevice, good: ProbeDevice, bobGood: ProbeDevice;
/** Every SEND the fuzz got acknowledged: client_msg_id -> seq. */
const acked = new Map<string, { seq: number; text: string }>();
const codes = new Map<string, number>();

function count(code: string): void {
  codes.set(code, (codes.get(code) ?? 0) + 1);
}

/**
 * Sends `data` on `dev` and waits for the answer the codec and the protocol predict. Returns the
 * answer (undefined when none is due).
 */
async function expectAnswer(dev: ProbeDevice, data: Uint8Array | string, what: string): Promise<Frame | undefined> {
  if (data === "ping") return undefined; // the heartbeat, answered by the runtime
  const local = decodeFrame(data, dev.encoding);
  dev.raw(data);
  const label = () => `${what} [${dev.encoding}, ${typeof data === "string" ? `${data.length} chars` : `${data.byteLength} bytes`}]`;
  if (!local.ok) {
    const err = await dev.take((f) => f.type === T.ERROR && f.error?.code === local.code && f.request_id === local.requestId, 5000, `ERROR ${local.code} for ${label()}`);
    count(local.code);
    expect(err.error?.retryable, label()).toBe(false);
    return err;
  }
  const frame = local.frame;
  const id = frame.request_id;
  switch (frame.type) {
    case T.RESUME: {
      const f = await dev.take((x) => x.request_id === id && (x.type === T.RESUMED || x.type === T.ERROR), 10_000, `RESUMED for ${label()}`);
      count(f.type === T.RESUMED ? "RESUMED" : f.error!.code!);
      dev.drainDelivered();
      return f;
    }
    case T.DELIVER_ACK:
    case T.PRESENCE_HEARTBEAT: {
      const ack = frame.deliver_ack;
      const status = frame.presence_heartbeat?.status;
      const valid = frame.type === T.PRESENCE_HEARTBEAT ? status === "online" || status === "away" : ack && isChannelId(ack.channel_id) && Number(ack.seq) > 0;
      if (!valid) {
        const err = await dev.take((x) => x.request_id === id && x.type === T.ERROR, 5000, `ERROR for ${label()}`);
        count(err.error!.code!);
        return err;
      }
      // No answer on success: a sentinel proves the frame was processed and nothing came back.
      dev.send({ type: T.PULL_HISTORY, request_id: SENTINEL_ID, pull_history: { channel_id: NO_SUCH_CHANNEL } });
      await dev.take((x) => x.request_id === SENTINEL_ID && x.type === T.ERROR, 5000, "sentinel");
      const err = dev.frames.find((x) => x.request_id === id && x.type === T.ERROR);
      if (err) { dev.frames.splice(dev.frames.indexOf(err), 1); count(err.error!.code!); } else count(`${frameTypeName(frame.type)}:silent`);
      return err;
    }
    default: {
      const f = await dev.take((x) => x.request_id === id && x.type !== T.DELIVER && x.type !== T.CHANNEL_UPDATE && x.type !== T.READ && x.type !== T.TYPING && x.type !== T.PRESENCE, 5000, `answer to ${label()}`);
      if (f.type === T.SEND_ACK) {
        count("SEND_ACK");
        const s = frame.send!;
        expect(s.channel_id, label()).toBe(group);
        recordAck(s.client_msg_id ?? "", f, s.content?.text?.text ?? "");
      } else if (f.type === T.HISTORY_PAGE) {
        count("HISTORY_PAGE");
        expect(frame.pull_history?.channel_id, label()).toBe(group);
      } else {
        expect(frameTypeName(f.type), label()).toBe("ERROR");
        count(f.error!.code!);
        expect(f.error?.message, label()).toBeTruthy();
      }
      return f;
    }
  }
}

function recordAck(clientMsgId: string, f: Frame, text: string): void {
  const ack = f.send_ack!;
  const prev = acked.get(clientMsgId);
  if (prev) {
    expect(ack.status, `retry of ${clientMsgId}`).toBe("duplicate");
    expect(Number(ack.seq), `retry of ${clientMsgId} keeps its seq`).toBe(prev.seq);
  } else {
    expect(ack.status).toBe("stored");
    acked.set(clientMsgId, { seq: Number(ack.seq), text });
  }
}

/* ---------------------------------- generators ---------------------------------- */

const FRAME_TYPE_NAMES = Object.keys(pb.FrameType).filter((k) => Number.isNaN(Number(k)));
const CLIENT_TYPES = ["SEND", "DELIVER_ACK", "TYPING", "READ", "PRESENCE_HEARTBEAT", "PULL_HISTORY", "REACT", "RESUME", "EDIT", "DELETE"];
const SERVER_TYPES = FRAME_TYPE_NAMES.filter((n) => !CLIENT_TYPES.includes(n) && n !== "FRAME_TYPE_UNSPECIFIED");

/** Channel ids a fuzzed frame may name: never `group`, so every channel-scoped frame is refused. */
const channelRef = () => fc.oneof(
  fc.constant(foreign), fc.constant(NO_SUCH_CHANNEL), fc.constantFrom("", "general", "c_g_", "c_xx_" + "a".repeat(26), "u_g_" + "a".repeat(26)),
  fc.string({ maxLength: 40 }),
);

/** Numbers a client should never send: negative, fractional, beyond 2^32, 2^53 and 2^64. */
const evilNumber = fc.oneof(
  fc.constantFrom(-1, -0, 0.5, -(2 ** 31), 2 ** 32, 2 ** 32 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e308, -1e308, Number.MAX_SAFE_INTEGER),
  fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Any JSON value, with the wrong types a field can get. */
const evilValue: fc.Arbitrary<unknown> = fc.oneof(
  { maxDepth: 2 },
  evilNumber, fc.string({ maxLength: 30 }), fc.boolean(), fc.constant(null), fc.constant([]), fc.constant({}),
  fc.array(fc.oneof(fc.string({ maxLength: 5 }), fc.integer()), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), { maxKeys: 3 }),
);

const FIELDS: Record<string, string[]> = {
  send: ["channel_id", "client_msg_id", "hlc_hint", "content"],
  deliver_ack: ["channel_id", "seq", "server_msg_id"],
  typing: ["channel_id", "is_typing", "user_id", "device_id"],
  read: ["channel_id", "up_to_seq", "up_to_msg_id", "user_id", "unread_count"],
  presence_heartbeat: ["status"],
  pull_history: ["channel_id", "before_seq", "after_seq", "limit", "before_msg_id"],
  react: ["channel_id", "seq", "emoji", "op", "msg_id"],
  resume: ["cursors", "full"],
  edit: ["channel_id", "seq", "content"],
  delete: ["channel_id", "seq", "for_everyone"],
};

/** A client frame in JSON with every field possibly of the wrong type. */
const jsonFrame = () => fc.record({
  type: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...CLIENT_TYPES) },
    { weight: 1, arbitrary: fc.constantFrom(...SERVER_TYPES, "FRAME_TYPE_UNSPECIFIED", "send", "SEND ", "constructor", "__proto__", "toString", "1", "") },
    { weight: 1, arbitrary: evilValue },
  ),
  request_id: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 2 ** 32 - 1 }) }, { weight: 1, arbitrary: evilValue }),
  field_values: fc.array(fc.oneof(evilValue, channelRef(), fc.constantFrom(
    { text: { text: "hi" } }, { text: { text: 5 } }, { text: {} }, { system: { event: "created", text: "pwned" } },
    { attachment: { attachment_id: "a" } }, { encrypted: { ciphertext: "AAAA" } }, { text: { text: "a" }, system: { text: "b" } },
    [{ channel_id: NO_SUCH_CHANNEL, last_seq: -1 }], [{ channel_id: null, last_seq: "x" }], [1, 2, 3],
  ) as fc.Arbitrary<unknown>), { minLength: 0, maxLength: 6 }),
  drop_payload: fc.boolean(),
  payload_kind: fc.constantFrom("object", "object", "object", "array", "string", "null", "number"),
}).map((r) => {
  const typeName = typeof r.type === "string" ? r.type.toLowerCase() : "";
  const fields = Object.hasOwn(FIELDS, typeName) ? FIELDS[typeName]! : ["channel_id", "seq", "text"];
  const payload: Record<string, unknown> = {};
  fields.forEach((f, i) => { if (i < r.field_values.length) payload[f] = r.field_values[i]; });
  const out: Record<string, unknown> = { type: r.type, request_id: r.request_id };
  if (!r.drop_payload) {
    out.payload = r.payload_kind === "object" ? payload : r.payload_kind === "array" ? [payload] : r.payload_kind === "string" ? "payload" : r.payload_kind === "null" ? null : 42;
  }
  return JSON.stringify(out);
});

/* ---- a tiny protobuf writer, to put any wire type in any field ---- */

function varint(v: bigint): number[] {
  let x = BigInt.asUintN(64, v);
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
  return out;
}

type WireField = { field: number; wire: number; value: bigint | Uint8Array };

function encodeFields(fields: WireField[]): Uint8Array {
  const out: number[] = [];
  for (const f of fields) {
    out.push(...varint(BigInt((f.field << 3) | f.wire)));
    if (f.value instanceof Uint8Array) { out.push(...varint(BigInt(f.value.length)), ...f.value); continue; }
    if (f.wire === 1) for (let i = 0n; i < 8n; i++) out.push(Number((BigInt.asUintN(64, f.value) >> (8n * i)) & 0xffn));
    else if (f.wire === 5) for (let i = 0n; i < 4n; i++) out.push(Number((BigInt.asUintN(32, f.value) >> (8n * i)) & 0xffn));
    else if (f.wire === 0) out.push(...varint(f.value));
    // wire types 3, 4 (groups), 6 and 7 (invalid) carry nothing of their own
  }
  return new Uint8Array(out);
}

const wireNumber = fc.oneof(
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
  fc.constantFrom(0n, 1n, -1n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 1n, 13n, 1n, 12n),
);

const wireField = (inner: fc.Arbitrary<Uint8Array>): fc.Arbitrary<WireField> => fc.record({
  field: fc.oneof(fc.integer({ min: 1, max: 35 }), fc.constantFrom(0, 536_870_911)),
  wire: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(0, 1, 2, 5) }, { weight: 1, arbitrary: fc.constantFrom(3, 4, 6, 7) }),
  num: wireNumber,
  bytes: fc.oneof(inner, fc.uint8Array({ maxLength: 40 }), fc.string({ maxLength: 40 }).map((s) => new TextEncoder().encode(s)), fc.constant(new TextEncoder().encode(NO_SUCH_CHANNEL))),
}).map((r) => ({ field: r.field, wire: r.wire, value: r.wire === 2 ? r.bytes : r.num }));

/** Protobuf that is structurally plausible (a type, a request id, a payload) but typed at random. */
const protoFrame = () => {
  const innerFields = fc.array(wireField(fc.constant(new Uint8Array())), { maxLength: 5 }).map(encodeFields);
  return fc.record({
    type: fc.oneof(fc.integer({ min: 0, max: 25 }), wireNumber),
    requestId: fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), wireNumber),
    payloadField: fc.integer({ min: 9, max: 33 }),
    payload: innerFields,
    extra: fc.array(wireField(innerFields), { maxLength: 3 }),
    order: fc.boolean(),
  }).map((r) => {
    const head: WireField[] = [
      { field: 1, wire: 0, value: BigInt(r.type) },
      { field: 2, wire: 0, value: BigInt(r.requestId) },
      { field: r.payloadField, wire: 2, value: r.payload },
    ];
    return encodeFields(r.order ? [...head, ...r.extra] : [...r.extra, ...head]);
  });
};

/** A SEND frame of exactly maxFrameBytes whose invalid channel_id (proto) or client_msg_id (json) fills it. */
function sendFilling(enc: Encoding): Uint8Array | string {
  const build = (n: number) => encodeFrame({
    type: T.SEND, request_id: 81,
    send: enc === "proto"
      ? { channel_id: "c".repeat(n), client_msg_id: "x", content: { text: { text: "x" } } }
      : { channel_id: group, client_msg_id: "m".repeat(n), content: { text: { text: "x" } } },
  }, enc);
  const size = (d: Uint8Array | string) => (typeof d === "string" ? new TextEncoder().encode(d).byteLength : d.byteLength);
  let n = LIMITS.maxFrameBytes - 200;
  while (size(build(n + 1)) <= LIMITS.maxFrameBytes) n++;
  return build(n);
}

/* ---------------------------------- setup ---------------------------------- */

beforeAll(async () => {
  [alice, bob, carol] = await Promise.all([register("alice"), register("bob"), register("carol")]);
  group = await createGroup(alice, [bob], "Fuzzed");
  foreign = await createGroup(carol, [bob], "Not alice's");
  proto = await probeHello(alice.access_token, "fuzz-proto", "proto");
  json = await probeHello(alice.access_token, "fuzz-json", "json");
  good = await probeHello(alice.access_token, "alice-good", "proto");
  bobGood = await probeHello(bob.access_token, "bob-good", "json");
  for (const d of [proto, json, good, bobGood]) await d.resume([]);
}, 30_000);

afterAll(() => {
  console.log(`frames fuzz: answers by code ${JSON.stringify(Object.fromEntries([...codes].sort()))}; ${acked.size} fuzz SENDs stored`);
  for (const d of [proto, json, good, bobGood]) d?.close();
});

/** The sockets the fuzz used are still open and answering. */
async function stillAnswering(): Promise<void> {
  for (const d of [proto, json]) {
    expect(d.closed, `${d.deviceId} was closed`).toBeUndefined();
    const id = d.send({ type: T.PULL_HISTORY, pull_history: { channel_id: group, after_seq: 0, limit: 1 } });
    const page = await d.reply(id);
    expect(frameTypeName(page.type)).toBe("HISTORY_PAGE");
    d.clear();
  }
}

describe("fuzzing the wire", { timeout: 30_000 }, () => {
  it("answers random bytes on a binary connection exactly as the codec predicts", async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
      await expectAnswer(proto, bytes, "random bytes");
    }), budget(RUNS));
    // Pure garbage (not protobuf at all) is malformed_frame.
    for (const bytes of [[0xff], [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], [0x08], [0x0f, 0x00], [0x12, 0x7f, 0x01], [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]]) {
      const err = await expectAnswer(proto, new Uint8Array(bytes), `garbage ${bytes}`);
      expect(err?.error?.code).toBe("malformed_frame");
    }
    await stillAnswering();
  });

  it("answers random text on both connections (malformed_frame for anything not a JSON frame object)", async () => {
    await fc.assert(fc.asyncProperty(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: "binary", maxLength: 100 }), fc.json({ maxDepth: 3 })), async (text) => {
      await expectAnswer(json, text, "random text");
      if (text !== "ping") {
        const err = await expectAnswer(proto, text, "text on a binary connection");
        expect(err?.error?.code).toBe("malformed_frame");
      }
    }), budget(RUNS));
    for (const text of ["", "{", "null", "[]", "42", "\"SEND\"", "{\"type\":null}", "\u0000", "{\"type\":\"SEND\",\"payload\":[]}"]) {
      const err = await expectAnswer(json, text, `garbage ${JSON.stringify(text)}`);
      expect(err?.error?.code, text).toBe("malformed_frame");
    }
    await stillAnswering();
  });

  it("answers JSON frames with wrong types, negative and overflowing numbers, and wrong payloads", async () => {
    await fc.assert(fc.asyncProperty(jsonFrame(), async (text) => {
      await expectAnswer(json, text, `json frame ${text.slice(0, 200)}`);
    }), budget(RUNS * 2));
    await stillAnswering();
  });

  it("answers protobuf frames with any wire type in any field, and out-of-range varints", async () => {
    await fc.assert(fc.asyncProperty(protoFrame(), async (bytes) => {
      await expectAnswer(proto, bytes, "typed-at-random protobuf");
    }), budget(RUNS * 2));
    // Nested groups (wire type 3) deep enough to test the decoder's recursion, within the frame limit.
    const depth = 20_000;
    const nested = new Uint8Array(depth * 2);
    for (let i = 0; i < depth; i++) { nested[i] = (5 << 3) | 3; nested[depth * 2 - 1 - i] = (5 << 3) | 4; }
    await expectAnswer(proto, nested, "deeply nested groups");
    await expectAnswer(json, "[".repeat(60_000) + "]".repeat(60_000), "deeply nested JSON arrays");
    await expectAnswer(json, "{\"a\":".repeat(20_000) + "1" + "}".repeat(20_000), "deeply nested JSON objects");
    await stillAnswering();
  });

  it("answers frames at and around the 128 KiB frame limit and the 64 KiB content limit", async () => {
    const max = LIMITS.maxFrameBytes;
    const sendFrame = (text: string, enc: Encoding) => encodeFrame({
      type: T.SEND, request_id: 77, send: { channel_id: group, client_msg_id: crypto.randomUUID(), content: { text: { text } } },
    }, enc);
    const sizes: [string, Uint8Array | string, ProbeDevice][] = [
      ["zeros at the frame limit", new Uint8Array(max), proto],
      ["zeros one byte over", new Uint8Array(max + 1), proto],
      ["pseudo-random bytes, 1 MiB", new Uint8Array(1 << 20).map((_, i) => (Math.imul(i, 2654435761) >>> 24) & 0xff), proto],
      ["text at the frame limit", "x".repeat(max), json],
      ["text one byte over", "x".repeat(max + 1), json],
      ["multi-byte text over by a byte", "é".repeat(max / 2) + "x", json],
      ["SEND with content at the limit (proto)", sendFrame("a".repeat(LIMITS.maxContentBytes), "proto"), proto],
      ["SEND with content one byte over (proto)", sendFrame("a".repeat(LIMITS.maxContentBytes + 1), "proto"), proto],
      ["SEND with content at the limit, 4-byte characters (json)", sendFrame("😀".repeat(LIMITS.maxContentBytes / 4), "json"), json],
      ["SEND with content over, 4-byte characters (json)", sendFrame("😀".repeat(LIMITS.maxContentBytes / 4) + "x", "json"), json],
      ["SEND with 100 KiB content (under the frame limit)", sendFrame("b".repeat(100 * 1024), "proto"), proto],
      ["SEND with 127 KiB content (json)", sendFrame("c".repeat(127 * 1024), "json"), json],
      ["SEND with a 128 KiB frame of content", sendFrame("d".repeat(max), "proto"), proto],
      ["SEND with a 120 KiB channel_id", encodeFrame({ type: T.SEND, request_id: 78, send: { channel_id: "c".repeat(120 * 1024), client_msg_id: "x", content: { text: { text: "x" } } } }, "proto"), proto],
      ["SEND with a 120 KiB client_msg_id", encodeFrame({ type: T.SEND, request_id: 79, send: { channel_id: group, client_msg_id: "m".repeat(120 * 1024), content: { text: { text: "x" } } } }, "json"), json],
      ["SEND whose channel_id fills the frame exactly (the ERROR echoes it)", sendFilling("proto"), proto],
      ["SEND whose client_msg_id fills the frame exactly (json)", sendFilling("json"), json],
      ["RESUME with 3,000 cursors", encodeFrame({ type: T.RESUME, request_id: 80, resume: { cursors: Array.from({ length: 3000 }, (_, i) => ({ channel_id: i % 2 ? NO_SUCH_CHANNEL : group, last_seq: i })) } }, "proto"), proto],
    ];
    for (const [what, data, dev] of sizes) {
      const answer = await expectAnswer(dev, data, what);
      if (what.includes("over") || what.includes("1 MiB") || what.includes("128 KiB frame")) {
        expect(answer?.error?.code, what).toMatch(/^(frame_too_large|content_too_large)$/);
      }
      if (what.startsWith("SEND with content at the limit")) expect(answer?.type, what).toBe(T.SEND_ACK);
      if (what.startsWith("SEND with 1")) expect(answer?.error?.code, what).toBe("content_too_large");
    }
    // An ERROR frame echoes the request's channel_id / client_msg_id: it must still be a frame the
    // client's codec accepts.
    for (const d of [proto, json]) expect(d.undecodable.filter((u) => u.type === "ERROR"), `${d.deviceId} got ERROR frames its codec refuses`).toEqual([]);
    await stillAnswering();
  });

  it("stores fuzzed SENDs to a real channel exactly once when acknowledged, and refuses the rest", async () => {
    const clientMsgId = fc.oneof(
      { weight: 6, arbitrary: fc.uuid() },
      { weight: 1, arbitrary: fc.constantFrom("", " ", "a b", "x".repeat(64), "x".repeat(65), "ünïcode", "\u0000", "tab\there") },
      { weight: 1, arbitrary: fc.string({ minLength: 0, maxLength: 70 }) },
    );
    const content = fc.oneof(
      { weight: 6, arbitrary: fc.oneof(fc.string({ minLength: 0, maxLength: 200 }), fc.string({ unit: "binary", maxLength: 100 }), fc.string({ unit: "grapheme", maxLength: 50 })).map((text) => ({ text: { text } })) },
      { weight: 1, arbitrary: fc.constantFrom({}, { system: { event: "created", text: "spoofed" } }, { attachment: { attachment_id: "x", size_bytes: 1 } }, { encrypted: { ciphertext: new Uint8Array([1, 2]) } }) },
    );
    const reuse: string[] = [];
    let sent = 0;
    await fc.assert(fc.asyncProperty(clientMsgId, content, fc.boolean(), fc.boolean(), async (cid, c, useJson, retry) => {
      sent++;
      const id = retry && reuse.length > 0 ? reuse[reuse.length - 1]! : cid;
      const dev = useJson ? json : proto;
      const data = encodeFrame({ type: T.SEND, request_id: dev.newRequestId(), send: { channel_id: group, client_msg_id: id, content: c } }, dev.encoding);
      const answer = await expectAnswer(dev, data, `SEND ${JSON.stringify(id)}`);
      if (answer?.type === T.SEND_ACK) reuse.push(id);
      else expect(["invalid_argument", "content_too_large", "forbidden", "not_implemented", "malformed_frame"], JSON.stringify(c)).toContain(answer?.error?.code);
    }), budget(RUNS * 2));
    // Enough of what it sent was acknowledged to mean something: a quarter, as RUNS / 2 of RUNS * 2
    // was, but of the runs made (a loaded machine makes fewer before the time limit).
    expect(sent).toBeGreaterThan(0);
    expect(reuse.length).toBeGreaterThan(sent / 4);

    // The log: every acknowledged fuzz SEND once, with the text that was sent, nothing else from alice.
    const log = await fullHistory(alice, group);
    expectWellFormedLog(log);
    const fromAlice = log.filter((m) => m.sender_user_id === alice.user_id && m.client_msg_id);
    const stored = new Map(fromAlice.map((m) => [m.client_msg_id!, m]));
    for (const [cid, { seq, text }] of acked) {
      expect(Number(stored.get(cid)?.seq), `acked ${JSON.stringify(cid)} stored at its seq`).toBe(seq);
      expect(stored.get(cid)?.content?.text?.text, `text of ${JSON.stringify(cid)}`).toBe(text);
    }
    expect(fromAlice.length, "messages from alice that were never acknowledged").toBe(acked.size);
    // bob's device received all of them, in seq order.
    const got = await bobGood.deliveredUpTo(group, log.length, 15_000); // live DELIVERs and the initial RESUME
    expect(got.map((m) => m.server_msg_id)).toEqual(log.map((m) => m.server_msg_id));
  });

  it("answers frames out of protocol order and server-to-client frame types sent by a client", async () => {
    // A fresh connection: SEND, DELIVER_ACK, PULL_HISTORY and READ before any RESUME all work.
    const early = await probeOnline(alice.access_token, "fuzz-early", "proto");
    const ack = await early.sendText(group, "before RESUME");
    expect(frameTypeName(ack.type)).toBe("SEND_ACK");
    recordAck(ack.send_ack!.client_msg_id!, ack, "before RESUME");
    early.send({ type: T.DELIVER_ACK, deliver_ack: { channel_id: group, seq: 1 } });
    const page = await early.reply(early.send({ type: T.PULL_HISTORY, pull_history: { channel_id: group, before_seq: 2, limit: 1 } }));
    expect(page.history_page?.messages?.map((m) => Number(m.seq))).toEqual([1]);
    // Every server-to-client type, with its own payload and with none.
    for (const name of SERVER_TYPES) {
      const type = pb.FrameType[name as keyof typeof pb.FrameType];
      const field = name.toLowerCase();
      for (const data of [pb.Frame.encode({ type, request_id: 900 + type }).finish(), encodeFrame({ type, request_id: 950 + type, [field]: {} }, "proto")]) {
        const err = await expectAnswer(early, data as Uint8Array, `${name} from a client`);
        expect(err?.error?.code, name).toBe("unexpected_frame");
      }
      const asJson = await expectAnswer(json, JSON.stringify({ type: name, request_id: 7, payload: {} }), `${name} from a client (json)`);
      expect(asJson?.error?.code, name).toBe("unexpected_frame");
    }
    // A client type carrying another type's payload.
    for (const [type, payload] of [[T.SEND, { resume: {} }], [T.RESUME, { send: { channel_id: group } }], [T.READ, { hello: {} }]] as const) {
      const err = await expectAnswer(early, pb.Frame.encode({ type, request_id: 5, ...payload }).finish(), `${frameTypeName(type)} with a foreign payload`);
      expect(err?.error?.code).toBe("malformed_frame");
    }
    early.close();
    await stillAnswering();
  });

  it("keeps order and completeness when a device retries RESUME while messages arrive", async () => {
    const d = await probeHello(alice.access_token, "fuzz-double-resume", "proto");
    const before = (await fullHistory(alice, group)).length;
    const burst = 60;
    const sends = Array.from({ length: burst }, (_, i) => bobGood.sendText(group, `burst ${i}`, crypto.randomUUID(), 10_000));
    // A client that retries its RESUME on the same socket (same cursors). Duplicates are allowed
    // (at-least-once); a new seq below one already delivered is not.
    const cursor = Math.max(1, before - 20);
    const r1 = d.send({ type: T.RESUME, resume: { cursors: [{ channel_id: group, last_seq: cursor }] } });
    const r2 = d.send({ type: T.RESUME, resume: { cursors: [{ channel_id: group, last_seq: cursor }] } });
    for (const r of [r1, r2]) await d.take((f) => f.request_id === r && f.type === T.RESUMED, 10_000, "RESUMED");
    for (const a of await Promise.all(sends)) expect(a.type).toBe(T.SEND_ACK);
    const last = before + burst;
    const deadline = Date.now() + 10_000;
    let delivered: number[] = [];
    while (Date.now() < deadline) {
      delivered = d.log.flatMap((f) => (f.type === T.DELIVER ? f.deliver!.messages!.filter((m) => m.channel_id === group).map((m) => Number(m.seq)) : []));
      if (delivered.includes(last)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const firstSeen = new Set<number>();
    const outOfOrder: number[] = [];
    let max = 0;
    for (const s of delivered) {
      if (!firstSeen.has(s) && s < max) outOfOrder.push(s);
      firstSeen.add(s);
      max = Math.max(max, s);
    }
    for (let s = Math.max(2, before - 19); s <= last; s++) expect(firstSeen.has(s), `seq ${s} delivered`).toBe(true);
    expect(outOfOrder, "new messages delivered below a higher seq already delivered").toEqual([]);
    d.close();
    bobGood.drainDelivered();
  });

  it("leaves the server up and the well-behaved devices working, in both directions", async () => {
    expect((await rawCall("GET", "/v1/health")).status).toBe(200);
    const log = await fullHistory(alice, group);
    for (const d of [good, bobGood, proto, json]) d.clear();
    const a = await good.sendText(group, "after the fuzz, from alice");
    expect(frameTypeName(a.type)).toBe("SEND_ACK");
    const b = await bobGood.sendText(group, "after the fuzz, from bob");
    expect(frameTypeName(b.type)).toBe("SEND_ACK");
    const seqA = Number(a.send_ack!.seq), seqB = Number(b.send_ack!.seq);
    expect(Math.min(seqA, seqB)).toBe(log.length + 1);
    // alice's message reaches bob and alice's other (fuzzed) devices; bob's reaches all of alice's.
    for (const [dev, seqs] of [[bobGood, [seqA]], [good, [seqB]], [proto, [seqA, seqB]], [json, [seqA, seqB]]] as const) {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const have = new Set(dev.log.filter((f) => f.type === T.DELIVER).flatMap((f) => f.deliver!.messages!.map((m) => Number(m.seq))));
        if (seqs.every((s) => have.has(s))) break;
        if (Date.now() > deadline) throw new Error(`${dev.deviceId} did not receive ${seqs}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    const unread = await call<{ channels: { channel_id: string }[] }>("GET", "/v1/channels", { token: alice.access_token });
    expect(unread.status).toBe(200);
    for (const d of [proto, json, good, bobGood]) {
      expect(d.closed, d.deviceId).toBeUndefined();
      // Oversized DELIVER batches are a known bug with its own test (abuse.test.ts); anything else
      // the codec refuses is a failure here.
      expect(d.undecodable.filter((u) => u.type !== "DELIVER"), `${d.deviceId} received frames the codec refuses`).toEqual([]);
    }
  });
});
